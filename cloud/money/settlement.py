"""Closing an account (F16, F17): every meter of the tenant closed and its money settled
(退款 / 补缴 / 无费用), one settlement record per meter.

Close, step by step: ``close_account`` moves the account to ``closing`` and sends
``close_account`` to every meter with a pending ``Settlement``. When a meter's result comes
back ``applied`` (``settle``), the settled amount is the mirror balance at that point of the
uplink (every reading before the result is already counted, because the uplink is applied in
order): a positive balance is credit refunded to the tenant (a settlement refund), a negative
one is debt the tenant owes (a settlement credit, which brings the meter to zero). The meter
leaves the account and shows ``closed``; when every meter is settled the account is ``closed``.

A meter swap (``cloud.money.swap``, B06) closes one meter of an open account the same way
(``start``); when that settlement is applied, ``settle`` moves the settled balance (less any
energy read by hand past the collector's last reading) to the swap's new meter as a
transfer-in instead of paying it out; a debt stays for the tenant to pay.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.control import commands
from cloud.errors import ConflictError
from cloud.models import (
    APPLIED,
    PENDING,
    Account,
    Meter,
    MeterSwap,
    Refund,
    Reversal,
    Sale,
    Settlement,
    TransferIn,
    now_ts,
)
from cloud.money import ledger, sales
from cloud.money.accounts import CLOSED, CLOSING, get, settlement_to_dict, to_dict


def money_in_flight(session: Session, meter_id: str) -> str | None:
    """The first money record of the meter still waiting for its collector (``"sale 12"``), or
    None: a meter is settled only once nothing is on its way."""
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
        busy = money_in_flight(session, link.meter_id)
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
        start(session, account, meter, actor, stamp)
    if not links:
        account.status = CLOSED
        account.closed_ts = stamp
    record(session, actor, "account.close", "account", account.id, before, to_dict(account), stamp)
    return account


def start(
    session: Session,
    account: Account,
    meter: Meter,
    actor: Actor,
    now: int,
    *,
    reason: str | None = None,
) -> Settlement:
    """One meter's pending settlement and the ``close_account`` command that asks its collector
    to settle it (a close of the account, or a meter swap)."""
    settlement = Settlement(
        account_id=account.id,
        meter_id=meter.id,
        status=PENDING,
        reason=reason,
        operator_id=actor.operator_id,
        created_ts=now,
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
        now=now,
    )
    settlement.command_id = command.id
    return settlement


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
    account (called by ``cloud.uplink.results`` for an applied ``close_account``).

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
    swap = session.scalars(
        select(MeterSwap).where(MeterSwap.settlement_id == settlement.id)
    ).first()
    if swap is not None:
        _finish_swap(session, swap, meter, balance, actor, now)
    record(
        session,
        actor,
        "settlement.applied",
        "settlement",
        settlement.id,
        after=settlement_to_dict(settlement),
        now=now,
    )


def _finish_swap(
    session: Session, swap: MeterSwap, old: Meter, balance: int, actor: Actor, now: int
) -> None:
    """The old meter of a swap is settled at ``balance``: energy typed by hand past the
    collector's last reading is charged at the swap's price, the rest moves to the new meter
    as a transfer-in; what the tenant still owes is recorded (补缴)."""
    unmetered_wh = 0
    if swap.final_energy_wh is not None and old.energy_wh is not None:
        unmetered_wh = max(0, swap.final_energy_wh - old.energy_wh)
    charge = unmetered_wh * (swap.price_micro_yuan_per_kwh or 0) // 1000
    net = balance - charge
    swap.unmetered_energy_wh = unmetered_wh
    swap.unmetered_charge_micro_yuan = charge
    swap.settled_balance_micro_yuan = balance
    swap.moved_micro_yuan = max(net, 0)
    swap.debt_owed_micro_yuan = max(-net, 0)
    swap.status = "settled"
    swap.settled_ts = now
    new = session.get(Meter, swap.new_meter_id)
    if net > 0 and new is not None and new.account_id == swap.account_id:
        item = sales.transfer_in(
            session,
            new,
            net,
            actor,
            account_id=swap.account_id,
            source=f"meter swap from {old.id}",
            now=now,
        )
        swap.transfer_in_id = item.id
    elif net > 0:  # the new meter left the account meanwhile: nothing to move it to
        swap.moved_micro_yuan = 0
        swap.reason = f"meter {swap.new_meter_id} is no longer in the account; nothing moved"
