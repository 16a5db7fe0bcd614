"""The uplink's own logic over the in-memory MQTT pair and a fake clock (tests/fakes.py): resends
run on the sync's clock, a later ack resends a lost envelope at once, the window caps what waits
for acks, heartbeats follow the clock, bad downlink input changes nothing, and an outage is ridden
out. What needs a broker's own behaviour (restarts without persistence, the will over a cut TCP
link) is in test_sync.py against a real Mosquitto; the store here is the real SQLite store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.sync import SyncSettings
from shared import topics
from shared.codec import envelope, messages
from tests.edge.agentkit import until
from tests.edge.test_sync import GW, RING, SITE, Harness
from tests.fakes import FakeClock, MemoryBroker

SETTINGS = SyncSettings(
    heartbeat_s=120.0,
    ack_timeout_s=30.0,
    batch_msgs=10,
    window=2,
    backoff_min_s=0.05,
    backoff_max_s=0.2,
)


class Cloud:
    """The cloud's side on the memory broker: opens uplinks, records them, acks when told."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.peer = broker.peer("cloud")
        self.peer.subscribe(topics.up(SITE, GW))
        self.down_seq = 0

    def envelopes(self) -> list[bytes]:
        return [p for t, p in self.peer.received if t == topics.up(SITE, GW)]

    def opened(self) -> list[envelope.Opened]:
        return [envelope.open_sealed(RING, data, envelope.UP, GW) for data in self.envelopes()]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for o in self.opened() for m in o.body["m"] if m["t"] == kind]

    def send(self, msgs: list[dict[str, Any]]) -> bytes:
        self.down_seq += 1
        data = envelope.seal(RING, envelope.DOWN, GW, self.down_seq, 0, messages.body(msgs))
        self.peer.publish(topics.down(SITE, GW), data)
        return data

    def ack(self, *seqs: int) -> None:
        self.send([messages.ack(list(seqs))])


@contextlib.asynccontextmanager
async def running(h: Harness) -> AsyncIterator[None]:
    assert h.clock is not None
    h.clock.advance(1.0)  # a second of tokens for the rate limit (5000 msg/s)
    task = asyncio.create_task(h.sync.run())
    try:
        await until(h.sync.connected.is_set, what="connected")
        yield
    finally:
        await h.sync.stop()
        await asyncio.wait_for(task, 10)
        h.worker.close()


@dataclass
class Wire:
    broker: MemoryBroker
    cloud: Cloud
    h: Harness


@pytest.fixture
def wire(tmp_path: Path) -> Wire:
    """The memory broker, the cloud's side on it, and a sync over a real store."""
    broker = MemoryBroker()
    cloud = Cloud(broker)  # subscribed first: it hears everything the sync says
    h = Harness(tmp_path, None, SETTINGS, connect=broker.connector(GW), clock=FakeClock())
    return Wire(broker, cloud, h)


def _seqs(cloud: Cloud) -> list[int]:
    return [o.header.seq for o in cloud.opened() if o.body["m"][0]["t"] == "need_purchase"]


def test_an_unacked_envelope_is_resent_when_the_sync_clock_passes_the_ack_timeout(
    wire: Wire,
) -> None:
    async def scenario() -> None:
        cloud, h = wire.cloud, wire.h
        async with running(h):
            await h.enqueue(5)
            await until(lambda: len(_seqs(cloud)) == 1, what="the envelope")
            await asyncio.sleep(0.3)  # real time passes; the sync's clock does not
            assert len(_seqs(cloud)) == 1
            h.clock.advance(SETTINGS.ack_timeout_s)
            h.sync.kick()
            await until(lambda: len(_seqs(cloud)) == 2, what="the resend")
            first, again = [d for d, o in zip(cloud.envelopes(), cloud.opened(), strict=True)
                            if o.body["m"][0]["t"] == "need_purchase"]  # fmt: skip
            assert first == again  # sealed once, resent byte for byte
            cloud.ack(_seqs(cloud)[0])
            await until(lambda: h.sync.backlog() == 0, what="acked")
            assert await h.backlog() == {"queued": 0, "inflight_envelopes": 0, "inflight": 0}

    asyncio.run(scenario())


