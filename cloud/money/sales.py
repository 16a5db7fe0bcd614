"""Vending: sell credit (F20), refund (F22), reverse a sale (F24), transfer-in (F14).

Every movement is created ``pending`` with the command that carries it to the collector, and
counts in the meter's ledger mirror only when the collector's result says ``applied``
(``cloud.uplink.results``). A refund or reversal is therefore two-phase: the money goes back to the
tenant only after the edge confirms it took the credit away; a rejected one returns nothing.

Idempotency (sales, refunds): the client's ``Idempotency-Key`` is stored with a hash of the
request body. The same key and body returns the original record; the same key with another
body is ``IdempotencyConflict`` (409).

Concurrency: a sale takes its meter's purchase number first, with ``UPDATE … RETURNING`` (a row
lock on PostgreSQL; SQLite transactions start ``BEGIN IMMEDIATE``), so numbers are gap-free and
two requests with one key for one meter serialise; then it looks for the key. A replay gives its
number back before it returns (its transaction commits). Same key, another meter, at the same
moment (PostgreSQL): the sale's ``INSERT … ON CONFLICT DO NOTHING`` waits for the other request
and inserts nothing if it committed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, case, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached

from cloud import audit
from cloud.audit import Actor, record
from cloud.control import commands
from cloud.errors import ConflictError, NotFoundError, RuleError
from cloud.models import (
    PENDING,
    Account,
    Gateway,
    Meter,
    PurchaseSequence,
    Sale,
    Site,
    SiteDefaults,
    TransferIn,
    now_ts,
)
from cloud.models.base import table_of
from cloud.money.checks import (
    CASHIER_METHODS,
    check_amount,
    check_key,
    check_method,
    check_replay,
    request_hash,
)
from cloud.money.records import receipt_number, sale_to_dict, yuan
from cloud.park.defaults import MAX_SALE_MICRO_YUAN

# --- selling ----------------------------------------------------------------------------------
#
# A sale is the API's hot path: on SQLite every sale queues for the one writer, so under 20
# concurrent clients the latency is the queue times the CPU one sale costs (issue 5: p99 ≤
# 100 ms). So ``sell`` avoids the ORM's unit of work, identity map and eager loads: it runs
# Core statements built once, here, on the session's connection (six per new sale), and hands
# back a ``Sale`` built from the values it wrote.

_SEQ, _SALES, _TRANSFERS = (
    table_of(PurchaseSequence),
    table_of(Sale),
    table_of(TransferIn),
)
_METERS, _GATEWAYS, _SITES, _DEFAULTS, _ACCOUNTS = (
    table_of(Meter),
    table_of(Gateway),
    table_of(Site),
    table_of(SiteDefaults),
    table_of(Account),
)

# The meter's next purchase number. On PostgreSQL the UPDATE holds the sequence row locked
# until the transaction ends, so sales of one meter run one at a time from here on and every
# later statement sees what the previous sale committed (READ COMMITTED: a new snapshot per
# statement). SQLite transactions start BEGIN IMMEDIATE: a sale runs alone anyway.
_TAKE_NUMBER = (
    update(_SEQ)
    .where(_SEQ.c.meter_id == bindparam("meter"))
    .values(last_no=_SEQ.c.last_no + 1)
    .returning(_SEQ.c.last_no)
)
_GIVE_BACK_NUMBER = (
    update(_SEQ).where(_SEQ.c.meter_id == bindparam("meter")).values(last_no=_SEQ.c.last_no - 1)
)
_FIRST_NUMBER = insert(_SEQ).values(meter_id=bindparam("meter"), last_no=1)


def _pending_credits_of_meter() -> Any:
    """Credits issued to the meter but not yet applied by the edge (sales, transfers-in)."""
    sales = (
        select(func.coalesce(func.sum(_SALES.c.amount_micro_yuan), 0))
        .where(_SALES.c.meter_id == bindparam("meter"), _SALES.c.status == PENDING)
        .scalar_subquery()
    )
    transfers = (
        select(func.coalesce(func.sum(_TRANSFERS.c.amount_micro_yuan), 0))
        .where(_TRANSFERS.c.meter_id == bindparam("meter"), _TRANSFERS.c.status == PENDING)
        .scalar_subquery()
    )
    return sales + transfers


# Everything a sale decides on, in one SELECT after the number is taken: the meter, its
# account, its hoarding cap (its own, else the site default, else none), the credits still
# pending against that cap (summed only when there is a cap), the site's time zone for the
# receipt, and the sale that already holds the idempotency key, if any.
_CAP = func.coalesce(_METERS.c.hoarding_cap_micro_yuan, _DEFAULTS.c.hoarding_cap_micro_yuan)
_SALE_FACTS = (
    select(
        _METERS.c.prepaid,
        _METERS.c.gateway_id,
        _METERS.c.account_id,
        _ACCOUNTS.c.status.label("account_status"),
        _METERS.c.balance_micro_yuan,
        _CAP.label("cap"),
        _DEFAULTS.c.max_sale_micro_yuan.label("max_sale"),
        case((_CAP.is_(None), literal(0)), else_=_pending_credits_of_meter()).label("pending"),
        _SITES.c.timezone,
        select(_SALES.c.id)
        .where(_SALES.c.idempotency_key == bindparam("key"))
        .scalar_subquery()
        .label("key_sale_id"),
    )
    .select_from(
        _METERS.join(_GATEWAYS, _GATEWAYS.c.id == _METERS.c.gateway_id)
        .join(_SITES, _SITES.c.id == _GATEWAYS.c.site_id)
        .outerjoin(_DEFAULTS, _DEFAULTS.c.site_id == _GATEWAYS.c.site_id)
        .outerjoin(_ACCOUNTS, _ACCOUNTS.c.id == _METERS.c.account_id)
    )
    .where(_METERS.c.id == bindparam("meter"))
)
_KEY_SALE = select(_SALES.c.id).where(_SALES.c.idempotency_key == bindparam("key"))


def _insert_sale(dialect_insert: Any) -> Any:
    """INSERT … ON CONFLICT on the key: a concurrent request with the same key (on PostgreSQL,
    for another meter, so not queued behind our sequence row) makes the insert wait for it and
    then insert nothing, instead of failing the whole transaction."""
    return (
        dialect_insert(_SALES)
        .on_conflict_do_nothing(index_elements=[_SALES.c.idempotency_key])
        .returning(_SALES.c.id)
    )


_INSERT_SALE = {
    "postgresql": _insert_sale(postgresql.insert),
    "sqlite": _insert_sale(sqlite.insert),
}
_FINISH_SALE = (
    update(_SALES)
    .where(_SALES.c.id == bindparam("sale"))
    .values(receipt_no=bindparam("receipt"), command_id=bindparam("command"))
)


def _replayed(
    session: Session,
    conn: Connection,
    meter_id: str,
    number: int | None,
    sale_id: int,
    digest: str,
    key: str | None,
) -> tuple[Sale, bool]:
    """A request whose key sale ``sale_id`` already holds: that sale again, or 409 for another
    body. The purchase number this request took goes back first, as a replay is committed (the
    sequence row is still ours: nobody took a later number)."""
    assert key is not None  # only an idempotency key finds an earlier sale
    if number is not None:
        conn.execute(_GIVE_BACK_NUMBER, {"meter": meter_id})
    existing = session.get(Sale, sale_id)
    if existing is None:  # it was read in this transaction; only a deletion could do this
        raise ConflictError(f"the sale holding Idempotency-Key {key!r} is gone; retry")
    check_replay(existing, digest, key)
    return existing, False


def sell(
    session: Session,
    meter_id: str,
    amount_micro_yuan: Any,
    method: Any,
    actor: Actor,
    *,
    idempotency_key: str | None = None,
    now: int | None = None,
    methods: tuple[str, ...] = CASHIER_METHODS,
) -> tuple[Sale, bool]:
    """Sell credit: returns ``(sale, created)``; ``created`` is False when the idempotency key
    replays an earlier identical request. The sale is ``pending`` with a ``credit`` command
    carrying the meter's next purchase number; the hoarding cap is checked against the mirror
    balance plus credits still pending. ``method`` is one of ``methods``: a cashier's
    (``checks.CASHIER_METHODS``) unless a payment provider sells (``PROVIDER_METHODS``)."""
    stamp = now if now is not None else now_ts()
    key = check_key(idempotency_key)
    amount = check_amount(amount_micro_yuan)
    method = check_method(method, methods)
    digest = request_hash({"op": "sale", "meter": meter_id, "amount": amount, "method": method})
    session.flush()  # the Core statements below must see what the caller changed through the ORM
    conn = session.connection()
    number = conn.execute(_TAKE_NUMBER, {"meter": meter_id}).scalar()
    facts = conn.execute(_SALE_FACTS, {"meter": meter_id, "key": key}).first()
    if facts is None:
        # No such meter; a key used before still answers first (409 rather than 404).
        held_by = conn.execute(_KEY_SALE, {"key": key}).scalar() if key is not None else None
        if held_by is not None:
            return _replayed(session, conn, meter_id, number, held_by, digest, key)
        raise NotFoundError(f"meter {meter_id!r} does not exist")
    if facts.key_sale_id is not None:
        return _replayed(session, conn, meter_id, number, facts.key_sale_id, digest, key)
    if not facts.prepaid:
        raise ConflictError(f"meter {meter_id} is a plain metering instrument; it cannot be sold")
    if facts.account_id is None or facts.account_status != "open":
        raise ConflictError(
            f"meter {meter_id} has no open account; open one (POST /api/v1/accounts) first"
        )
    max_sale = facts.max_sale if facts.max_sale is not None else MAX_SALE_MICRO_YUAN
    if amount > max_sale:
        raise RuleError(
            f"a sale of {yuan(amount)} yuan is over this site's limit of {yuan(max_sale)} yuan "
            f"per sale ({max_sale} micro-yuan); sell at most that, or ask a supervisor to change "
            "the limit (max_sale_micro_yuan in the site defaults)",
            "amount_micro_yuan",
        )
    if facts.cap is not None:
        after = facts.balance_micro_yuan + int(facts.pending) + amount
        if after > facts.cap:
            room = max(0, facts.cap - (after - amount))
            raise RuleError(
                f"selling {yuan(amount)} yuan would bring meter {meter_id} to {yuan(after)} "
                f"yuan, over its hoarding cap of {yuan(facts.cap)} yuan ({facts.cap} "
                f"micro-yuan); sell at most {room} micro-yuan",
                "amount_micro_yuan",
            )
    if number is None:
        # A meter made without its sequence row (they are made with the meter).
        conn.execute(_FIRST_NUMBER, {"meter": meter_id})
        number = 1
    values: dict[str, Any] = {
        "meter_id": meter_id,
        "account_id": facts.account_id,
        "amount_micro_yuan": amount,
        "method": method,
        "purchase_no": number,
        "receipt_no": None,
        "idempotency_key": key,
        "request_hash": digest,
        "status": PENDING,
        "reason": None,
        "operator_id": actor.operator_id,
        "command_id": None,
        "created_ts": stamp,
        "resolved_ts": None,
    }
    sale_id = conn.execute(_INSERT_SALE[conn.dialect.name], values).scalar()
    if sale_id is None:
        # The key was taken by a request that committed while we waited for it.
        held_by = conn.execute(_KEY_SALE, {"key": key}).scalar()
        if held_by is None:
            raise ConflictError(f"a concurrent request holds Idempotency-Key {key!r}; retry")
        return _replayed(session, conn, meter_id, number, held_by, digest, key)
    values["id"] = sale_id
    values["receipt_no"] = receipt_number("S", sale_id, facts.timezone, stamp)
    values["command_id"] = commands.enqueue_id(
        session,
        gateway_id=facts.gateway_id,
        meter_id=meter_id,
        op="credit",
        args={"purchase_no": number, "amount_micro_yuan": amount},
        action="sale",
        ref=("sale", sale_id),
        actor=actor,
        now=stamp,
    )
    conn.execute(
        _FINISH_SALE,
        {"sale": sale_id, "receipt": values["receipt_no"], "command": values["command_id"]},
    )
    sale = Sale(**values)
    audit.write(session, actor, "sale.create", "sale", sale_id, after=sale_to_dict(sale), now=stamp)
    # Into the session as the persistent row it is (no history: nothing to flush again).
    make_transient_to_detached(sale)
    session.add(sale)
    return sale, True


def transfer_in(
    session: Session,
    meter: Meter,
    amount_micro_yuan: Any,
    actor: Actor,
    *,
    account_id: int | None,
    source: str = "",
    now: int | None = None,
) -> TransferIn:
    """Move an opening balance from a tenant's old meter onto ``meter`` (at account opening)."""
    stamp = now if now is not None else now_ts()
    amount = check_amount(amount_micro_yuan, "transfer_in_micro_yuan")
    item = TransferIn(
        meter_id=meter.id,
        account_id=account_id,
        amount_micro_yuan=amount,
        source=str(source)[:200],
        status=PENDING,
        operator_id=actor.operator_id,
        created_ts=stamp,
    )
    session.add(item)
    session.flush()
    command = commands.enqueue(
        session,
        gateway_id=meter.gateway_id,
        meter_id=meter.id,
        op="transfer_in",
        args={"amount_micro_yuan": amount},
        action="transfer_in",
        ref=("transfer_in", item.id),
        actor=actor,
        now=stamp,
    )
    item.command_id = command.id
    record(
        session,
        actor,
        "transfer_in.create",
        "transfer_in",
        item.id,
        after={"meter": meter.id, "amount_micro_yuan": amount},
        now=stamp,
    )
    return item
