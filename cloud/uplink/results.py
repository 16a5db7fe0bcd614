"""Turning a collector's ``result`` into state: the command's lifecycle, and for money commands
the sale / refund / reversal / transfer-in / settlement status and the ledger mirror.

Money moves in the mirror exactly once: on the record's ``pending → applied`` transition. A
second result for the same record (a repeated result, a ``duplicate`` answer to a re-sent credit)
finds the record already applied and changes nothing. ``rejected`` moves no money.

``duplicate``: the agent answers a command id it has seen with the stored result (same status),
so ``duplicate`` only comes from the engine, for a purchase number (or reversal) it has already
handled under another command id, and it does not say whether that was applied or rejected.
The command counts as answered (``applied`` in its lifecycle, nothing more to send), but no
money moves on a guess: the record stays ``pending`` and a ``duplicate_result`` alarm asks an
operator to look (the ledger cross-check of the next reading shows which it was).
``held`` (a credit waiting for a missing purchase number) leaves the command out and the sale
pending.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from cloud.audit import BRIDGE, record
from cloud.control import lifecycle, meter_settings
from cloud.errors import ResultError
from cloud.models import (
    APPLIED,
    PENDING,
    REJECTED,
    Command,
    Meter,
    Refund,
    Reversal,
    Sale,
    Settlement,
    TransferIn,
)
from cloud.money import ledger, records, settlement
from cloud.monitoring import alarms

REF_MODELS: dict[str, type[Any]] = {
    "sale": Sale,
    "refund": Refund,
    "reversal": Reversal,
    "transfer_in": TransferIn,
    "settlement": Settlement,
}


# ref kind -> the record's API shape (what a money notice carries to the north topics)
_SHAPES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "sale": records.sale_to_dict,
    "refund": records.refund_to_dict,
    "reversal": records.reversal_to_dict,
    "transfer_in": records.transfer_to_dict,
    "settlement": settlement.settlement_to_dict,
}


def _money_notice(kind: str, item: Any) -> dict[str, Any]:
    return {"type": kind, "record": _SHAPES[kind](item)}


def _apply_money(
    session: Session, command: Command, meter: Meter, msg: dict[str, Any], now: int
) -> list[dict[str, Any]]:
    kind, ref_id = command.ref_kind, command.ref_id
    if kind is None or ref_id is None:
        return []
    item = session.get(REF_MODELS[kind], ref_id)
    if item is None or item.status != PENDING:
        return []  # already decided: money moves once
    if kind == "settlement":
        # settle() works out the amounts, moves them, and marks the settlement applied.
        settlement.settle(
            session,
            item,
            meter,
            msg.get("balance_micro_yuan"),
            BRIDGE,
            now,
            settled_micro_yuan=msg.get("settled_balance_micro_yuan"),
        )
        _caused(meter, msg)
        return [_money_notice(kind, item)]
    if kind == "sale":
        ledger.credit(meter, item.amount_micro_yuan)
        meter.purchase_count += 1
        meter.last_applied_purchase_no = max(meter.last_applied_purchase_no, item.purchase_no)
    elif kind == "transfer_in":
        ledger.credit(meter, item.amount_micro_yuan)
    else:  # refund, reversal
        ledger.refund(meter, item.amount_micro_yuan)
    item.status = APPLIED
    item.resolved_ts = now
    _caused(meter, msg)
    record(session, BRIDGE, f"{kind}.applied", kind, item.id, after={"status": APPLIED}, now=now)
    return [_money_notice(kind, item)]


def _caused(meter: Meter, msg: dict[str, Any]) -> None:
    """Money moved on the mirror by this result: readings the collector queued before it
    (smaller message ids) cannot show it (cloud/money/crosscheck.py compares causally)."""
    rid = msg.get("id")
    if isinstance(rid, int) and not isinstance(rid, bool) and rid > 0:
        meter.money_result_id = max(meter.money_result_id or 0, rid)


def _reject_money(session: Session, command: Command, reason: str | None, now: int) -> list[Any]:
    kind, ref_id = command.ref_kind, command.ref_id
    if kind is None or ref_id is None:
        return []
    item = session.get(REF_MODELS[kind], ref_id)
    if item is None or item.status != PENDING:
        return []
    item.status = REJECTED
    item.reason = (reason or "rejected by the collector")[:500]
    item.resolved_ts = now
    record(
        session,
        BRIDGE,
        f"{kind}.rejected",
        kind,
        item.id,
        after={"status": REJECTED, "reason": item.reason},
        now=now,
    )
    return [_money_notice(kind, item)]


def _apply_effects(session: Session, command: Command, meter: Meter | None, now: int) -> None:
    """Non-money effects of an applied command on the mirror."""
    if meter is not None:
        if command.op == "mode":
            meter.mode = command.args.get("mode", meter.mode)
        elif command.op == "settings":
            # Only what the collector confirmed counts as applied (a refused one never does).
            meter_settings.record_applied(meter, command.args)
        elif command.op == "open_account" and meter.display_state in ("not_opened", "closed"):
            meter.display_state = "opened"
    clears = alarms.COMMAND_CLEARS.get(command.op, ())
    if clears:
        alarms.clear_alarms(
            session,
            clears,
            meter_id=meter.id if meter is not None else None,
            gateway_id=command.gateway_id,
            by=f"command:{command.id}",
            now=now,
        )


def _command_answered(session: Session, gateway_id: str, msg: dict[str, Any]) -> Command:
    """The command a ``result`` answers: one sent to this collector, with the same op and
    meter; ``ResultError`` otherwise."""
    try:
        command_id = int(msg["cmd"])
    except (TypeError, ValueError):
        raise ResultError(f"result for unknown command {msg['cmd']!r}") from None
    command = session.get(Command, command_id)
    if command is None or command.gateway_id != gateway_id:
        raise ResultError(f"result for command {msg['cmd']!r}, which {gateway_id} was never sent")
    if msg["op"] != command.op or msg.get("meter") != command.meter_id:
        raise ResultError(
            f"result for command {command.id} says op {msg['op']!r} meter {msg.get('meter')!r}; "
            f"the command is {command.op!r} for {command.meter_id!r}"
        )
    return command


def _locked_meter(session: Session, meter_id: str | None, meters: dict[str, Meter]) -> Meter | None:
    """The meter row from the ingest's cache of locked rows, locked and cached if missing."""
    if meter_id is None:
        return None
    meter = meters.get(meter_id)
    if meter is None:
        meter = session.get(Meter, meter_id, with_for_update=True)
        if meter is not None:
            meters[meter.id] = meter
    return meter


