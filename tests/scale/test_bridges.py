"""Several bridges on one PostgreSQL (docs/architecture.md, "Several bridges"), on the in-memory
broker link so a test decides exactly who gets which copy when:

- two bridges handed the same envelopes at the same moment, both trying every collector (as
  with a shared subscription that hands copies to both): every envelope applied once, each
  collector's in the order it sent them, one owner per collector;
- the default spreading (every bridge hears everything, applies the collectors it prefers):
  a bridge that stops beating has its collectors taken over, and the survivor applies its
  standby copies at once: nothing is lost, nothing applied twice, and the downlink numbers of
  a collector never repeat across its owners.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from bench.scale.vcollector import VirtualCollector
from cloud.bridge.link import Inbound
from cloud.bridge.worker import Bridge, BridgeSettings
from cloud.db import Database
from cloud.models import BridgeMember, Gateway, InboxEntry, Meter, Reading
from shared import topics
from shared.codec import envelope
from tests.fakes import MemoryBroker
from tests.scale.conftest import seeded

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]


def _collectors(park: list[Any]) -> list[VirtualCollector]:
    return [VirtualCollector(c.site, c.gateway, bytes.fromhex(c.key_hex), c.meters) for c in park]


def _envelopes(vcs: list[VirtualCollector], rounds: int) -> list[Inbound]:
    """``rounds`` report envelopes per collector, interleaved as a park's arrive."""
    out = []
    for r in range(rounds):
        for vc in vcs:
            data = vc.report(1_000.0 + r)
            assert data is not None
            out.append(Inbound(vc.topic_up, data, time.monotonic()))
    return out


def _bridge(db: Database, broker: MemoryBroker, name: str, **settings: Any) -> Bridge:
    b = Bridge(
        db,
        BridgeSettings(client_id=name, publish_north=False, lost_contact_every_s=3600, **settings),
        link=broker.bridge_link(name),
    )
    b.link.start()
    b.membership.beat()
    return b


def _acked(broker: MemoryBroker, vcs: list[VirtualCollector]) -> dict[str, list[int]]:
    """Every ack the bridges published, opened with the collector's key, per collector."""
    by_topic = {topics.down(vc.site, vc.gateway): vc for vc in vcs}
    out: dict[str, list[int]] = {}
    for topic, payload in broker.published:
        vc = by_topic.get(topic)
        if vc is None:
            continue
        opened = envelope.open_sealed(vc.ring, payload, envelope.DOWN, vc.gateway)
        for m in opened.body["m"]:
            if m["t"] == "ack":
                out.setdefault(vc.gateway, []).extend(m["seqs"])
    return out


def _down_seqs(broker: MemoryBroker, vcs: list[VirtualCollector]) -> dict[str, list[int]]:
    by_topic = {topics.down(vc.site, vc.gateway): vc for vc in vcs}
    out: dict[str, list[int]] = {}
    for topic, payload in broker.published:
        vc = by_topic.get(topic)
        if vc is not None:
            out.setdefault(vc.gateway, []).append(envelope.peek(payload).seq)
    return out


def _check_exactly_once_in_order(db: Database, vcs: list[VirtualCollector], rounds: int) -> None:
    with db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Reading)) == sum(
            vc.counters.readings for vc in vcs
        )
        for vc in vcs:
            seqs = list(
                s.scalars(
                    select(InboxEntry.seq)
                    .where(InboxEntry.gateway_id == vc.gateway)
                    .order_by(InboxEntry.id)
                )
            )
            # Applied once each, in the order the collector sealed them.
            assert seqs == sorted(vc.inflight), (vc.gateway, seqs)
            assert len(seqs) == rounds
            for meter_id, totals in vc.meters.items():
                m = s.get(Meter, meter_id)
                assert m is not None
                assert m.charges_micro_yuan == totals.charges_micro_yuan
                assert m.balance_micro_yuan == (
                    m.credits_micro_yuan - m.refunds_micro_yuan - m.charges_micro_yuan
                )


def test_two_bridges_given_the_same_envelopes_at_once_apply_each_once_in_order(
    pg: Database,
) -> None:
    park = seeded(pg, 24)
    vcs = _collectors(park)
    rounds = 6
    items = _envelopes(vcs, rounds)
    broker = MemoryBroker()
    # A shared subscription's policy: each bridge tries whatever it is handed. Both are handed
    # every envelope, at the same moment: only the database can keep them apart.
    one = _bridge(pg, broker, "bridge-a", share_group="g")
    two = _bridge(pg, broker, "bridge-b", share_group="g")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(bridge: Bridge) -> None:
        try:
            start.wait()
            for i in range(0, len(items), 12):
                bridge.process(items[i : i + 12])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert one.stats.apply_failed == two.stats.apply_failed == 0
    _check_exactly_once_in_order(pg, vcs, rounds)
    with pg.session(readonly=True) as s:
        owners = dict(s.execute(select(Gateway.id, Gateway.owner)).all())
    assert set(owners.values()) <= {one.membership.id, two.membership.id}
    assert None not in owners.values()
    # Every envelope acked, by its collector's owner only.
    acked = _acked(broker, vcs)
    for vc in vcs:
        assert sorted(set(acked[vc.gateway])) == sorted(vc.inflight)


def test_a_silent_bridge_has_its_collectors_taken_over_from_the_standby_copies(
    pg: Database,
) -> None:
    park = seeded(pg, 24)
    vcs = _collectors(park)
    broker = MemoryBroker()
    one = _bridge(pg, broker, "bridge-a", member_timeout_s=1.0)
    two = _bridge(pg, broker, "bridge-b", member_timeout_s=1.0)
    for b in (one, two):
        b.beat()  # each learns the other: the collectors are spread between them
    first = _envelopes(vcs, 2)
    for b in (one, two):
        b.process(first)  # every bridge hears every envelope
    with pg.session(readonly=True) as s:
        by_owner = dict(
            s.execute(select(Gateway.owner, func.count()).group_by(Gateway.owner)).all()
        )
    assert set(by_owner) == {one.membership.id, two.membership.id}  # both own some
    assert two.standby.size > 0
    # Bridge one goes silent (killed: no beat, no goodbye) holding the next envelopes unapplied.
    second = _envelopes(vcs, 2)
    two.process(second)  # two applies its own and keeps copies of one's
    time.sleep(1.2)
    two.beat()  # one is dead now: two prefers every collector, takes one's copies
    assert two.membership.live == ["bridge-b"]
    while batch := two._take(0):
        two.process(batch)
    _check_exactly_once_in_order(pg, vcs, 4)
    with pg.session(readonly=True) as s:
        assert set(s.scalars(select(Gateway.owner))) == {two.membership.id}
        assert s.scalar(select(func.count()).select_from(BridgeMember)) == 2
    # A collector's downlink numbers never repeat, whoever sealed them.
    for gw, seqs in _down_seqs(broker, vcs).items():
        assert len(seqs) == len(set(seqs)), gw
