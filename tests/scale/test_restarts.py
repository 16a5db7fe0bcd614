"""One envelope lost across 6 collector restarts is still applied, once (issue 15, "replay window
against restart blocks"). Each restart of the collector starts a new block of 1,000 sequence
numbers (the durable reservation), and its hello, applied at once, moves the cloud's window up
by a block; after 5 or so the lost envelope is older than the 4,096-wide window. It used to be
refused then and stay in flight forever; the cloud now applies an authentic envelope older than
the window that its inbox does not hold. Real parts: the collector's sync over its real store
(seq_block 1,000 as the agent has), the real bridge, an in-memory broker that loses that one
envelope every time until told to stop."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from cloud.bridge.worker import Bridge, BridgeSettings
from cloud.db import Database
from cloud.models import InboxEntry, Reading
from cloud.park import inventory
from edge.cache.store import Store
from edge.cache.worker import StoreWorker
from edge.sync import Sync, SyncSettings
from shared import topics
from shared.broker import Broker
from shared.codec import envelope, messages
from tests.fakes import MemoryBroker

SITE, GW, METER = "restarts", "gw-r", "gw-r-m1"
KEY = bytes(range(50, 82))
RING = envelope.Keyring({1: KEY}, current=1)
SETTINGS = SyncSettings(heartbeat_s=60.0, ack_timeout_s=1.0, backoff_min_s=0.05, backoff_max_s=0.2)


def _reading() -> dict[str, Any]:
    return {
        "t": "reading",
        "meter": METER,
        "ts": 1_767_225_600,
        "energy_wh": 1_000,
        "power_w": 100,
        "relay": "closed",
        "charge_micro_yuan": 500,
        "balance_micro_yuan": -500,
        "credits_micro_yuan": 0,
        "refunds_micro_yuan": 0,
        "charges_micro_yuan": 500,
    }


class Collector:
    """The collector's sync over its store, started and stopped like the agent's."""

    def __init__(self, store_path: Path, broker: MemoryBroker) -> None:
        self.store = Store(store_path, seq_block=1000)
        self.worker = StoreWorker(self.store)
        self.sync = Sync(
            site=SITE,
            gateway=GW,
            keyring=RING,
            broker=Broker(),
            worker=self.worker,
            on_commands=self._commands,
            hello=lambda: messages.hello(
                "test", "h", [{"id": METER, "model": "m", "bus": "b", "address": 1}]
            ),
            heartbeat=lambda backlog: messages.hb(int(time.time()), backlog, {}, 1),
            settings=SETTINGS,
            connect=broker.connector(GW),
        )

    async def _commands(self, cmds: list[dict[str, Any]], persist: Any) -> None:
        def work() -> None:
            with self.store.transaction():
                for c in cmds:
                    result = messages.result(c["id"], c["meter"], c["op"], "applied", None, None)
                    self.store.outbox.enqueue(result, 0)
                persist(self.store)

        await self.worker.call(work)
        self.sync.kick(len(cmds))

    def inflight(self) -> list[int]:
        return [seq for seq, _data, _ts in self.worker.store.outbox.inflight()]


async def _run_once(
    store_path: Path, broker: MemoryBroker, until: Any, enqueue: bool = False
) -> list[int]:
    """Start the collector, wait for ``until(collector)``, stop it; its envelopes in flight."""
    c = Collector(store_path, broker)
    if enqueue:
        with c.store.transaction():
            c.store.outbox.enqueue(_reading(), 0)
    task = asyncio.create_task(c.sync.run())
    try:
        deadline = time.monotonic() + 30
        while not until(c):
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.05)
    finally:
        await c.sync.stop()
        await asyncio.wait_for(task, 10)
        left = await c.worker.call(c.inflight)
        c.worker.close()
    return left


def test_an_envelope_lost_across_six_restarts_is_applied_once(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'cloud.db'}")
    db.upgrade()
    with db.session() as s:
        inventory.upsert_site(s, SITE, "Restarts")
        inventory.upsert_gateway(s, GW, SITE, KEY.hex())
        inventory.upsert_meter(s, METER, GW, "b", "1", "acrel")
    broker = MemoryBroker()
    losing = {"on": True}
    lost: list[int] = []

    def drop(topic: str, payload: bytes) -> bool:
        if not losing["on"] or topic != topics.up(SITE, GW):
            return False
        body = envelope.open_sealed(RING, payload, envelope.UP, GW).body
        if any(m.get("t") == "reading" for m in body["m"]):
            lost.append(envelope.peek(payload).seq)
            return True
        return False

    broker.drop = drop
    bridge = Bridge(db, BridgeSettings(lost_contact_every_s=3600), link=broker.bridge_link())
    runner = threading.Thread(target=bridge.run, daemon=True)
    runner.start()
    store = tmp_path / "edge.sqlite"

    def hello_acked(c: Collector) -> bool:
        return c.sync.stats.connects >= 1 and bridge.stats.applied >= applied_before + 1

    async def scenario() -> None:
        nonlocal applied_before
        applied_before = bridge.stats.applied
        await _run_once(store, broker, lambda c: bool(lost) and hello_acked(c), enqueue=True)
        for _ in range(6):  # six restarts: each a new block, its hello applied, the reading lost
            applied_before = bridge.stats.applied
            seen = len(lost)
            await _run_once(store, broker, lambda c, n=seen: len(lost) > n and hello_acked(c))
        with db.session(readonly=True) as s:
            window = envelope.ReplayWindow.from_dict(s.get(inventory.Gateway, GW).up_window)
        assert window.highest - lost[0] >= window.size  # it has fallen out of the window
        losing["on"] = False
        left = await _run_once(store, broker, lambda c: not c.inflight())
        assert left == []

    applied_before = 0
    try:
        asyncio.run(scenario())
    finally:
        bridge.stop()
        runner.join(10)
    assert len(set(lost)) == 1  # one envelope, resent unchanged each time
    with db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Reading)) == 1
        assert (
            s.scalar(select(func.count()).select_from(InboxEntry).where(InboxEntry.seq == lost[0]))
            == 1
        )
    assert bridge.stats.rejected.get("ReplayError") is None
    db.dispose()