def apply_result(
    session: Session,
    gateway_id: str,
    msg: dict[str, Any],
    meters: dict[str, Meter],
    now: int,
) -> list[dict[str, Any]]:
    """Apply one validated ``result`` message. ``meters`` is the ingest's cache of locked meter
    rows (the meter is loaded into it if missing). Returns notices for the bridge (money records
    whose status changed). Raises ``ResultError`` for a result that cannot be applied."""
    command = _command_answered(session, gateway_id, msg)
    status = msg["status"]
    # A duplicate settles the record by what the collector did the first time, when it says;
    # without that (an older agent, a purchase past its history) nobody can tell.
    known = msg.get("original_status") if status == "duplicate" else None
    if status == "duplicate":
        status = known if known in ("applied", "rejected") else "applied"
    before = command.status
    try:
        lifecycle.transition(command, status)
    except lifecycle.IllegalTransition as exc:
        raise ResultError(str(exc)) from None
    if before not in lifecycle.OPEN_STATUSES:
        # A repeat, or a late answer (a resent envelope's "held" after the "applied" that
        # released it): nothing changes, not even the recorded result.
        return []
    command.result_status = msg["status"]
    command.result_reason = msg.get("reason")
    command.result_balance_micro_yuan = msg.get("balance_micro_yuan")
    command.result_ts = now
    meter = _locked_meter(session, command.meter_id, meters)
    if meter is not None and msg.get("balance_micro_yuan") is not None:
        meter.edge_balance_micro_yuan = msg["balance_micro_yuan"]
    if msg["status"] == "duplicate" and known is None and command.ref_kind is not None:
        alarms.raise_alarm(
            session,
            alarms.DUPLICATE_RESULT,
            meter_id=command.meter_id,
            gateway_id=gateway_id,
            detail={
                "command": command.id,
                "ref": [command.ref_kind, command.ref_id],
                "reason": msg.get("reason"),
            },
            now=now,
        )
        return []
    if status == "applied":
        _apply_effects(session, command, meter, now)
        if meter is not None:
            return _apply_money(session, command, meter, msg, now)
    elif status == "rejected":
        return _reject_money(session, command, msg.get("reason"), now)
    return []
