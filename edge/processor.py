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

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edge.cache.store import Store
from edge.commands import Commands, Outcome
from edge.core import engine
from edge.core.errors import EngineError
from shared.codec import messages
from shared.logs import event as log_event

log = logging.getLogger("gridvend.agent")


@dataclass
class MeterInfo:
    """What the processor needs to know of a configured meter."""

    id: str
    bus: str
    address: Any
    model: str
    ct: int = 1
    pt: int = 1


class Processor(Commands):
    """Engine states, rating and reporting for one collector (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        ctx: engine.Context,
        meters: list[MeterInfo],
        settings: dict[str, dict[str, Any]],
        *,
        report_s: int = 30,
        history_s: int = 1800,
        now: int = 0,
    ) -> None:
        self.store = store
        self.ctx = ctx
        self.meters = {m.id: m for m in meters}
        self.report_s = report_s
        self.history_s = history_s
        self.states: dict[str, dict[str, Any]] = {}
        self.agent: dict[str, dict[str, Any]] = {}  # per meter: reported relay/display/mode, …
        self.reported: dict[str, tuple[int, int]] = {}  # per meter: (ts, charges) of last report
        self.latest: dict[str, dict[str, Any]] = {}  # per meter: the last reading rated
        self.slots: dict[str, int] = {}
        self.force_report: set[str] = set()
        self.rejected_readings = 0
        self._stale = False  # memory may hold effects of a rolled-back unit: reload first
        self._load(settings, now)

    # --- start-up -------------------------------------------------------------------------

    def _load(self, settings: dict[str, dict[str, Any]], now: int) -> None:
        store = self.store
        for tariff_id, versions in store.tariffs().items():
            for version in versions:
                self.ctx.add_tariff_version(tariff_id, version)
        rows = store.meters()
        with store.transaction():
            for meter in self.meters.values():
                own = settings.get(meter.id, {})
                config = {"ct": meter.ct, "pt": meter.pt, "settings": own}
                store.upsert_meter(meter.id, meter.bus, str(meter.address), meter.model, config)
                row = rows.get(meter.id)
                state = row["state"] if row else None
                if state is None:
                    state = engine.new_state(meter.id, own)
                elif row is not None and row["config"].get("settings") != own:
                    # edge.toml changed this meter's settings: apply them as a settings event
                    # (null removes a setting that is no longer configured).
                    partial = dict.fromkeys(state["settings"])
                    partial.update(own)
                    event = {"type": "settings", "settings": partial}
                    state, _ = engine.step(state, event, now, self.ctx)
                self.states[meter.id] = state
                self._adopt(meter.id, row)
                self._save(meter.id, now)

    def _adopt(self, meter_id: str, row: dict[str, Any] | None) -> None:
        """The agent's bookkeeping for a meter from its store row (None: a new meter)."""
        self.agent[meter_id] = dict(row["agent"]) if row else {}
        self.reported[meter_id] = (row["reported_ts"], row["reported_charges"]) if row else (0, 0)
        self.slots[meter_id] = row["history_slot"] if row else -1
        if row is not None and row["last_reading"] is not None:
            self.latest[meter_id] = row["last_reading"]
        else:
            self.latest.pop(meter_id, None)

    def _reload(self) -> None:
        """Take the meters' states and bookkeeping back from the store (after a rollback)."""
        rows = self.store.meters()
        for meter_id in self.meters:
            row = rows[meter_id]
            self.states[meter_id] = row["state"]
            self._adopt(meter_id, row)
        self._stale = False

    @contextlib.contextmanager
    def unit(self) -> Iterator[None]:
        """One transaction of the store and of the memory around it. ``engine.step`` changes
        states in place, so a unit that rolls back (a full disk, a bug) would leave its credits,
        charges and reports in memory; a retry would then find them done (a resent credit
        answered ``duplicate``, a charge never reported). On failure the memory is reloaded
        from the store, which the rollback left as it was."""
        if self._stale:
            self._reload()
        force = set(self.force_report)
        try:
            with self.store.transaction():
                yield
        except BaseException:
            self._stale = True
            self.force_report = force
            with contextlib.suppress(Exception):
                self._reload()  # else the next unit tries again first
            raise

    def desired_relays(self) -> list[tuple[str, str, str]]:
        """Start-up recovery: re-assert every meter's desired relay position on its bus."""
        out = []
        for meter_id, state in self.states.items():
            desired = state.get("relay_desired")
            if desired is not None:
                op = "trip" if desired == "open" else "close"
                out.append((meter_id, op, str(state.get("relay_reason") or "restore")))
        return out

    # --- helpers --------------------------------------------------------------------------

    def _view(self, meter_id: str) -> tuple[str, Any, str]:
        state = self.states[meter_id]
        return engine.display_state(state), state.get("relay_reported"), state["mode"]

    def _save(self, meter_id: str, now: int, reading: dict[str, Any] | None = None) -> None:
        state = self.states[meter_id]
        display, relay, mode = self._view(meter_id)
        self.store.save_state(
            meter_id,
            state,
            balance_micro_yuan=state["balance_micro_yuan"],
            display_state=display,
            relay=relay,
            mode=mode,
            ts=now,
            agent=self.agent[meter_id],
            reading=reading,
        )

    def _enqueue(self, msg: dict[str, Any], now: int, out: Outcome) -> None:
        self.store.enqueue(msg, now)
        out.queued += 1

    def _state_message(self, meter_id: str, now: int, out: Outcome) -> bool:
        """Queue a ``state`` message if display state, relay or mode changed; True if so."""
        display, relay, mode = self._view(meter_id)
        agent = self.agent[meter_id]
        if (agent.get("display"), agent.get("relay"), agent.get("mode")) == (display, relay, mode):
            return False
        state = self.states[meter_id]
        alarm = state.get("alarm")
        msg = messages.state(
            meter_id,
            display,
            relay,
            mode,
            state["balance_micro_yuan"],
            None if alarm in (None, "ok") else alarm,
            now,
        )
        self._enqueue(msg, now, out)
        agent.update(display=display, relay=relay, mode=mode)
        return True

    def _actions(
        self, meter_id: str, actions: list[dict[str, Any]], now: int, out: Outcome, cmd: Any = None
    ) -> list[dict[str, Any]]:
        """Carry out engine actions; returns the ``result`` actions for the caller to map."""
        results = []
        agent = self.agent[meter_id]
        for action in actions:
            kind = action["type"]
            if kind == "charge":
                agent["charged_wh"] = agent.get("charged_wh", 0) + action["energy_wh"]
            elif kind == "ledger":
                state = self.states[meter_id]
                # book consumption up to now first, so the ledger reads in order
                self.store.book_charges(
                    meter_id, now, state["charges_micro_yuan"], agent.get("charged_wh", 0)
                )
                self.store.add_ledger(
                    meter_id,
                    now,
                    action["kind"],
                    action["amount_micro_yuan"],
                    purchase_no=action.get("purchase_no"),
                    cmd=None if cmd is None else str(cmd),
                )
            elif kind == "event":
                msg = messages.event_unnumbered(meter_id, now, action["kind"], action["detail"])
                self._enqueue(msg, now, out)
                if action["kind"] in ("alarm1", "alarm2", "arrears", "alarm_clear"):
                    self.force_report.add(meter_id)
            elif kind == "relay":
                out.relay.append((meter_id, action["op"], action["reason"]))
                msg = messages.event_unnumbered(
                    meter_id, now, action["op"], {"reason": action["reason"]}
                )
                self._enqueue(msg, now, out)
            elif kind == "request_purchase":
                self._enqueue(messages.need_purchase(meter_id, action["purchase_no"]), now, out)
            elif kind == "result":
                results.append(action)
        return results

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
        with self.unit():
            for meter_id, reading in batch:
                self._reading(meter_id, reading, now, out)
        return out

    def _reading(self, meter_id: str, raw: dict[str, Any], now: int, out: Outcome) -> None:
        meter = self.meters[meter_id]
        reading = self._scaled(meter, raw)
        event = {
            "type": "reading",
            "ts": reading["ts"],
            "energy_wh": reading["energy_wh"],
            "power_w": reading.get("power_w"),
            "relay": reading.get("relay"),
        }
        state = self.states[meter_id]
        try:
            state, actions = engine.step(state, event, now, self.ctx)
            self.states[meter_id] = state
        except EngineError as exc:
            self.rejected_readings += 1
            log_event(log, logging.WARNING, "reading_refused", meter=meter_id, error=str(exc))
            return
        self._actions(meter_id, actions, now, out)
        changed = self._state_message(meter_id, now, out)
        ts = reading["ts"]
        self.latest[meter_id] = reading
        if (
            changed
            or meter_id in self.force_report
            or ts - self.reported[meter_id][0] >= self.report_s
        ):
            self._report(meter_id, reading, now, out)
        slot = ts // self.history_s
        if slot != self.slots[meter_id]:
            self.store.add_history(
                meter_id, slot, reading, state["balance_micro_yuan"], state["charges_micro_yuan"]
            )
            self.store.book_charges(
                meter_id, ts, state["charges_micro_yuan"], self.agent[meter_id].get("charged_wh", 0)
            )
            self.slots[meter_id] = slot
        self._save(meter_id, now, reading)

    def _report(self, meter_id: str, reading: dict[str, Any], now: int, out: Outcome) -> None:
        """Queue an uplink ``reading``: the charge since the previous one and the running totals."""
        state = self.states[meter_id]
        charges = state["charges_micro_yuan"]
        msg = messages.reading_unnumbered(
            meter=meter_id,
            ts=reading["ts"],
            energy_wh=reading["energy_wh"],
            power_w=reading.get("power_w"),
            relay=reading.get("relay"),
            band_energy_wh=reading.get("band_energy_wh"),
            voltages_dv=reading.get("voltages_dv"),
            currents_ma=reading.get("currents_ma"),
            charge_micro_yuan=charges - self.reported[meter_id][1],
            balance_micro_yuan=state["balance_micro_yuan"],
            credits_micro_yuan=state["credits_micro_yuan"],
            refunds_micro_yuan=state["refunds_micro_yuan"],
            charges_micro_yuan=charges,
        )
        self._enqueue(msg, now, out)
        self.store.mark_reported(meter_id, reading["ts"], charges)
        self.reported[meter_id] = (reading["ts"], charges)
        self.force_report.discard(meter_id)

    def _flush_charges(self, meter_id: str, now: int, out: Outcome) -> None:
        """Report charges not yet sent before a money command's result: the cloud settles and
        checks money against its mirror, which must then include every charge the edge made
        before the command (else a close-account settles a stale balance)."""
        reading = self.latest.get(meter_id)
        unreported = self.states[meter_id]["charges_micro_yuan"] != self.reported[meter_id][1]
        if reading is not None and unreported:
            self._report(meter_id, reading, now, out)

    # --- other engine events from the buses and the clock ------------------------------------

    def contact(self, meter_id: str, ok: bool, now: int) -> Outcome:
        """The bus lost (or regained) a meter."""
        return self._events([(meter_id, {"type": "contact", "ok": ok})], now)

    def tick(self, now: int) -> Outcome:
        """Time passes for every meter (friendly windows end, relays are reconciled)."""
        return self._events([(m, {"type": "tick"}) for m in self.states], now)

    def _events(self, items: list[tuple[str, dict[str, Any]]], now: int) -> Outcome:
        out = Outcome()
        with self.unit():
            for meter_id, event in items:
                state, actions = engine.step(self.states[meter_id], event, now, self.ctx)
                self.states[meter_id] = state
                self._actions(meter_id, actions, now, out)
                self._state_message(meter_id, now, out)
                self._save(meter_id, now)
        return out

    def command_failed(self, meter_id: str, op: str, error: str, now: int) -> Outcome:
        """A bus command raised: tell the cloud (the engine re-sends on the next mismatch)."""
        out = Outcome()
        with self.unit():
            detail = {"op": op, "error": error}
            self._enqueue(
                messages.event_unnumbered(meter_id, now, "command_failed", detail), now, out
            )
        return out
