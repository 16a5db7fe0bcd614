"""Test support for the cloud: seeding a park, and ``FakeEdge``, a collector at the message level
(docs/protocol.md) for the cloud's own tests. Its answers to commands come from the real edge:
``edge.commands.Commands`` over a ``edge.book.MeterBook`` of the real engine on a real SQLite
store (a temporary file), so the wallet rules (credits in purchase order, held credits, refunds
and reversals only while the balance stays ≥ 0, a close that settles) cannot drift from the
collector's. Readings are made up here: ``reading(meter, wh, price)`` charges ``wh × price /
1000`` to the meter's engine state whether or not an account is open, and reports the running
totals, so a test states exactly what the cloud should receive. It is passed to the code under
test as data, never patched in.

The whole agent (buses, sync, sealing) is exercised end to end by the bridge's tests."""

from __future__ import annotations

import json
import os
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from cloud.audit import Actor
from cloud.control import dispatch
from cloud.db import Database
from cloud.park import inventory
from cloud.uplink import ingest
from edge.book import MeterBook, MeterInfo
from edge.cache.store import Store
from edge.commands import Commands
from edge.core import engine
from shared.codec import messages

ACTOR = Actor("test")
KEY_HEX = "11" * 32
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


@dataclass
class Park:
    site: str = "studio"
    gateways: tuple[str, ...] = ("gw-1", "gw-2")
    meters: tuple[str, ...] = ("m-101", "m-102", "m-103", "m-201", "m-202", "m-203")
    plain: str = "m-p1"


def seed_park(s: Session) -> Park:
    park = Park()
    inventory.upsert_site(s, park.site, "Film studio park")
    for b, fl, unit in (("A", "1", "A-101"), ("A", "1", "A-102"), ("B", "2", "B-201")):
        inventory.upsert_unit(s, park.site, b, fl, unit)
    for gw in park.gateways:
        inventory.upsert_gateway(s, gw, park.site, KEY_HEX)
    units = {"m-101": "A-101", "m-102": "A-101", "m-103": "A-102", "m-201": "B-201"}
    for meter in park.meters:
        gw = "gw-1" if meter.startswith("m-1") else "gw-2"
        inventory.upsert_meter(
            s, meter, gw, "bus1", meter[-3:], "acrel-dtsy1352", unit_no=units.get(meter)
        )
    inventory.upsert_meter(s, park.plain, "gw-1", "bus2", "1", "acrel-adl400", prepaid=False)
    return park


