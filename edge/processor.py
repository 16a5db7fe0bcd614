"""The agent's bookkeeping around the engine: readings and commands in, store writes and uplink
messages out, relay operations for the buses.

Theory of operation
-------------------
Runs on the store thread (edge/cache/worker.py), so it owns the engine states and the store
without locks. Each public method is one transaction: everything a batch of readings (a bus
sweep) or one downlink envelope changes (engine states, ledger rows, history, outbox rows,
inbox rows, the replay window) commits together or not at all, durably (synchronous=FULL).
After a commit the caller executes the returned relay operations on the buses and wakes the
uplink; a crash before the commit loses nothing that was promised to anyone.

Per reading: CT/PT scaling, ``engine.step``, then

- a ``reading`` message when ``report_s`` has passed since the meter's last one, or at once when
  its relay, display state (alarm level) or mode changed; ``charge_micro_yuan`` is the charge
  since that meter's previous report, so the charges of its reports add up exactly;
- a ``state`` message when the display state, relay or mode changed;
- a history row per ``history_s`` slot, with the charges booked into the ledger up to it.

Per command: the inbox answers a command id already handled with its stored result (same
content); otherwise the command becomes an engine event, its actions are carried out, and the
result (with the balance) is queued and stored. Credits that the engine holds for a missing
purchase number are remembered by command id (``held``), so when the gap fills each held
command gets its own ``applied`` result.
"""

from __future__ import annotations

import logging
from typing import Any

from edge.book import MeterBook, MeterInfo, Outcome
from edge.cache.store import Persist, Store
from edge.commands import Commands
from edge.core import engine
from edge.core.errors import EngineError
from shared.codec import messages
from shared.logs import event as log_event

log = logging.getLogger("gridvend.agent")

__all__ = ["MeterInfo", "Outcome", "Processor"]


class Processor:
    """Engine states, rating and reporting for one collector (see the module docstring): the
    meters' :class:`~edge.book.MeterBook`, with readings and bus events handled here and
    downlink commands by :class:`~edge.commands.Commands`."""

    def __init__(self, book: MeterBook) -> None:
        """``book``: the meters, loaded on the store thread (``MeterBook(store, ctx, ...)``)."""
        self.book = book
        self.handler = Commands(self.book)
        self.rejected_readings = 0

    @property
    def store(self) -> Store:
        return self.book.store

    @property
    def states(self) -> dict[str, dict[str, Any]]:
        return self.book.states

    def desired_relays(self) -> list[tuple[str, str, str]]:
        """Start-up recovery: re-assert every meter's desired relay position on its bus."""
        return self.book.desired_relays()

    def commands(
        self, cmds: list[dict[str, Any]], now: int, persist: Persist | None = None
    ) -> Outcome:
        """Apply downlink commands (validated messages) and ``persist`` in one transaction."""
        return self.handler.commands(cmds, now, persist)

    # --- readings -------------------------------------------------------------------------

    def _scaled(self, meter: MeterInfo, reading: dict[str, Any]) -> dict[str, Any]:
        ratio = meter.ct * meter.pt
        if ratio == 1:
            return reading
        r = dict(reading)
        r["energy_wh"] = reading["energy_wh"] * ratio
        if reading.get("power_w") is not None:
            r["power_w"] = reading["power_w"] * ratio
        if reading.get("band_energy_wh"):
            r["band_energy_wh"] = {k: v * ratio for k, v in reading["band_energy_wh"].items()}
        if reading.get("currents_ma"):
            r["currents_ma"] = [c * meter.ct for c in reading["currents_ma"]]
        if reading.get("voltages_dv"):
            r["voltages_dv"] = [v * meter.pt for v in reading["voltages_dv"]]
        return r

    def readings(self, batch: list[tuple[str, dict[str, Any]]], now: int) -> Outcome:
        """Rate and record a batch of ``(meter id, reading)`` in one transaction."""
        out = Outcome()
        with self.book.unit():
            for meter_id, reading in batch:
                self._reading(meter_id, reading, now, out)
        return out

    def _reading(self, meter_id: str, raw: dict[str, Any], now: int, out: Outcome) -> None:
        meter = self.book.meters[meter_id]
        reading = self._scaled(meter, raw)
        event = {
            "type": "reading",
            "ts": reading["ts"],
            "energy_wh": reading["energy_wh"],
            "power_w": reading.get("power_w"),
            "relay": reading.get("relay"),
        }
        state = self.book.states[meter_id]
        try:
            state, actions = engine.step(state, event, now, self.book.ctx)
            self.book.states[meter_id] = state
        except EngineError as exc:
            self.rejected_readings += 1
            log_event(log, logging.WARNING, "reading_refused", meter=meter_id, error=str(exc))
            return
        self.book.carry_out(meter_id, actions, now, out)
        changed = self.book.state_message(meter_id, now, out)
        ts = reading["ts"]
        self.book.latest[meter_id] = reading
        if (
            changed
            or meter_id in self.book.force_report
            or ts - self.book.reported[meter_id][0] >= self.book.report_s
        ):
            self.book.report(meter_id, reading, now, out)
        slot = ts // self.book.history_s
        if slot != self.book.slots[meter_id]:
            self.book.store.add_history(
                meter_id, slot, reading, state["balance_micro_yuan"], state["charges_micro_yuan"]
            )
            self.book.store.book_charges(
                meter_id,
                ts,
                state["charges_micro_yuan"],
                self.book.agent[meter_id].get("charged_wh", 0),
            )
            self.book.slots[meter_id] = slot
        self.book.save(meter_id, now, reading)

    # --- other engine events from the buses and the clock ------------------------------------

    def contact(self, meter_id: str, ok: bool, now: int) -> Outcome:
        """The bus lost (or regained) a meter."""
        return self._events([(meter_id, {"type": "contact", "ok": ok})], now)

    def tick(self, now: int) -> Outcome:
        """Time passes for every meter (friendly windows end, relays are reconciled)."""
        return self._events([(m, {"type": "tick"}) for m in self.book.states], now)

    def _events(self, items: list[tuple[str, dict[str, Any]]], now: int) -> Outcome:
        out = Outcome()
        with self.book.unit():
            for meter_id, event in items:
                state, actions = engine.step(self.book.states[meter_id], event, now, self.book.ctx)
                self.book.states[meter_id] = state
                self.book.carry_out(meter_id, actions, now, out)
                self.book.state_message(meter_id, now, out)
                self.book.save(meter_id, now)
        return out

    def command_failed(self, meter_id: str, op: str, error: str, now: int) -> Outcome:
        """A bus command raised: tell the cloud (the engine re-sends on the next mismatch)."""
        out = Outcome()
        with self.book.unit():
            detail = {"op": op, "error": error}
            self.book.enqueue(
                messages.event_unnumbered(meter_id, now, "command_failed", detail), now, out
            )
        return out
