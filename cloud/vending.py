"""Vending: sell credit (F20), refund (F22), reverse a sale (F24), transfer-in (F14).

Every movement is created ``pending`` with the command that carries it to the collector, and
counts in the meter's ledger mirror only when the collector's result says ``applied``
(``cloud.results``). A refund or reversal is therefore two-phase: the money goes back to the
tenant only after the edge confirms it took the credit away; a rejected one returns nothing.

Idempotency (sales, refunds): the client's ``Idempotency-Key`` is stored with a hash of the
request body. The same key and body returns the original record; the same key with another
body is ``IdempotencyConflict`` (409).

Concurrency: a sale takes its meter's purchase number with ``UPDATE … RETURNING`` (a row lock on
PostgreSQL; SQLite transactions start ``BEGIN IMMEDIATE``), so numbers are gap-free, and two
requests with one key serialise; the unique key column catches the rest.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from cloud import commands
from cloud.audit import Actor, record
from cloud.errors import ConflictError, IdempotencyConflict, InvalidError, NotFoundError
from cloud.models import (
    APPLIED,
    PENDING,
    REJECTED,
    Account,
    Gateway,
    Meter,
    PurchaseSequence,
    Refund,
    Reversal,
    Sale,
    SiteDefaults,
    TransferIn,
    now_ts,
)
from cloud.records import (
    check_amount,
    check_key,
    check_method,
    receipt_no,
    refund_to_dict,
    request_hash,
    reversal_to_dict,
    sale_to_dict,
)


def _serialized(session: Session) -> bool:
    """Whether this transaction runs alone: SQLite write transactions start ``BEGIN
    IMMEDIATE``, so nothing can commit between our first statement and our commit."""
    return session.get_bind().dialect.name == "sqlite"


def get_meter(
    session: Session, meter_id: str, lock: bool = False, with_place: bool = False
) -> Meter:
    options = [joinedload(Meter.gateway).joinedload(Gateway.site)] if with_place else []
    meter = session.get(Meter, meter_id, with_for_update=lock or None, options=options)
    if meter is None:
        raise NotFoundError(f"meter {meter_id!r} does not exist")
    return meter


def open_account_of(session: Session, meter: Meter) -> Account:
    """The meter's open account; ``ConflictError`` if it has none."""
    account = session.get(Account, meter.account_id) if meter.account_id is not None else None
    if account is None or account.status != "open":
        raise ConflictError(
            f"meter {meter.id} has no open account; open one (POST /api/v1/accounts) first"
        )
    return account


def hoarding_cap(session: Session, meter: Meter) -> int | None:
    """The meter's hoarding cap (囤积金额上限): its own, else the site default, else none."""
    if meter.hoarding_cap_micro_yuan is not None:
        return meter.hoarding_cap_micro_yuan
    defaults = session.get(SiteDefaults, meter.gateway.site_id)
    return defaults.hoarding_cap_micro_yuan if defaults is not None else None


def pending_credits(session: Session, meter_id: str) -> int:
    """Credits issued but not yet applied by the edge (sales and transfers-in), one query."""
    sales = (
        select(func.coalesce(func.sum(Sale.amount_micro_yuan), 0))
        .where(Sale.meter_id == meter_id, Sale.status == PENDING)
        .scalar_subquery()
    )
    transfers = (
        select(func.coalesce(func.sum(TransferIn.amount_micro_yuan), 0))
        .where(TransferIn.meter_id == meter_id, TransferIn.status == PENDING)
        .scalar_subquery()
    )
    return int(session.scalar(select(sales + transfers)) or 0)


def pending_debits(session: Session, meter_id: str) -> int:
    """Refunds and reversals issued but not yet confirmed by the edge."""
    refunds = session.scalar(
        select(func.coalesce(func.sum(Refund.amount_micro_yuan), 0)).where(
            Refund.meter_id == meter_id, Refund.status == PENDING
        )
    )
    reversals = session.scalar(
        select(func.coalesce(func.sum(Reversal.amount_micro_yuan), 0)).where(
            Reversal.meter_id == meter_id, Reversal.status == PENDING
        )
    )
    return int(refunds or 0) + int(reversals or 0)


