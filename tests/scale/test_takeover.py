"""A bridge that dies is replaced by its last will, not by its heartbeat timeout
(cloud/bridge/owners.py): the broker publishes the dead bridge's retained ``offline`` as soon
as its connection drops, the other bridges hear it, take its collectors over and apply the
standby copies of what it held unacked. Real parts: Mosquitto, PostgreSQL, two ``gridvend cloud
bridge`` processes (one killed with SIGKILL), virtual collectors (bench/scale/).

The member timeout and the collectors' ack timeout are both 60 s here, so anything the test
sees acknowledged within them came from the will: without it the survivor would wait out the
dead bridge's 60 s, and the collectors would resend only after theirs."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import select

from bench.scale import check, procs
from cloud.bridge import owners
from cloud.db import Database
from cloud.models import BridgeMember, Gateway
from tests.scale.conftest import load_worker, seeded
from tests.support.services import Mosquitto

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]


def _owners(db: Database) -> dict[str | None, int]:
    """How many collectors each member owns (None: free)."""
    with db.session(readonly=True) as s:
        return dict(Counter(s.scalars(select(Gateway.owner))))


def test_a_killed_bridge_is_replaced_as_soon_as_the_broker_publishes_its_will(
    pg: Database, mosquitto: Mosquitto
) -> None:
    park = seeded(pg, 16)
    url = str(pg.engine.url.render_as_string(hide_password=False))
    worker = load_worker("takeover-load", park, mosquitto.url, ack_timeout_s=60.0)
    slow = ["--member-timeout", "60"]
    a = procs.BridgeProcess("takeover-a", url, [mosquitto.url], slow)
    b = procs.BridgeProcess("takeover-b", url, [mosquitto.url], slow)
    try:
        for bridge in (a, b):
            bridge.start()
            bridge.wait_connected(60)
        worker.call("load", on=True)
        # Both bridges own some of the collectors (rendezvous hashing over the two).
        procs.wait_until(lambda: len(_owners(pg)) == 2 and None not in _owners(pg), 60, "spread")
        procs.wait_until(lambda: worker.call("stats")["inflight"] <= len(park), 30, "acks flow")

        b.kill()
        killed = time.monotonic()
        with pg.session(readonly=True) as s:
            a_id = s.scalar(select(BridgeMember.id).where(BridgeMember.client_id == "takeover-a"))
        procs.wait_until(lambda: _owners(pg) == {a_id: len(park)}, 20, "a owns every collector")
        taken_s = time.monotonic() - killed
        # Well inside the 60 s member timeout: the will did it.
        assert taken_s < 15, taken_s
        assert a.events.get("bridge_gone", 0) >= 1

        time.sleep(2)  # a little more load through the survivor alone
        worker.call("load", on=False)
        # Every envelope acked, long before the collectors' own 60 s resend: what b held
        # unacked came from a's standby copies.
        procs.wait_until(lambda: worker.call("stats")["inflight"] == 0, 20, "acks for everything")
        assert worker.call("stats")["resent"] == 0
        report = check.verify(pg, worker.call("totals")["totals"])
        assert report["counts"] == dict.fromkeys(report["counts"], 0), report["examples"]
        assert report["readings_in_database"] == report["readings_generated"] > 0
        assert a.errors == []
    finally:
        for bridge in (a, b):
            bridge.stop()
        worker.stop()


def test_a_bridge_presumed_gone_is_alive_again_once_it_beats(pg: Database) -> None:
    """The will is a hint, the beat the truth: a bridge that was only cut off from the broker
    for a moment counts as alive again from its next beat; a bridge never presumes itself gone,
    nor a member that joined after the will (its beat is later)."""
    one = owners.Membership(pg, "bridge-one", timeout_ms=60_000)
    two = owners.Membership(pg, "bridge-two", timeout_ms=60_000)
    one.beat()
    two.beat()
    assert one.beat() is True
    assert one.live == ["bridge-one", "bridge-two"]

    assert one.presume_gone("bridge-two") == [two.id]
    assert one.presume_gone("bridge-one") == []  # not ourselves
    assert one.beat() is True
    assert one.live == ["bridge-one"]
    with pg.session(readonly=True) as s:
        now = owners.db_now_ms(s)
        beat = s.get(BridgeMember, two.id)
        assert beat is not None
        assert not one.alive(two.id, beat.heartbeat_ms, now)

    time.sleep(0.01)
    two.beat()  # back (it had only lost the broker)
    assert one.beat() is True
    assert one.live == ["bridge-one", "bridge-two"]
    # A restarted bridge with the same client id is a new member: the old one is presumed
    # gone, the new one, which beats after the will, is not.
    three = owners.Membership(pg, "bridge-two", timeout_ms=60_000)
    assert set(one.presume_gone("bridge-two")) == {two.id}
    three.beat()
    assert one.beat() is False
    assert one.live == ["bridge-one", "bridge-two"]
