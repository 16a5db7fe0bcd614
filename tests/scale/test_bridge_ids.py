"""Two items of issue 9 the several-bridges work carries: a replayed uplink is logged once (not
silently re-acked, not once per further copy), and a bridge's MQTT client id is derived from its
host and installation, configurable, and never shared by two running bridges."""

from __future__ import annotations

import argparse
import logging
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.scale import seed
from bench.scale.vcollector import VirtualCollector
from cloud.bridge import cli
from cloud.bridge.link import Inbound
from cloud.bridge.owners import Membership, db_now_ms
from cloud.bridge.worker import Bridge, BridgeSettings
from cloud.db import Database
from cloud.models import BridgeMember
from tests.fakes import MemoryBroker


def _db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'cloud.db'}")
    db.upgrade()
    return db


def test_a_replayed_uplink_is_acked_again_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = _db(tmp_path)
    (c,) = seed.plan(1, 1, 2)
    seed.seed(db, [c])
    vc = VirtualCollector(c.site, c.gateway, bytes.fromhex(c.key_hex), c.meters)
    data = vc.report(1.0)
    assert data is not None
    broker = MemoryBroker()
    bridge = Bridge(db, BridgeSettings(publish_north=False), link=broker.bridge_link())
    bridge.link.start()
    item = Inbound(vc.topic_up, data, 0.0)
    with caplog.at_level(logging.INFO, logger="gridvend.bridge"):
        bridge.process([item])
        for _ in range(3):  # three more copies: acked each time, logged once
            bridge.process([item])
    replays = [r for r in caplog.records if "uplink_replayed" in r.getMessage()]
    assert len(replays) == 1
    assert bridge.stats.reacked == 3
    assert bridge.stats.applied == 1
    db.dispose()


def _args(**values: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([])
    for k, v in values.items():
        setattr(args, k, v)
    return args


def test_the_default_client_id_differs_between_installations_and_stays_across_restarts() -> None:
    one = cli.settings_from(_args(), "postgresql+psycopg://u:secret@db1/gridvend")
    again = cli.settings_from(_args(), "postgresql+psycopg://u:other-secret@db1/gridvend")
    other = cli.settings_from(_args(), "postgresql+psycopg://u:secret@db2/gridvend")
    assert one.client_id.startswith("gridvend-bridge-")
    assert one.client_id == again.client_id  # the password is not part of it
    assert one.client_id != other.client_id
    named = cli.settings_from(_args(client_id="bridge-2"), "sqlite:///x.db")
    assert named.client_id == "bridge-2"
    with pytest.raises(SystemExit, match="client-id"):
        cli.settings_from(_args(client_id="a/b#"), "sqlite:///x.db")


def test_a_broker_list_is_the_first_url_then_failover_in_order() -> None:
    s = cli.settings_from(_args(broker="mqtt://a:1883, mqtt://b:1884,mqtt://c:1885"), "sqlite://")
    assert s.broker.url == "mqtt://a:1883"
    assert s.failover_urls == ["mqtt://b:1884", "mqtt://c:1885"]


def test_a_second_bridge_with_a_live_bridges_client_id_is_named(tmp_path: Path) -> None:
    db = _db(tmp_path)
    first = Membership(db, "bridge-x", timeout_ms=60_000)
    first.beat()
    second = Membership(db, "bridge-x", timeout_ms=60_000)
    assert second.twin(0.1) == first.id
    other = Membership(db, f"bridge-{secrets.token_hex(2)}", timeout_ms=60_000)
    assert other.twin(0.1) is None
    db.dispose()


def test_a_crashed_bridge_on_this_host_is_not_waited_for(tmp_path: Path) -> None:
    """Restarted after a crash with the same client id, a bridge need not wait out its dead
    predecessor's heartbeat: that member's process is gone from this host."""
    db = _db(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    crashed = Membership(db, "bridge-y", timeout_ms=60_000)
    crashed.id = f"bridge-y@{crashed.host}/{gone.pid}-dead00"  # as that process named itself
    crashed.beat()
    restarted = Membership(db, "bridge-y", timeout_ms=60_000)
    started = time.monotonic()
    assert restarted.twin(30) is None
    assert time.monotonic() - started < 5  # not the 30 s wait, nor the 60 s timeout
    with db.session(readonly=True) as s:
        now = db_now_ms(s)
        beat = s.get(BridgeMember, crashed.id)
        assert beat is not None
        assert not restarted.alive(crashed.id, beat.heartbeat_ms, now)
    # A live one (this very process, under another member id) is still named.
    live = Membership(db, "bridge-z", timeout_ms=60_000)
    live.beat()
    assert Membership(db, "bridge-z", timeout_ms=60_000).twin(0.1) == live.id
    # And one on another host is never presumed dead from here.
    elsewhere = Membership(db, "bridge-w", timeout_ms=60_000)
    elsewhere.id = f"bridge-w@another-host/{gone.pid}-dead01"
    elsewhere.beat()
    assert Membership(db, "bridge-w", timeout_ms=60_000).twin(0.1) == elsewhere.id
    db.dispose()
