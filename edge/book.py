"""The meters' engine states and the agent's bookkeeping around them, composed into the
processor (edge/processor.py, readings and bus events) and the command handler
(edge/commands.py): one owner of a meter's state, its store row and its uplink messages.

Runs on the store thread. :meth:`MeterBook.unit` is one transaction of the store and of the
memory around it (a unit that rolls back reloads the memory from the store). Inside a unit:
``carry_out`` does what the engine asked (charges, ledger rows, events, relay operations,
purchase requests), ``state_message`` queues a ``state`` on a change of display state, relay or
mode, ``report`` queues a ``reading`` with the charge since the previous one, ``flush_charges``
reports charges not sent yet ahead of a money result, ``save`` writes the meter's row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from edge.cache.store import Store
from edge.core import engine
from shared.codec import messages, readings


@dataclass
class MeterInfo:
    """What the processor needs to know of a configured meter."""

    id: str
    bus: str
    address: Any
    model: str
    ct: int = 1
    pt: int = 1


@dataclass
class Outcome:
    """What the caller does after a commit: relay operations, read-now requests, uplink wake."""

    relay: list[tuple[str, str, str]] = field(default_factory=list)  # (meter, op, reason)
    read_now: list[str] = field(default_factory=list)
    sync_clock: bool = False  # broadcast the time to every bus that can take it
    queued: int = 0


class MeterBook:
    """Engine states and bookkeeping of one collector's meters (see the module docstring)."""

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
        self._stale = False  # memory may hold effects of a rolled-back unit: reload first
        self.load(settings, now)

    # --- start-up and recovery ------------------------------------------------------------

    def load(self, settings: dict[str, dict[str, Any]], now: int) -> None:
        """Start-up: tariffs and states from the store, edge.toml's settings applied."""
        store = self.store
        for tariff_id, versions in store.tariffs.all().items():
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
                self.save(meter.id, now)

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

    # --- what every unit of work does -------------------------------------------------------

    def view(self, meter_id: str) -> tuple[str, Any, str]:
        """The meter's display state, reported relay and mode."""
        state = self.states[meter_id]
        return engine.display_state(state), state.get("relay_reported"), state["mode"]

    def save(self, meter_id: str, now: int, reading: dict[str, Any] | None = None) -> None:
        """Write the meter's engine state and bookkeeping (and its latest reading) to its row."""
        state = self.states[meter_id]
        display, relay, mode = self.view(meter_id)
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

    def enqueue(self, msg: dict[str, Any], now: int, out: Outcome) -> None:
        """Queue an uplink message in this unit's transaction."""
        self.store.outbox.enqueue(msg, now)
        out.queued += 1

    def state_message(self, meter_id: str, now: int, out: Outcome) -> bool:
        """Queue a ``state`` message if display state, relay or mode changed; True if so."""
        display, relay, mode = self.view(meter_id)
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
        self.enqueue(msg, now, out)
        agent.update(display=display, relay=relay, mode=mode)
        return True

    def carry_out(
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
                self.enqueue(msg, now, out)
                if action["kind"] in ("alarm1", "alarm2", "arrears", "alarm_clear"):
                    self.force_report.add(meter_id)
            elif kind == "relay":
                out.relay.append((meter_id, action["op"], action["reason"]))
                msg = messages.event_unnumbered(
                    meter_id, now, action["op"], {"reason": action["reason"]}
                )
                self.enqueue(msg, now, out)
            elif kind == "request_purchase":
                self.enqueue(messages.need_purchase(meter_id, action["purchase_no"]), now, out)
            elif kind == "result":
                results.append(action)
        return results

    def report(self, meter_id: str, reading: dict[str, Any], now: int, out: Outcome) -> None:
        """Queue an uplink ``reading``: the charge since the previous one and the running totals."""
        state = self.states[meter_id]
        charges = state["charges_micro_yuan"]
        msg = messages.reading_unnumbered(
            meter=meter_id,
            **readings.reported(reading),
            charge_micro_yuan=charges - self.reported[meter_id][1],
            balance_micro_yuan=state["balance_micro_yuan"],
            credits_micro_yuan=state["credits_micro_yuan"],
            refunds_micro_yuan=state["refunds_micro_yuan"],
            charges_micro_yuan=charges,
        )
        self.enqueue(msg, now, out)
        self.store.mark_reported(meter_id, reading["ts"], charges)
        self.reported[meter_id] = (reading["ts"], charges)
        self.force_report.discard(meter_id)

    def flush_charges(self, meter_id: str, now: int, out: Outcome) -> None:
        """Report charges not yet sent before a money command's result: the cloud settles and
        checks money against its mirror, which must then include every charge the edge made
        before the command (else a close-account settles a stale balance)."""
        reading = self.latest.get(meter_id)
        unreported = self.states[meter_id]["charges_micro_yuan"] != self.reported[meter_id][1]
        if reading is not None and unreported:
            self.report(meter_id, reading, now, out)
