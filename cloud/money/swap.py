"""Swapping a tenant's meter (换表, B06): the old meter's final reading, its balance moved to the
new meter, the new meter's counters starting afresh.

``start`` does it in one transaction, on the services that already exist:

1. the new meter joins the account (``accounts.add_meter``: its prices and thresholds, then
   ``open_account``): the tenant has power on it at once;
2. the old meter is settled like a meter of a closing account (``settlement.start``:
   ``close_account``); its collector reads it a last time, reports the charges not yet
   reported, settles and forces its relay off;
3. when that settlement is applied, ``settlement.settle`` moves the settled balance to the new
   meter as a transfer-in (``sales.transfer_in``, so its collector credits it exactly once);
   a debt is recorded for the tenant to pay at the counter (补缴).

The old meter's final reading is its collector's last one. When the old meter cannot be read
any more (broken display, dead bus), the office types the register value shown on it
(``final_energy_wh``): the energy past the collector's last reading is charged at the price in
force when the swap starts (``price_micro_yuan_per_kwh``, given by the caller: the office
shows it from ``cloud.reporting.usage.price_now``) and taken from what moves.

Counters restart: the new meter has its own register (the collector takes its first reading as
the baseline, nothing is billed for what the register already shows) and its own purchase
numbers. The ledger identity holds on both meters: the old one ends at zero through its
settlement, the new one starts from the transfer-in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.errors import ConflictError, NotFoundError, RuleError
from cloud.models import PENDING, REJECTED, Meter, MeterSwap, Settlement, TransferIn, now_ts
from cloud.money import accounts, settlement
from cloud.values import check_id, check_int, check_note

CLOSING, SETTLED = "closing", "settled"
# A register reading typed by hand: at most 10^12 Wh (a billion kWh).
MAX_REGISTER_WH = 10**12


def _old_meter(session: Session, account_id: int, meter_id: str) -> Meter:
    meter = session.get(Meter, meter_id, with_for_update=True)
    if meter is None:
        raise NotFoundError(f"meter {meter_id!r} does not exist", "old_meter")
    if meter.account_id != account_id:
        raise RuleError(f"meter {meter_id} is not a meter of account {account_id}", "old_meter")
    busy = settlement.money_in_flight(session, meter_id)
    if busy is not None:
        raise ConflictError(
            f"meter {meter_id} has {busy} waiting for its collector; swap it once it is "
            "applied or rejected",
            "old_meter",
        )
    settling = session.scalars(
        select(Settlement.id).where(Settlement.meter_id == meter_id, Settlement.status == PENDING)
    ).first()
    if settling is not None:
        raise ConflictError(f"meter {meter_id} is already being settled", "old_meter")
    return meter


def start(
    session: Session,
    account_id: int,
    old_meter_id: str,
    new_meter_id: str,
    actor: Actor,
    *,
    final_energy_wh: int | None = None,
    price_micro_yuan_per_kwh: int | None = None,
    note: str = "",
    now: int | None = None,
) -> MeterSwap:
    """Swap ``old_meter_id`` of an open account for ``new_meter_id`` (a free prepaid meter of
    the same site). ``final_energy_wh``: the old register typed by hand (see the module doc),
    at least the collector's last reading, and then a price is needed."""
    stamp = now if now is not None else now_ts()
    account = accounts.get(session, account_id)
    if account.status != accounts.OPEN:
        raise ConflictError(f"account {account.id} is {account.status}; only open accounts swap")
    old_id = check_id(old_meter_id, "old_meter")
    new_id = check_id(new_meter_id, "new_meter")
    if old_id == new_id:
        raise RuleError("the new meter must be another meter than the old one", "new_meter")
    note = check_note(note, "note", 500)
    old = _old_meter(session, account.id, old_id)
    if final_energy_wh is not None:
        check_int(final_energy_wh, "final_energy_wh", 0, MAX_REGISTER_WH)
        if old.energy_wh is not None and final_energy_wh < old.energy_wh:
            raise RuleError(
                f"the final reading {final_energy_wh} Wh is below the collector's last reading "
                f"{old.energy_wh} Wh of meter {old.id}",
                "final_energy_wh",
            )
        if price_micro_yuan_per_kwh is None:
            raise RuleError(
                "a final reading by hand needs the price to charge it at; meter "
                f"{old.id} has no price in force",
                "final_energy_wh",
            )
        check_int(price_micro_yuan_per_kwh, "price_micro_yuan_per_kwh", 0, 100_000_000)
    accounts.add_meter(session, account.id, new_id, actor, now=stamp)
    item = settlement.start(
        session, account, old, actor, stamp, reason=f"meter swap: the balance moves to {new_id}"
    )
    swap = MeterSwap(
        account_id=account.id,
        old_meter_id=old.id,
        new_meter_id=new_id,
        settlement_id=item.id,
        status=CLOSING,
        final_energy_wh=final_energy_wh,
        price_micro_yuan_per_kwh=price_micro_yuan_per_kwh if final_energy_wh is not None else None,
        note=note,
        operator_id=actor.operator_id,
        created_ts=stamp,
    )
    session.add(swap)
    session.flush()
    record(session, actor, "meter.swap", "meter_swap", swap.id, after=to_dict(session, swap),
           now=stamp)  # fmt: skip
    return swap