def _next_purchase_no(session: Session, meter_id: str) -> int:
    """Take the meter's next purchase number: one ``UPDATE … RETURNING``, which also holds the
    sequence row locked on PostgreSQL until the transaction ends (a refused sale rolls the
    number back with everything else)."""
    number = session.execute(
        update(PurchaseSequence)
        .where(PurchaseSequence.meter_id == meter_id)
        .values(last_no=PurchaseSequence.last_no + 1)
        .returning(PurchaseSequence.last_no)
        .execution_options(synchronize_session=False)
    ).scalar()
    if number is None:
        # A meter made without its sequence row (they are made with the meter).
        session.add(PurchaseSequence(meter_id=meter_id, last_no=1))
        session.flush()
        return 1
    return int(number)


def _replay(existing: Sale | Refund, digest: str, key: str) -> None:
    if existing.request_hash != digest:
        raise IdempotencyConflict(
            f"Idempotency-Key {key!r} was used for a different request "
            f"({type(existing).__name__.lower()} {existing.id}); use a new key for a new request",
            "Idempotency-Key",
        )


def sell(
    session: Session,
    meter_id: str,
    amount_micro_yuan: Any,
    method: Any,
    actor: Actor,
    *,
    idempotency_key: str | None = None,
    now: int | None = None,
) -> tuple[Sale, bool]:
    """Sell credit: returns ``(sale, created)``; ``created`` is False when the idempotency key
    replays an earlier identical request. The sale is ``pending`` with a ``credit`` command
    carrying the meter's next purchase number; the hoarding cap is checked against the mirror
    balance plus credits still pending."""
    stamp = now if now is not None else now_ts()
    key = check_key(idempotency_key)
    amount = check_amount(amount_micro_yuan)
    method = check_method(method)
    digest = request_hash({"op": "sale", "meter": meter_id, "amount": amount, "method": method})
    if key is not None:
        existing = session.scalars(select(Sale).where(Sale.idempotency_key == key)).first()
        if existing is not None:
            _replay(existing, digest, key)
            return existing, False
    meter = get_meter(session, meter_id, with_place=True)
    if not meter.prepaid:
        raise ConflictError(f"meter {meter.id} is a plain metering instrument; it cannot be sold")
    account = open_account_of(session, meter)
    purchase_no = _next_purchase_no(session, meter.id)
    serialized = _serialized(session)
    if key is not None and not serialized:
        # A request with the same key may have committed while we waited for the lock (on
        # PostgreSQL each statement sees what committed before it started).
        existing = session.scalars(select(Sale).where(Sale.idempotency_key == key)).first()
        if existing is not None:
            _replay(existing, digest, key)
            return existing, False
    cap = hoarding_cap(session, meter)
    if cap is not None:
        after = meter.balance_micro_yuan + pending_credits(session, meter.id) + amount
        if after > cap:
            room = max(0, cap - (after - amount))
            raise InvalidError(
                f"selling {amount} micro-yuan would bring meter {meter.id} to {after}, over its "
                f"hoarding cap of {cap}; sell at most {room}",
                "amount_micro_yuan",
            )
    sale = Sale(
        meter_id=meter.id,
        account_id=account.id,
        amount_micro_yuan=amount,
        method=method,
        purchase_no=purchase_no,
        idempotency_key=key,
        request_hash=digest,
        status=PENDING,
        operator_id=actor.operator_id,
        created_ts=stamp,
    )
    if serialized:
        session.add(sale)
        session.flush()
    else:
        try:
            with session.begin_nested():
                session.add(sale)
                session.flush()
        except IntegrityError:
            # The same key committed by a concurrent request on another meter.
            existing = session.scalars(select(Sale).where(Sale.idempotency_key == key)).first()
            if key is None or existing is None:
                raise
            _replay(existing, digest, key)
            return existing, False
    sale.receipt_no = receipt_no(session, "S", sale.id, meter, stamp)
    command = commands.enqueue(
        session,
        gateway_id=meter.gateway_id,
        meter_id=meter.id,
        op="credit",
        args={"purchase_no": sale.purchase_no, "amount_micro_yuan": amount},
        action="sale",
        ref=("sale", sale.id),
        actor=actor,
        now=stamp,
    )
    sale.command_id = command.id
    record(session, actor, "sale.create", "sale", sale.id, after=sale_to_dict(sale), now=stamp)
    return sale, True


