"""Accounts (F14–F17): open an account for a tenant with one or more meters (a transfer-in per
meter), add a meter later, close it with a final settlement.

Close, step by step: ``close_account`` moves the account to ``closing`` and sends
``close_account`` to every meter with a pending ``Settlement``. When a meter's result comes
back ``applied`` (``settle``), the settled amount is the mirror balance at that point of the
uplink (every reading before the result is already counted, because the uplink is applied in
order): a positive balance is credit refunded to the tenant (a settlement refund), a negative
one is debt the tenant owes (a settlement credit, which brings the meter to zero). The meter
leaves the account and shows ``closed``; when every meter is settled the account is ``closed``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud import commands, ledger, records, vending
from cloud.audit import Actor, record
from cloud.errors import ConflictError, InvalidError, NotFoundError
from cloud.models import (
    APPLIED,
    PENDING,
    Account,
    AccountMeter,
    Customer,
    Meter,
    PurchaseSequence,
    Refund,
    Reversal,
    Sale,
    Settlement,
    SiteDefaults,
    TransferIn,
    now_ts,
)

OPEN, CLOSING, CLOSED = "open", "closing", "closed"


def _customer(session: Session, spec: Any) -> Customer:
    if isinstance(spec, int) and not isinstance(spec, bool):
        customer = session.get(Customer, spec)
        if customer is None:
            raise InvalidError(f"customer {spec} does not exist", "customer")
        return customer
    if not isinstance(spec, dict):
        raise InvalidError("customer must be a customer id or {name, phone, ...}", "customer")
    unknown = set(spec) - {"name", "phone", "id_number", "email", "note"}
    if unknown:
        raise InvalidError(f"customer has unknown field {sorted(unknown)[0]!r}", "customer")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidError("customer.name is required (the tenant's name)", "customer.name")
    for field in ("phone", "id_number", "email", "note"):
        if spec.get(field) is not None and not isinstance(spec[field], str):
            raise InvalidError(f"customer.{field} must be text", f"customer.{field}")
    customer = Customer(
        name=name.strip()[:200],
        phone=spec.get("phone"),
        id_number=spec.get("id_number"),
        email=spec.get("email"),
        note=spec.get("note") or "",
    )
    session.add(customer)
    session.flush()
    return customer


def _meter_specs(meters: Any) -> list[tuple[str, int, str]]:
    if not isinstance(meters, list) or not meters:
        raise InvalidError("meters must be a non-empty list of {meter, transfer_in_micro_yuan}")
    specs: list[tuple[str, int, str]] = []
    for i, spec in enumerate(meters):
        where = f"meters[{i}]"
        if isinstance(spec, str):
            spec = {"meter": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("meter"), str):
            raise InvalidError(f"{where} must be {{meter: id, transfer_in_micro_yuan}}", where)
        unknown = set(spec) - {"meter", "transfer_in_micro_yuan", "transfer_source"}
        if unknown:
            raise InvalidError(f"{where} has unknown field {sorted(unknown)[0]!r}", where)
        amount = spec.get("transfer_in_micro_yuan", 0)
        if amount != 0:
            records.check_amount(amount, f"{where}.transfer_in_micro_yuan")
        source = spec.get("transfer_source") or ""
        if not isinstance(source, str):
            raise InvalidError(f"{where}.transfer_source must be text", f"{where}.transfer_source")
        specs.append((spec["meter"], amount, source))
    ids = [m for m, _, _ in specs]
    if len(set(ids)) != len(ids):
        raise InvalidError("a meter is listed twice", "meters")
    return specs


def _attach(
    session: Session,
    account: Account,
    meter_id: str,
    transfer_micro_yuan: int,
    actor: Actor,
    now: int,
    where: str,
    source: str = "",
) -> Meter:
    meter = session.get(Meter, meter_id, with_for_update=True)
    if meter is None:
        raise InvalidError(f"meter {meter_id!r} does not exist", where)
    if not meter.prepaid:
        raise InvalidError(f"meter {meter_id} is a plain metering instrument", where)
    if meter.account_id is not None:
        raise ConflictError(f"meter {meter_id} already belongs to account {meter.account_id}")
    if meter.gateway.site_id != account.site_id:
        raise InvalidError(f"meter {meter_id} is at another site than the account", where)
    meter.account_id = account.id
    account.links.append(AccountMeter(meter_id=meter.id, added_ts=now))
    if session.get(PurchaseSequence, meter.id) is None:
        session.add(PurchaseSequence(meter_id=meter.id, last_no=0))
    _send_settings(session, meter, actor, now)
    commands.enqueue(
        session,
        gateway_id=meter.gateway_id,
        meter_id=meter.id,
        op="open_account",
        action="open_account",
        actor=actor,
        now=now,
    )
    if transfer_micro_yuan:
        vending.transfer_in(
            session,
            meter,
            transfer_micro_yuan,
            actor,
            account_id=account.id,
            source=source,
            now=now,
        )
    return meter


# Settings a meter takes from its site's defaults (F13) when it has none of its own.
DEFAULTED_SETTINGS = ("alarm1_micro_yuan", "alarm2_micro_yuan", "hoarding_cap_micro_yuan",
                      "overload_power_w")  # fmt: skip


def effective_settings(session: Session, meter: Meter) -> dict[str, Any]:
    """What the collector needs to bill and alarm ``meter``: the meter's own values (imported
    or dispatched), else its site's defaults (F13): price, alarm amounts, hoarding cap, overload
    threshold. A meter with a tariff of its own gets no default price."""
    defaults = session.get(SiteDefaults, meter.gateway.site_id)
    out: dict[str, Any] = {}
    own_price = meter.tariff_id is not None or meter.price_override_micro_yuan_per_kwh is not None
    if not own_price and defaults is not None and defaults.price_micro_yuan_per_kwh is not None:
        out["price_override_micro_yuan_per_kwh"] = defaults.price_micro_yuan_per_kwh
    if meter.price_override_micro_yuan_per_kwh is not None:
        out["price_override_micro_yuan_per_kwh"] = meter.price_override_micro_yuan_per_kwh
    for name in DEFAULTED_SETTINGS:
        value = getattr(meter, name)
        if value is None and defaults is not None:
            value = getattr(defaults, name)
        if value is not None:
            out[name] = value
    out.update(meter.settings or {})
    out.pop("tariff_id", None)  # sent with its versions by dispatch_tariff
    return out


def _send_settings(session: Session, meter: Meter, actor: Actor, now: int) -> None:
    """Before a meter's account opens, send what the collector bills and alarms it by: the cloud
    holds prices and thresholds, the collector enforces them (architecture.md, "Where the truth
    lives"). Without this a meter set up in the cloud would be sold credit and never charged."""
    if meter.tariff_id is not None:
        commands.issue(
            session, [meter], "dispatch_tariff", {"tariff_id": meter.tariff_id}, actor, now=now
        )
    settings = effective_settings(session, meter)
    if settings:
        send_settings(session, meter, settings, actor, now)


def send_settings(
    session: Session, meter: Meter, settings: dict[str, Any], actor: Actor, now: int
) -> None:
    """Queue a ``settings`` command (checked by the engine's rules) without making the values
    the meter's own: they stay defaults, which a later change of the site's defaults updates."""
    commands.enqueue(
        session,
        gateway_id=meter.gateway_id,
        meter_id=meter.id,
        op="settings",
        args=commands.validate_settings(settings),
        action="dispatch_settings",
        actor=actor,
        now=now,
    )


def open_account(
    session: Session,
    customer: Any,
    meters: Any,
    actor: Actor,
    *,
    number: str | None = None,
    note: str = "",
    now: int | None = None,
) -> Account:
    """Open an account: ``customer`` is an existing customer id or ``{name, phone, ...}``;
    ``meters`` is ``[{"meter": id, "transfer_in_micro_yuan": n}, ...]`` (all at one site, none
    in another account). Sends ``open_account`` (and ``transfer_in`` when n > 0) per meter."""
    stamp = now if now is not None else now_ts()
    specs = _meter_specs(meters)
    first = session.get(Meter, specs[0][0])
    if first is None:
        raise InvalidError(f"meter {specs[0][0]!r} does not exist", "meters[0]")
    if number is not None:
        if not isinstance(number, str) or not number.strip() or len(number) > 64:
            raise InvalidError("number must be text of 1–64 characters", "number")
        if session.scalars(select(Account.id).where(Account.number == number)).first():
            raise ConflictError(f"account number {number!r} is taken")
    person = _customer(session, customer)
    account = Account(
        number=number or f"pending-{stamp}-{person.id}",
        customer_id=person.id,
        site_id=first.gateway.site_id,
        status=OPEN,
        opened_ts=stamp,
        note=str(note or "")[:1000],
    )
    session.add(account)
    session.flush()
    if number is None:
        account.number = f"A{account.id:06d}"
    for i, (meter_id, amount, source) in enumerate(specs):
        _attach(session, account, meter_id, amount, actor, stamp, f"meters[{i}]", source)
    record(session, actor, "account.open", "account", account.id, after=to_dict(account), now=stamp)
    return account


def add_meter(
    session: Session,
    account_id: int,
    meter_id: str,
    actor: Actor,
    *,
    transfer_in_micro_yuan: int = 0,
    transfer_source: str = "",
    now: int | None = None,
) -> Account:
    """Add a meter to an open account (F14: meters added later)."""
    stamp = now if now is not None else now_ts()
    account = get(session, account_id)
    if account.status != OPEN:
        raise ConflictError(f"account {account.id} is {account.status}; meters join open accounts")
    (spec,) = _meter_specs(
        [
            {
                "meter": meter_id,
                "transfer_in_micro_yuan": transfer_in_micro_yuan,
                "transfer_source": transfer_source,
            }
        ]
    )
    before = to_dict(account)
    _attach(session, account, spec[0], spec[1], actor, stamp, "meter", spec[2])
    record(
        session, actor, "account.add_meter", "account", account.id, before, to_dict(account), stamp
    )
    return account


def _pending_money(session: Session, meter_id: str) -> str | None:
    for model, name in ((Sale, "sale"), (Refund, "refund"), (Reversal, "reversal")):
        row = session.scalars(
            select(model.id).where(model.meter_id == meter_id, model.status == PENDING)
        ).first()
        if row is not None:
            return f"{name} {row}"
    row = session.scalars(
        select(TransferIn.id).where(TransferIn.meter_id == meter_id, TransferIn.status == PENDING)
    ).first()
    return f"transfer-in {row}" if row is not None else None


def close_account(
    session: Session, account_id: int, actor: Actor, *, now: int | None = None
) -> Account:
    """Start closing: a pending settlement and a ``close_account`` command per meter. Refused
    while a meter still has money in flight (wait for the collector, or it would be settled
    without it). On an account already closing, only meters whose settlement the collector
    rejected get a new one (a retry); the others are left to finish."""
    stamp = now if now is not None else now_ts()
    account = get(session, account_id)
    if account.status == CLOSED:
        raise ConflictError(f"account {account.id} is already closed")
    links = [link for link in account.links if link.removed_ts is None]
    pending = set(
        session.scalars(
            select(Settlement.meter_id).where(
                Settlement.account_id == account.id, Settlement.status == PENDING
            )
        )
    )
    todo = [link for link in links if link.meter_id not in pending]
    for link in todo:
        busy = _pending_money(session, link.meter_id)
        if busy is not None:
            raise ConflictError(
                f"meter {link.meter_id} has {busy} waiting for its collector; close the account "
                "once it is applied or rejected"
            )
    before = to_dict(account)
    account.status = CLOSING
    for link in todo:
        meter = session.get(Meter, link.meter_id)
        assert meter is not None
        settlement = Settlement(
            account_id=account.id,
            meter_id=meter.id,
            status=PENDING,
            operator_id=actor.operator_id,
            created_ts=stamp,
        )
        session.add(settlement)
        session.flush()
        command = commands.enqueue(
            session,
            gateway_id=meter.gateway_id,
            meter_id=meter.id,
            op="close_account",
            action="close_account",
            ref=("settlement", settlement.id),
            actor=actor,
            now=stamp,
        )
        settlement.command_id = command.id
    if not links:
        account.status = CLOSED
        account.closed_ts = stamp
    record(session, actor, "account.close", "account", account.id, before, to_dict(account), stamp)
    return account


def settle(
    session: Session,
    settlement: Settlement,
    meter: Meter,
    edge_balance_micro_yuan: int | None,
    actor: Actor,
    now: int,
    *,
    settled_micro_yuan: int | None = None,
) -> None:
    """The edge closed the meter: record the final settlement and take the meter off the
    account (called by ``cloud.results`` for an applied ``close_account``).

    ``settled_micro_yuan`` is the balance the collector settled (its result says so). It is the
    truth: the collector enforces and rates, and envelopes carrying its last charges may still
    be on their way (a resend after a broker restart arrives after the result). The mirror then
    converges to zero once they arrive. Only a collector too old to say falls back to the
    mirror balance."""
    balance = meter.balance_micro_yuan if settled_micro_yuan is None else settled_micro_yuan
    settlement.balance_micro_yuan = balance
    settlement.edge_balance_micro_yuan = edge_balance_micro_yuan
    settlement.refund_due_micro_yuan = max(balance, 0)
    settlement.debt_owed_micro_yuan = max(-balance, 0)
    if balance > 0:
        ledger.refund(meter, balance)
    elif balance < 0:
        ledger.credit(meter, -balance)
    settlement.status = APPLIED
    settlement.resolved_ts = now
    meter.account_id = None
    meter.display_state = "closed"
    account = session.get(Account, settlement.account_id)
    assert account is not None
    for link in account.links:
        if link.meter_id == meter.id and link.removed_ts is None:
            link.removed_ts = now
    if all(link.removed_ts is not None for link in account.links):
        account.status = CLOSED
        account.closed_ts = now
    record(
        session,
        actor,
        "settlement.applied",
        "settlement",
        settlement.id,
        after=settlement_to_dict(settlement),
        now=now,
    )


def get(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFoundError(f"account {account_id} does not exist")
    return account


def settlement_to_dict(item: Settlement) -> dict[str, Any]:
    return {
        "id": item.id,
        "account": item.account_id,
        "meter": item.meter_id,
        "status": item.status,
        "reason": item.reason,
        "balance_micro_yuan": item.balance_micro_yuan,
        "refund_due_micro_yuan": item.refund_due_micro_yuan,
        "debt_owed_micro_yuan": item.debt_owed_micro_yuan,
        "edge_balance_micro_yuan": item.edge_balance_micro_yuan,
        "command_id": item.command_id,
        "created_ts": item.created_ts,
        "resolved_ts": item.resolved_ts,
    }


def to_dict(account: Account, session: Session | None = None) -> dict[str, Any]:
    """The API shape of an account; with a session, its settlements too."""
    out: dict[str, Any] = {
        "id": account.id,
        "number": account.number,
        "status": account.status,
        "site": account.site_id,
        "customer": {
            "id": account.customer.id,
            "name": account.customer.name,
            "phone": account.customer.phone,
        },
        "meters": [link.meter_id for link in account.links if link.removed_ts is None],
        "former_meters": [link.meter_id for link in account.links if link.removed_ts is not None],
        "opened_ts": account.opened_ts,
        "closed_ts": account.closed_ts,
        "note": account.note,
    }
    if session is not None:
        out["settlements"] = [
            settlement_to_dict(s)
            for s in session.scalars(
                select(Settlement)
                .where(Settlement.account_id == account.id)
                .order_by(Settlement.id)
            )
        ]
    return out
