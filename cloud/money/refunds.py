"""Refunds (退电, F22): credit the edge takes back, paid out only once it confirms."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.control import commands
from cloud.errors import ConflictError, RuleError
from cloud.models import (
    PENDING,
    Refund,
    now_ts,
)
from cloud.money.checks import (
    check_amount,
    check_key,
    check_method,
    check_replay,
    get_meter,
    open_account_of,
    pending_debits,
    request_hash,
)
from cloud.money.records import receipt_no, refund_to_dict


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
            check_replay(existing, digest, key)
            return existing, False
    meter = get_meter(session, meter_id, lock=True)
    if not meter.prepaid:
        raise ConflictError(f"meter {meter.id} is a plain metering instrument; nothing to refund")
    account = open_account_of(session, meter)
    available = meter.balance_micro_yuan - pending_debits(session, meter.id)
    if amount > available:
        raise RuleError(
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
