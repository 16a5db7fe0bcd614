"""The bridge's own logic on the in-memory broker link (tests/fakes.py) and a real SQLite
database: exactly once and re-acks, misrouted and forged envelopes, status and reachability,
downlink sequence numbers that never repeat. test_bridge.py runs the same bridge against a real
Mosquitto with a scripted collector."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from cloud.bridge.link import Inbound
from cloud.bridge.worker import Bridge, BridgeSettings
from cloud.control import commands
from cloud.db import Database
from cloud.models import Meter, Reading
from shared import topics
from shared.codec import envelope, messages
from tests.e2e.conftest import TEST_ACTOR, seed_small_site
from tests.e2e.test_bridge import reading
from tests.fakes import FakeClock, MemoryBroker

SITE, GW = "park", "gw1"


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.db = Database(f"sqlite:///{tmp / 'cloud.db'}")
        self.db.upgrade()
        self.key = secrets.token_bytes(32)
        seed_small_site(self.db, self.key)
        self.ring = envelope.Keyring({1: self.key}, current=1)
        self.broker = MemoryBroker()
        self.collector = self.broker.peer(GW)
        self.collector.subscribe(topics.down(SITE, GW))
        self.clock = FakeClock()
        self.bridge = Bridge(
            self.db,
            BridgeSettings(lost_contact_every_s=3600),
            clock=self.clock.time,
            link=self.broker.bridge_link(),
        )
        self.bridge.link.start()
        self.seq = 0

    def uplink(self, msgs: list[dict[str, Any]], topic: str | None = None) -> Inbound:
        self.seq += 1
        data = envelope.seal(self.ring, envelope.UP, GW, self.seq, 0, messages.body(msgs))
        return Inbound(topic or topics.up(SITE, GW), data, 0.0)

    def downlinks(self) -> list[envelope.Opened]:
        return [
            envelope.open_sealed(self.ring, payload, envelope.DOWN, GW)
            for topic, payload in self.collector.received
            if topic == topics.down(SITE, GW)
        ]

    def acked(self) -> list[int]:
        return [
            s for o in self.downlinks() for m in o.body["m"] if m["t"] == "ack" for s in m["seqs"]
        ]

    def readings(self) -> int:
        with self.db.session(readonly=True) as s:
            return s.query(Reading).count()


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_an_envelope_applies_once_and_a_copy_is_acked_again_without_applying(
    setup: Setup,
) -> None:
    envelope_in = setup.uplink([reading(1, "m1", 1000, 5, {})])
    setup.bridge.process([envelope_in, envelope_in])  # a QoS 1 copy in the same batch
    setup.bridge.process([envelope_in])  # and one after the commit
    assert setup.readings() == 1
    assert setup.acked() == [1, 1]
    assert setup.bridge.stats.applied == 1
    assert setup.bridge.stats.reacked == 1


def test_a_misrouted_or_forged_envelope_changes_nothing_and_is_not_acked(setup: Setup) -> None:
    good = setup.uplink([reading(1, "m1", 1000, 5, {})])
    forged = Inbound(good.topic, good.payload[:-1] + bytes([good.payload[-1] ^ 1]), 0.0)
    misrouted = setup.uplink([reading(2, "m1", 1000, 5, {})], topic=topics.up(SITE, "gw9"))
    elsewhere = setup.uplink([reading(3, "m1", 1000, 5, {})], topic=topics.up("other", GW))
    setup.bridge.process([forged, misrouted, elsewhere])
    assert setup.readings() == 0
    assert setup.acked() == []
    assert setup.bridge.stats.rejected == {"ForgedError": 1, "Topic": 2}


def test_commands_wait_while_the_gateway_says_offline_and_go_when_it_is_back(
    setup: Setup,
) -> None:
    setup.bridge.process([Inbound(topics.status(SITE, GW), topics.OFFLINE, 0.0)])
    with setup.db.session() as s:
        (trip,) = commands.issue(s, [s.get(Meter, "m2")], "trip", {}, TEST_ACTOR)
        trip_id = trip.id
    setup.bridge.dispatch_commands()
    assert [m for o in setup.downlinks() for m in o.body["m"] if m["t"] == "cmd"] == []
    setup.bridge.process([Inbound(topics.status(SITE, GW), topics.ONLINE, 0.0)])
    setup.bridge.dispatch_commands()
    sent = [m for o in setup.downlinks() for m in o.body["m"] if m["t"] == "cmd"]
    assert [(m["id"], m["op"], m["args"]) for m in sent if m["meter"] == "m2"] == [
        (trip_id, "mode", {"mode": "forced_off"})
    ]
    retained = setup.broker.retained[topics.north_gateway_status(SITE, GW)]
    assert b'"online":true' in retained


def test_downlink_sequence_numbers_never_repeat_across_a_bridge_restart(setup: Setup) -> None:
    for i in range(3):
        setup.bridge.process([setup.uplink([reading(i + 1, "m1", 1000 + i, 5, {})])])
    first = [o.header.seq for o in setup.downlinks()]
    again = Bridge(setup.db, BridgeSettings(), link=setup.broker.bridge_link("bridge-2"))
    again.link.start()
    again.process([setup.uplink([reading(9, "m1", 2000, 5, {})])])
    seqs = [o.header.seq for o in setup.downlinks()]
    assert len(seqs) == 4
    assert seqs == sorted(set(seqs))
    assert seqs[-1] > max(first)