def test_the_ack_of_a_later_envelope_resends_a_lost_one_at_once(wire: Wire) -> None:
    async def scenario() -> None:
        broker, cloud, h = wire.broker, wire.cloud, wire.h
        lost: list[bytes] = []

        def lose_the_first_batch(topic: str, payload: bytes) -> bool:
            if topic != topics.up(SITE, GW) or lost:
                return False
            opened = envelope.open_sealed(RING, payload, envelope.UP, GW)
            if opened.body["m"][0]["t"] != "need_purchase":
                return False  # the hello goes through
            lost.append(payload)
            return True

        broker.drop = lose_the_first_batch
        async with running(h):
            await h.enqueue(10)  # one envelope (batch 10): lost on the way
            await until(lambda: bool(lost), what="the first envelope lost")
            await h.enqueue(5)
            await until(lambda: len(_seqs(cloud)) == 1, what="the second envelope")
            cloud.ack(_seqs(cloud)[0])
            # no clock advance: only the fast retransmit can bring the first one now
            await until(lambda: len(_seqs(cloud)) == 2, what="the lost one again")
            assert cloud.envelopes()[-1] == lost[0]
            assert h.sync.stats.fast_resent == 1

    asyncio.run(scenario())


def test_the_window_caps_the_envelopes_waiting_for_an_ack(wire: Wire) -> None:
    async def scenario() -> None:
        cloud, h = wire.cloud, wire.h
        async with running(h):
            await h.enqueue(40)  # four envelopes' worth; the window is two
            await until(lambda: len(_seqs(cloud)) == 2, what="a full window")
            await asyncio.sleep(0.2)
            assert len(_seqs(cloud)) == 2
            cloud.ack(*_seqs(cloud))
            await until(lambda: len(_seqs(cloud)) == 4, what="the next two after the acks")
            numbers = [m["purchase_no"] for m in cloud.of_type("need_purchase")]
            assert numbers == list(range(1, 41))

    asyncio.run(scenario())


def test_a_heartbeat_goes_out_when_the_sync_clock_says_it_is_due(wire: Wire) -> None:
    async def scenario() -> None:
        broker, cloud, h = wire.broker, wire.cloud, wire.h
        async with running(h):
            await until(lambda: bool(cloud.of_type("hello")), what="hello on connect")
            await asyncio.sleep(0.3)
            assert cloud.of_type("hb") == []
            h.clock.advance(SETTINGS.heartbeat_s)
            h.sync.kick()
            await until(lambda: bool(cloud.of_type("hb")), what="the heartbeat")
            assert broker.retained[topics.status(SITE, GW)] == topics.ONLINE
        assert broker.retained[topics.status(SITE, GW)] == topics.OFFLINE  # said at stop

    asyncio.run(scenario())


def test_bad_downlink_envelopes_change_nothing_and_a_replay_is_applied_once(wire: Wire) -> None:
    async def scenario() -> None:
        cloud, h = wire.cloud, wire.h
        async with running(h):
            good = cloud.send([messages.cmd("c-1", "m1", "read_now", {})])
            await until(lambda: len(h.commands) == 1, what="the command")
            forged = bytearray(good)
            forged[-3] ^= 1
            cloud.peer.publish(topics.down(SITE, GW), bytes(forged))
            cloud.peer.publish(topics.down(SITE, GW), good)  # a QoS 1 redelivery
            cloud.peer.publish(topics.down(SITE, GW), b"junk")
            await until(lambda: sum(h.sync.stats.rejected.values()) == 3, what="three refused")
            assert [c["id"] for c in h.commands] == ["c-1"]
            assert h.sync.stats.rejected == {
                "ForgedError": 1,
                "ReplayError": 1,
                "MalformedError": 1,
            }

    asyncio.run(scenario())


def test_an_outage_is_ridden_out_and_what_was_queued_meanwhile_arrives(wire: Wire) -> None:
    async def scenario() -> None:
        broker, cloud, h = wire.broker, wire.cloud, wire.h
        async with running(h):
            broker.stop()
            await until(lambda: not h.sync.connected.is_set(), what="the loss noticed")
            assert broker.retained[topics.status(SITE, GW)] == topics.OFFLINE  # the will
            await h.enqueue(8)
            broker.start()
            await until(h.sync.connected.is_set, what="connected again")
            await until(lambda: len(cloud.of_type("need_purchase")) == 8, what="the backlog")
            assert h.sync.stats.connects == 2

    asyncio.run(scenario())
