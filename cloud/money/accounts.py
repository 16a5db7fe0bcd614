"""Accounts (F14, F15): open an account for a tenant with one or more meters (a transfer-in per
meter), add a meter later; the API shapes of accounts. Closing is ``cloud.money.settlement``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.control import commands
from cloud.control import settings as site_defaults
from cloud.errors import ConflictError, InvalidError, NotFoundError, RuleError
from cloud.models import (
    Account,
    AccountMeter,
    Customer,
    Meter,
    PurchaseSequence,
    Settlement,
    now_ts,
)
from cloud.money import checks, sales
from cloud.values import (
    EMAIL_MAX,
    ID_NUMBER_MAX,
    NAME_MAX,
    NOTE_MAX,
    check_id,
    check_int,
    check_line,
    check_note,
    check_phone,
    is_int,
)

OPEN, CLOSING, CLOSED = "open", "closing", "closed"


def _customer(session: Session, spec: Any) -> Customer:
    if isinstance(spec, int) and not isinstance(spec, bool):
        check_int(spec, "customer", 1)
        customer = session.get(Customer, spec)
        if customer is None:
            raise NotFoundError(f"customer {spec} does not exist", "customer")
        return customer
    if not isinstance(spec, dict):
        raise InvalidError("customer must be a customer id or {name, phone, ...}", "customer")
    unknown = set(spec) - {"name", "phone", "id_number", "email", "note"}
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidError(f"customer has unknown field {name!r}", f"customer.{name}")
    customer = Customer(
        name=check_line(spec.get("name"), "customer.name", NAME_MAX),
        phone=check_phone(spec.get("phone"), "customer.phone"),
        id_number=check_line(spec.get("id_number"), "customer.id_number", ID_NUMBER_MAX,
                             required=False),
        email=check_line(spec.get("email"), "customer.email", EMAIL_MAX, required=False),
        note=check_note(spec.get("note"), "customer.note", NOTE_MAX),
    )  # fmt: skip
    session.add(customer)
    session.flush()
    return customer


MAX_METERS_PER_REQUEST = 100


def _meter_specs(meters: Any) -> list[tuple[str, int, str]]:
    if not isinstance(meters, list) or not meters or len(meters) > MAX_METERS_PER_REQUEST:
        raise InvalidError(
            f"meters must be a list of 1–{MAX_METERS_PER_REQUEST} meter ids or "
            "{meter, transfer_in_micro_yuan}",
            "meters",
        )
    specs: list[tuple[str, int, str]] = []
    for i, spec in enumerate(meters):
        where = f"meters[{i}]"
        if isinstance(spec, str):
            spec = {"meter": spec}
        if not isinstance(spec, dict):
            raise InvalidError(f"{where} must be {{meter: id, transfer_in_micro_yuan}}", where)
        unknown = set(spec) - {"meter", "transfer_in_micro_yuan", "transfer_source"}
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidError(f"{where} has unknown field {name!r}", f"{where}.{name}")
        meter_id = check_id(spec.get("meter"), f"{where}.meter")
        amount = spec.get("transfer_in_micro_yuan", 0)
        if amount != 0 or not is_int(amount):
            checks.check_amount(amount, f"{where}.transfer_in_micro_yuan")
        source = check_line(
            spec.get("transfer_source") or None, f"{where}.transfer_source", NAME_MAX,
            required=False,
        ) or ""  # fmt: skip
        specs.append((meter_id, amount, source))
    ids = [m for m, _, _ in specs]
    if len(set(ids)) != len(ids):
        twice = next(m for m in ids if ids.count(m) > 1)
        raise RuleError(f"meter {twice} is listed twice", "meters")
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
        raise NotFoundError(f"meter {meter_id!r} does not exist", where)
    if not meter.prepaid:
        raise RuleError(
            f"meter {meter_id} is a plain metering instrument: it has no account", where
        )
    if meter.account_id is not None:
        raise ConflictError(
            f"meter {meter_id} already belongs to account {meter.account_id}", where
        )
    if meter.gateway.site_id != account.site_id:
        raise RuleError(f"meter {meter_id} is at another site than the account", where)
    meter.account_id = account.id
    account.links.append(AccountMeter(meter_id=meter.id, added_ts=now))
    if session.get(PurchaseSequence, meter.id) is None:
        session.add(PurchaseSequence(meter_id=meter.id, last_no=0))
    site_defaults.send_meter_settings(session, meter, actor, now)
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
        sales.transfer_in(
            session,
            meter,
            transfer_micro_yuan,
            actor,
            account_id=account.id,
            source=source,
            now=now,
        )
    return meter


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
        raise NotFoundError(f"meter {specs[0][0]!r} does not exist", "meters[0].meter")
    if number is not None:
        check_line(number, "number", 64)
        if session.scalars(select(Account.id).where(Account.number == number)).first():
            raise ConflictError(f"account number {number!r} is taken", "number")
    note = check_note(note, "note", NOTE_MAX)
    person = _customer(session, customer)
    account = Account(
        number=number or f"pending-{stamp}-{person.id}",
        customer_id=person.id,
        site_id=first.gateway.site_id,
        status=OPEN,
        opened_ts=stamp,
        note=note,
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