class Wallet:
    """A meter's money as the collector's engine state holds it (a test may forge it)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def _get(self, key: str) -> int:
        return int(self._state[key])

    @property
    def balance(self) -> int:
        return self._get("balance_micro_yuan")

    @balance.setter
    def balance(self, value: int) -> None:
        self._state["balance_micro_yuan"] = value

    @property
    def credits(self) -> int:
        return self._get("credits_micro_yuan")

    @credits.setter
    def credits(self, value: int) -> None:
        self._state["credits_micro_yuan"] = value

    @property
    def refunds(self) -> int:
        return self._get("refunds_micro_yuan")

    @property
    def charges(self) -> int:
        return self._get("charges_micro_yuan")


# The meters of the seeded park by collector (a FakeEdge holds these in its book).
PARK_METERS = {
    "gw-1": ("m-101", "m-102", "m-103", "m-p1"),
    "gw-2": ("m-201", "m-202", "m-203"),
}
ANSWERS = ("result", "need_purchase")  # what a collector says back to a command


class FakeEdge:
    """One collector's side of the protocol, for tests (see the module docstring)."""

    def __init__(self, gateway_id: str, meters: tuple[str, ...] | None = None) -> None:
        self.gateway_id = gateway_id
        self.now = T0  # the collector's clock when it handles a command
        folder = tempfile.TemporaryDirectory(prefix="fake-edge-", dir=_FAST_DIR)
        self.store = Store(Path(folder.name) / "edge.sqlite", seq_block=1000)
        weakref.finalize(self, _close, self.store, folder)
        ctx = engine.Context(tariffs={}, zone_rules=[[0, 28800]], defaults={})
        ids = meters if meters is not None else PARK_METERS.get(gateway_id, ())
        infos = [MeterInfo(m, "bus1", i + 1, "acrel-ddsy1352") for i, m in enumerate(ids)]
        self.book = MeterBook(self.store, ctx, infos, {}, now=self.now)
        self.commands = Commands(self.book)
        self._outbox_seen = 0
        self._away: dict[str, dict[str, Any]] = {}  # meters not on this collector (bad input)
        self.touched: set[str] = set()
        self.applied_cmds: list[dict[str, Any]] = []  # every command handled, in order
        self._energy: dict[str, int] = {}  # the made-up counter of each meter
        self.seq = 0
        self.reading_id = 0
        self.event_id = 0

    def _state(self, meter: str) -> dict[str, Any]:
        if meter in self.book.states:
            return self.book.states[meter]
        return self._away.setdefault(meter, engine.new_state(meter))

    def wallet(self, meter: str) -> Wallet:
        self.touched.add(meter)
        return Wallet(self._state(meter))

    @property
    def wallets(self) -> dict[str, Wallet]:
        """The meters a test has used so far, with their money."""
        return {m: self.wallet(m) for m in sorted(self.touched)}

    def handle(self, cmd: dict[str, Any]) -> list[dict[str, Any]]:
        """The answers (``result``, ``need_purchase``) the real command handler queues for one
        command; a command id seen before gets its stored answer again."""
        if cmd.get("meter"):
            self.touched.add(cmd["meter"])
        self.commands.commands([cmd], self.now)
        self.applied_cmds.append(cmd)
        return [m for m in self._new_messages() if m["t"] in ANSWERS]

    def _result(self, cmd: dict[str, Any], status: str, reason: str | None) -> dict[str, Any]:
        """A ``result`` for ``cmd`` made by hand, for a test playing a collector that answers
        otherwise than the engine would (a refusal the cloud did not foresee)."""
        balance = self._state(cmd["meter"])["balance_micro_yuan"] if cmd["meter"] else None
        no = cmd["args"].get("purchase_no")
        return messages.result(cmd["id"], cmd["meter"], cmd["op"], status, reason, balance, no)

    def _new_messages(self) -> list[dict[str, Any]]:
        rows = self.store.conn.execute(
            "SELECT id, body FROM outbox WHERE id > ? ORDER BY id", (self._outbox_seen,)
        ).fetchall()
        if rows:
            self._outbox_seen = rows[-1][0]
        return [json.loads(messages.numbered(body, row_id)) for row_id, body in rows]

    def reading(
        self,
        meter: str,
        wh: int,
        price_micro_yuan_per_kwh: int = 1_000_000,
        ts: int = T0,
        relay: str | None = "closed",
    ) -> dict[str, Any]:
        """Consume ``wh`` (charge = wh × price / 1000, exact for the prices tests use), charged
        to the meter's engine state, and report it."""
        self.touched.add(meter)
        state = self._state(meter)
        charge = wh * price_micro_yuan_per_kwh // 1000
        state["charges_micro_yuan"] += charge
        state["balance_micro_yuan"] -= charge
        energy = self._energy.get(meter, 0) + wh
        self._energy[meter] = energy
        if meter in self.book.states:
            with self.book.unit():
                self.book.save(meter, self.now)
        msg = {
            "t": "reading",
            "meter": meter,
            "ts": ts,
            "energy_wh": energy,
            "power_w": 1000,
            "relay": relay,
            "band_energy_wh": None,
            "voltages_dv": [2200, 2200, 2200],
            "currents_ma": None,
            "charge_micro_yuan": charge,
            "balance_micro_yuan": state["balance_micro_yuan"],
            "credits_micro_yuan": state["credits_micro_yuan"],
            "refunds_micro_yuan": state["refunds_micro_yuan"],
            "charges_micro_yuan": state["charges_micro_yuan"],
        }
        # Its id from the outbox, as the agent numbers it: readings and results share one
        # counter, which the cloud's ledger cross-check compares causally.
        with self.store.transaction():
            self.reading_id = self.store.outbox.enqueue(msg, ts)
        self._outbox_seen = max(self._outbox_seen, self.reading_id)
        return {"id": self.reading_id, **msg}

    def event(
        self, meter: str | None, kind: str, ts: int = T0, detail: Any = None
    ) -> dict[str, Any]:
        self.event_id += 1
        return {
            "t": "event",
            "id": self.event_id,
            "meter": meter,
            "ts": ts,
            "kind": kind,
            "detail": detail,
        }

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


# A RAM-backed folder where there is one: the store is real SQLite, its fsyncs need no disk.
_FAST_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


def _close(store: Store, folder: tempfile.TemporaryDirectory[str]) -> None:
    store.close()
    folder.cleanup()


def send(
    db: Database,
    edge: FakeEdge,
    messages: list[dict[str, Any]],
    now: int = T0,
    seq: int | None = None,
) -> ingest.ApplyResult:
    """Deliver ``messages`` from ``edge`` as one envelope and commit."""
    with db.session() as s:
        return ingest.apply_uplink(
            s, edge.gateway_id, seq if seq is not None else edge.next_seq(), messages, now=now
        )


def sync(
    db: Database,
    edges: dict[str, FakeEdge],
    now: int = T0,
    rounds: int = 10,
    drop_results: bool = False,
) -> int:
    """Run the command loop until nothing is left to send: commands out, results back.
    Returns how many commands were delivered."""
    delivered = 0
    for _ in range(rounds):
        moved = 0
        for gw, edge in edges.items():
            with db.session() as s:
                msgs = dispatch.next_to_send(s, gw, now=now)
                dispatch.mark_sent(s, [m["id"] for m in msgs], now=now)
            if not msgs:
                continue
            moved += len(msgs)
            answers: list[dict[str, Any]] = []
            edge.now = now
            for m in msgs:
                answers.extend(edge.handle(m))
            if not drop_results:
                send(db, edge, answers, now=now)
        delivered += moved
        if moved == 0:
            break
    return delivered
