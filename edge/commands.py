"""Downlink commands for the processor (edge/processor.py): the inbox answers a command id
already handled with its stored result; anything else becomes an engine event (or a collector
action: tariff, read now, time) and is answered with its result and the new balance.

Credits the engine holds for a missing purchase number are remembered by command id in the
store (``held``), so when the gap fills each held command gets its own ``applied`` result.
"""

from __future__ import annotations

import logging
from typing import Any

from edge.book import MeterBook, Outcome
from edge.cache.store import Persist
from edge.core import engine
from edge.core.errors import EngineError
from shared.codec import messages
from shared.logs import event as log_event

log = logging.getLogger("gridvend.agent")

# Commands that are engine events with the same name; their args are the event's fields.
ENGINE_OPS = (
    "credit",
    "refund",
    "reversal",
    "transfer_in",
    "mode",
    "clear_overload",
    "open_account",
    "close_account",
    "resolve_anomaly",
)
# Commands that move money: the cloud's mirror must hold every charge made before them.
MONEY_OPS = ("credit", "refund", "reversal", "transfer_in", "close_account")
CLOCK_DRIFT_S = 30


class Commands:
    """Command handling over a collector's :class:`~edge.book.MeterBook` (composed into
    :class:`edge.processor.Processor`; tests/cloud/support.py drives it as the cloud's fake
    collector)."""

    def __init__(self, book: MeterBook) -> None:
        self.book = book
        self.store = book.store

    # --- commands -------------------------------------------------------------------------

    def commands(
        self, cmds: list[dict[str, Any]], now: int, persist: Persist | None = None
    ) -> Outcome:
        """Apply downlink commands (validated messages) and ``persist`` in one transaction."""
        out = Outcome()
        with self.book.unit():
            for cmd in cmds:
                self._command(cmd, now, out)
            if persist is not None:
                persist(self.store)
        return out

    def _answer(self, cmd: dict[str, Any], result: dict[str, Any], now: int, out: Outcome) -> None:
        result_id = self.store.outbox.enqueue(result, now)
        out.queued += 1
        self.store.inbox.put(cmd["id"], cmd["meter"], cmd["op"], result, now, result_id)
        log_event(
            log,
            logging.INFO,
            "command",
            cmd=cmd["id"],
            meter=cmd["meter"],
            op=cmd["op"],
            status=result["status"],
            reason=result["reason"],
        )

    def _plain_result(self, cmd: dict[str, Any], status: str, reason: str | None) -> dict[str, Any]:
        meter_id = cmd["meter"]
        state = self.book.states.get(meter_id) if meter_id else None
        balance = state["balance_micro_yuan"] if state else None
        return messages.result(cmd["id"], meter_id, cmd["op"], status, reason, balance)

    def _command(self, cmd: dict[str, Any], now: int, out: Outcome) -> None:
        stored = self.store.inbox.get(cmd["id"])
        if stored is not None and stored["status"] != "held":
            self.book.enqueue(stored, now, out)  # a duplicate: the same answer, applied once
            return
        op, meter_id, args = cmd["op"], cmd["meter"], cmd["args"]
        if meter_id is not None and meter_id not in self.book.states:
            reason = f"meter {meter_id!r} is not on this collector ({len(self.book.states)} meters)"
            self._answer(cmd, self._plain_result(cmd, "rejected", reason), now, out)
            return
        try:
            if op in ENGINE_OPS or op == "settings":
                self._engine_command(cmd, now, out)
            elif op == "tariff":
                self.book.ctx.add_tariff_version(args["tariff_id"], args["version"])
                self.store.tariffs.put(args["tariff_id"], args["version"])
                self._answer(cmd, self._plain_result(cmd, "applied", None), now, out)
            elif op == "read_now":
                out.read_now.append(meter_id)
                self._answer(cmd, self._plain_result(cmd, "applied", None), now, out)
            elif op == "time":
                drift_s = now - args["utc"]
                if abs(drift_s) > CLOCK_DRIFT_S:
                    detail = {"drift_s": drift_s, "cloud_utc": args["utc"], "local_utc": now}
                    msg = messages.event_unnumbered(None, now, "clock_drift", detail)
                    self.book.enqueue(msg, now, out)
                out.sync_clock = True
                self._answer(cmd, self._plain_result(cmd, "applied", None), now, out)
            else:  # config: meters come from edge.toml; say so rather than half-apply
                reason = "meter changes are made in edge.toml (then restart the agent)"
                self._answer(cmd, self._plain_result(cmd, "rejected", reason), now, out)
        except EngineError as exc:
            self._answer(cmd, self._plain_result(cmd, "rejected", str(exc)), now, out)

    def _engine_command(self, cmd: dict[str, Any], now: int, out: Outcome) -> None:
        op, meter_id, args = cmd["op"], cmd["meter"], cmd["args"]
        if op in MONEY_OPS:
            self.book.flush_charges(meter_id, now, out)
        settled = (
            self.book.states[meter_id]["balance_micro_yuan"] if op == "close_account" else None
        )
        event = dict(args) if op != "settings" else {"settings": args}
        event["type"] = op  # the op decides, whatever the args carry
        state, actions = engine.step(self.book.states[meter_id], event, now, self.book.ctx)
        self.book.states[meter_id] = state
        results = self.book.carry_out(meter_id, actions, now, out, cmd=cmd["id"])
        answered = False
        own_no = args.get("purchase_no") if op == "credit" else None
        held = self.store.inbox.held(meter_id) if op == "credit" else {}
        for r in results:
            no = r.get("purchase_no")
            if op == "credit" and no is not None and no != own_no:
                # a held credit released by this one: answer the command that carried it
                other = held.get(no)
                if other is None:
                    log_event(log, logging.ERROR, "held_credit_unknown", meter=meter_id, no=no)
                    continue
                res = messages.result(
                    other["id"],
                    meter_id,
                    "credit",
                    r["status"],
                    r["reason"],
                    r["balance_micro_yuan"],
                    no,
                )
                self._answer(other, res, now, out)
                self.store.inbox.release(meter_id, no)
                continue
            res = messages.result(
                cmd["id"],
                meter_id,
                op,
                r["status"],
                r["reason"],
                r["balance_micro_yuan"],
                no,
                original_status=r.get("original_status"),
            )
            if r["status"] == "held" and no is not None:  # a held credit has its number
                self.store.inbox.hold(meter_id, no, cmd, now)
            elif op == "credit" and no is not None:
                self.store.inbox.release(meter_id, no)
            self._answer(cmd, res, now, out)
            answered = True
        if not answered:
            result = self._plain_result(cmd, "applied", None)
            if settled is not None:
                result = messages.result(
                    cmd["id"],
                    meter_id,
                    op,
                    "applied",
                    None,
                    self.book.states[meter_id]["balance_micro_yuan"],
                    settled_balance_micro_yuan=settled,
                )
            self._answer(cmd, result, now, out)
        self.book.state_message(meter_id, now, out)
        self.book.force_report.add(meter_id)
        self.book.save(meter_id, now)