def refund(
    session: Session,
    meter_id: str,
    amount_micro_yuan: Any,
    actor: Actor,
    *,
    method: Any = "cash",
    idempotency_key: str | None = None,
    now: int | None = None,
) -> tuple[Refund, bool]:
    """Ask the edge to take credit back (退电): ``pending`` until its result. Refused here when
    the mirror balance, less refunds already pending, cannot cover it; the edge refuses it too
    if its own balance would go below zero."""
    stamp = now if now is not None else now_ts()
    key = check_key(idempotency_key)
    amount = check_amount(amount_micro_yuan)
    method = check_method(method)
    digest = request_hash({"op": "refund", "meter": meter_id, "amount": amount, "method": method})
    if key is not None:
        existing = session.scalars(select(Refund).where(Refund.idempotency_key == key)).first()
        if existing is not None:
            _replay(existing, digest, key)
            return existing, False
    meter = get_meter(session, meter_id, lock=True)
    if not meter.prepaid:
        raise ConflictError(f"meter {meter.id} is a plain metering instrument; nothing to refund")
    account = open_account_of(session, meter)
    available = meter.balance_micro_yuan - pending_debits(session, meter.id)
    if amount > available:
        raise InvalidError(
            f"meter {meter.id} can refund at most {max(0, available)} micro-yuan now "
            f"(balance {meter.balance_micro_yuan}, refunds pending "
            f"{meter.balance_micro_yuan - available})",
            "amount_micro_yuan",
        )
    item = Refund(
        meter_id=meter.id,
        account_id=account.id,
        amount_micro_yuan=amount,
        method=method,
        idempotency_key=key,
        request_hash=digest,
        status=PENDING,
        operator_id=actor.operator_id,
        created_ts=stamp,
    )
    session.add(item)
    session.flush()
    item.receipt_no = receipt_no(session, "RF", item.id, meter, stamp)
    command = commands.enqueue(
        session,
        gateway_id=meter.gateway_id,
        meter_id=meter.id,
        op="refund",
        args={"amount_micro_yuan": amount},
        action="refund",
        ref=("refund", item.id),
        actor=actor,
        now=stamp,
    )
    item.command_id = command.id
    record(
        session, actor, "refund.create", "refund", item.id, after=refund_to_dict(item), now=stamp
    )
    return item, True


def reverse(
    session: Session,
    sale_id: int,
    actor: Actor,
    *,
    note: str = "",
    now: int | None = None,
) -> tuple[Reversal, bool]:
    """Correct a mistaken sale (冲正): the edge takes that purchase back if its balance allows.
    A sale has at most one reversal that is not rejected; asking again returns it
    (``created`` False)."""
    stamp = now if now is not None else now_ts()
    sale = session.get(Sale, sale_id)
    if sale is None:
        raise NotFoundError(f"sale {sale_id} does not exist")
    existing = session.scalars(
        select(Reversal).where(Reversal.sale_id == sale.id, Reversal.status != REJECTED)
    ).first()
    if existing is not None:
        return existing, False
    if sale.status != APPLIED:
        raise ConflictError(
            f"sale {sale.id} is {sale.status}; only a sale the collector applied can be reversed"
        )
    meter = get_meter(session, sale.meter_id, lock=True)
    available = meter.balance_micro_yuan - pending_debits(session, meter.id)
    if sale.amount_micro_yuan > available:
        raise InvalidError(
            f"meter {meter.id} balance {meter.balance_micro_yuan} (less pending refunds) cannot "
            f"cover reversing {sale.amount_micro_yuan}; refund what is left instead",
            "sale",
        )
    item = Reversal(
        sale_id=sale.id,
        meter_id=meter.id,
        amount_micro_yuan=sale.amount_micro_yuan,
        status=PENDING,
        note=str(note)[:500],
        operator_id=actor.operator_id,
        created_ts=stamp,
    )
    session.add(item)
    session.flush()
    item.receipt_no = receipt_no(session, "RV", item.id, meter, stamp)
    command = commands.enqueue(
        session,
        gateway_id=meter.gateway_id,
        meter_id=meter.id,
        op="reversal",
        args={"purchase_no": sale.purchase_no},
        action="reversal",
        ref=("reversal", item.id),
        actor=actor,
        now=stamp,
    )
    item.command_id = command.id
    record(
        session,
        actor,
        "reversal.create",
        "reversal",
        item.id,
        after=reversal_to_dict(item),
        now=stamp,
    )
    return item, True


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
