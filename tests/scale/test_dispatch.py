"""Commands to many collectors at once, on PostgreSQL (after a broker restart 10,000 collectors
come online together, each with commands due; cloud/bridge/jobs.py):

- one dispatch pass costs a bounded number of SQL statements per chunk of collectors, not a
  few per collector, and every collector gets its commands once;
- a pass cut short by its time budget leaves the rest to the next pass, which carries on
  after the last collector done (the worker handles an uplink batch in between);
- only the owner sends: a collector a live bridge elsewhere owns gets nothing from us, and
  once that bridge is dead we claim it and number its downlink above the other's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, update

from bench.scale import seed
from cloud.bridge.worker import Bridge, BridgeSettings
from cloud.control import dispatch
from cloud.control.commands import enqueue
from cloud.db import Database
from cloud.models import BridgeMember, Gateway
from shared.codec import envelope
from tests.fakes import MemoryBroker, MemoryPeer
from tests.scale.conftest import seeded

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

COLLECTORS = 450


def _bridge(db: Database, broker: MemoryBroker, name: str, **settings: Any) -> Bridge:
    b = Bridge(
        db,
        BridgeSettings(client_id=name, publish_north=False, lost_contact_every_s=3600, **settings),
        link=broker.bridge_link(name),
    )
    b.link.start()
    b.membership.beat()
    return b


def _time_commands(db: Database, park: list[seed.Collector]) -> dict[str, int]:
    """A ``time`` command due for every collector, every collector online: ``{gateway: id}``."""
    out: dict[str, int] = {}
    with db.session() as s:
        s.execute(update(Gateway).values(online=True))
        for c in park:
            command = dispatch.enqueue_time(s, c.gateway, now=1_000)
            assert command is not None
            s.flush()
            out[c.gateway] = command.id
    return out


class Downlinks:
    """Every downlink envelope the collectors receive, opened with their own keys."""

    def __init__(self, broker: MemoryBroker, park: list[seed.Collector]) -> None:
        self.rings = {
            c.gateway: envelope.Keyring({1: bytes.fromhex(c.key_hex)}, current=1) for c in park
        }
        self.peer: MemoryPeer = broker.peer("park")
        self.peer.subscribe("gridvend/v1/+/+/down")

    def commands(self) -> list[tuple[str, int, int]]:
        """``(gateway, envelope seq, command id)`` in arrival order."""
        out = []
        for topic, payload in self.peer.received:
            gw = topic.split("/")[3]
            opened = envelope.open_sealed(self.rings[gw], payload, envelope.DOWN, gw)
            out += [(gw, opened.header.seq, m["id"]) for m in opened.body["m"] if m["t"] == "cmd"]
        return out


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_one_pass_to_many_collectors_costs_statements_per_chunk_not_per_collector(
    pg: Database,
) -> None:
    park = seeded(pg, COLLECTORS, meters=2)
    due = _time_commands(pg, park)
    broker = MemoryBroker()
    down = Downlinks(broker, park)
    bridge = _bridge(pg, broker, "b1", dispatch_budget_s=60.0)
    with _statements(pg) as seen:
        sent = bridge.dispatch_commands()
    assert sent == COLLECTORS
    assert sorted((gw, cid) for gw, _seq, cid in down.commands()) == sorted(due.items())
    # The due query, then per chunk: rows locked, the clock, the claims, the open commands,
    # mark_sent; the downlink blocks reserved (lock, write). One collector at a time cost
    # about six statements each (2,700 here).
    chunks = math.ceil(COLLECTORS / bridge.settings.dispatch_chunk)
    assert len(seen) <= 2 + 8 * chunks, Counter(s.split()[0] for s in seen)
    assert bridge.dispatch_commands() == 0  # out, not due again before their retry time


def test_a_pass_cut_short_by_its_budget_carries_on_after_the_last_collector_done(
    pg: Database,
) -> None:
    park = seeded(pg, COLLECTORS, meters=2)
    due = _time_commands(pg, park)
    broker = MemoryBroker()
    down = Downlinks(broker, park)
    bridge = _bridge(pg, broker, "b1", dispatch_chunk=100, dispatch_budget_s=0.0)
    order = sorted(due)
    first = next(c for c in park if c.gateway == order[0])
    passes: list[list[str]] = []
    while bridge.parts.commands_due or not passes:
        bridge.parts.commands_due = False
        before = len(down.commands())
        bridge.dispatch_commands()
        passes.append([gw for gw, _seq, _cid in down.commands()[before:]])
        if len(passes) == 1:
            # Something new for the first collector: the next passes still start after the
            # last collector the cut one did, so those at the end are not starved.
            with pg.session() as s:
                enqueue(s, gateway_id=first.gateway, meter_id=first.meters[0], op="read_now")
        assert len(passes) <= 5
    assert passes[:4] == [order[i : i + 100] for i in range(0, 400, 100)]
    assert sorted(passes[4]) == sorted([*order[400:], order[0]])
    got = Counter(gw for gw, _seq, _cid in down.commands())
    assert got == Counter([*order, order[0]])  # the time commands once, the new one once


def test_only_the_owner_sends_and_a_dead_owners_collectors_are_claimed_with_fresh_numbers(
    pg: Database,
) -> None:
    park = seeded(pg, 40, meters=2)
    due = _time_commands(pg, park)
    broker = MemoryBroker()
    down = Downlinks(broker, park)
    # A shared subscription makes every bridge try every collector: the row lock and the
    # claim alone decide who sends.
    first = _bridge(pg, broker, "b1", share_group="g")
    second = _bridge(pg, broker, "b2", share_group="g")
    assert first.dispatch_commands() == 40
    with pg.session() as s:
        for c in park:
            enqueue(s, gateway_id=c.gateway, meter_id=c.meters[0], op="read_now")
    first.membership.beat()
    assert second.dispatch_commands() == 0  # the first one owns them and is alive
    assert len(down.commands()) == 40
    with pg.session() as s:  # the first bridge dies: its beat grows old
        s.execute(
            update(BridgeMember)
            .where(BridgeMember.id == first.membership.id)
            .values(heartbeat_ms=0)
        )
    assert second.dispatch_commands() == 40
    commands = down.commands()
    assert {cid for gw, _seq, cid in commands[:40]} == set(due.values())
    by_gateway: dict[str, list[int]] = {}
    for gw, seq, _cid in commands:
        by_gateway.setdefault(gw, []).append(seq)
    assert all(len(s) == 2 and s[1] > s[0] for s in by_gateway.values()), by_gateway
    assert second.membership.owned() == {c.gateway for c in park}
