"""Reversal (冲正, F24) of a mistaken sale: the edge takes that purchase back if its balance allows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.control import commands
from cloud.errors import ConflictError, NotFoundError, RuleError
from cloud.models import (
    APPLIED,
    PENDING,
    REJECTED,
    Account,
    Reversal,
    Sale,
    now_ts,
)
from cloud.money.checks import get_meter, pending_debits
from cloud.money.records import receipt_no, reversal_to_dict
from cloud.values import SHORT_NOTE_MAX, check_note


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
    note = check_note(note, "note", SHORT_NOTE_MAX)
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
    account = session.get(Account, sale.account_id) if sale.account_id is not None else None
    if account is None or account.status != "open" or meter.account_id != account.id:
        # Its account was closed and settled (its credit paid back): reversing it now would
        # pay it back again, out of whatever the meter holds for its next tenant.
        raise ConflictError(
            f"sale {sale.id} belongs to account {sale.account_id}, which is not open on meter "
            f"{meter.id} any more (closed and settled); it cannot be reversed"
        )
    available = meter.balance_micro_yuan - pending_debits(session, meter.id)
    if sale.amount_micro_yuan > available:
        raise RuleError(
            f"meter {meter.id} balance {meter.balance_micro_yuan} (less pending refunds) cannot "
            f"cover reversing {sale.amount_micro_yuan}; refund what is left instead",
            "sale",
        )
    item = Reversal(
        sale_id=sale.id,
        meter_id=meter.id,
        amount_micro_yuan=sale.amount_micro_yuan,
        status=PENDING,
        note=note,
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


STATUSES = (PENDING, APPLIED, REJECTED)


def list_reversals(
    session: Session,
    *,
    meter: str | None = None,
    sale: int | None = None,
    status: str | None = None,
    start_ts: int | None = None,
    end_ts: int | None = None,
    limit: int = 500,
) -> list[Reversal]:
    """Reversals, newest first, by meter, sale, status and creation time ``[start, end)``."""
    q = select(Reversal).order_by(Reversal.id.desc())
    if meter is not None:
        q = q.where(Reversal.meter_id == meter)
    if sale is not None:
        q = q.where(Reversal.sale_id == sale)
    if status is not None:
        q = q.where(Reversal.status == status)
    if start_ts is not None:
        q = q.where(Reversal.created_ts >= start_ts)
    if end_ts is not None:
        q = q.where(Reversal.created_ts < end_ts)
    return list(session.scalars(q.limit(limit)))


def get(session: Session, reversal_id: int) -> Reversal:
    item = session.get(Reversal, reversal_id)
    if item is None:
        raise NotFoundError(f"reversal {reversal_id} does not exist")
    return item


def get_sale(session: Session, sale_id: int) -> Sale:
    sale = session.get(Sale, sale_id)
    if sale is None:
        raise NotFoundError(f"sale {sale_id} does not exist")
    return sale