def get(session: Session, swap_id: int) -> MeterSwap:
    swap = session.get(MeterSwap, swap_id)
    if swap is None:
        raise NotFoundError(f"meter swap {swap_id} does not exist")
    return swap


def state(session: Session, swap: MeterSwap) -> str:
    """``closing``, ``rejected`` (the collector refused to settle the old meter: retry),
    ``moving`` (the balance is on its way to the new meter), ``done``."""
    if swap.status == CLOSING:
        item = session.get(Settlement, swap.settlement_id) if swap.settlement_id else None
        return "rejected" if item is not None and item.status == REJECTED else CLOSING
    if swap.transfer_in_id is not None:
        transfer = session.get(TransferIn, swap.transfer_in_id)
        if transfer is not None and transfer.status == PENDING:
            return "moving"
        if transfer is not None and transfer.status == REJECTED:
            return "rejected"
    return "done"


def retry(session: Session, swap_id: int, actor: Actor, *, now: int | None = None) -> MeterSwap:
    """Ask the old meter's collector to settle again after it refused."""
    stamp = now if now is not None else now_ts()
    swap = get(session, swap_id)
    if swap.status != CLOSING or state(session, swap) != "rejected":
        raise ConflictError(f"meter swap {swap.id} is not waiting for a retry")
    account = accounts.get(session, swap.account_id)
    old = _old_meter(session, account.id, swap.old_meter_id)
    item = settlement.start(
        session,
        account,
        old,
        actor,
        stamp,
        reason=f"meter swap: the balance moves to {swap.new_meter_id}",
    )
    swap.settlement_id = item.id
    record(session, actor, "meter.swap_retry", "meter_swap", swap.id,
           after={"settlement": item.id}, now=stamp)  # fmt: skip
    return swap


def to_dict(session: Session, swap: MeterSwap) -> dict[str, Any]:
    return {
        "id": swap.id,
        "account": swap.account_id,
        "old_meter": swap.old_meter_id,
        "new_meter": swap.new_meter_id,
        "status": state(session, swap),
        "settlement": swap.settlement_id,
        "transfer_in": swap.transfer_in_id,
        "final_energy_wh": swap.final_energy_wh,
        "price_micro_yuan_per_kwh": swap.price_micro_yuan_per_kwh,
        "unmetered_energy_wh": swap.unmetered_energy_wh,
        "unmetered_charge_micro_yuan": swap.unmetered_charge_micro_yuan,
        "settled_balance_micro_yuan": swap.settled_balance_micro_yuan,
        "moved_micro_yuan": swap.moved_micro_yuan,
        "debt_owed_micro_yuan": swap.debt_owed_micro_yuan,
        "note": swap.note,
        "created_ts": swap.created_ts,
        "settled_ts": swap.settled_ts,
    }
