"""A bridge killed between applying a batch and acking it loses nothing and applies nothing
twice: its transaction committed, no ack left; those envelopes come again (from the broker's
session of the bridge, or resent by the collectors after their ack timeout); the bridge that
takes over (here the same client id, restarted) finds them seen, acks them again and applies
them never. Real parts: Mosquitto, PostgreSQL, the bridge as
a child process killed with SIGKILL at that very moment (tests/scale/crashing_bridge.py), and
virtual collectors with the real envelope and sync-protocol code (bench/scale/)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench.scale import check, procs
from cloud.db import Database
from cloud.models import InboxEntry
from tests.scale.conftest import load_worker, seeded
from tests.support.services import Mosquitto

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]


def test_a_bridge_killed_between_applying_and_acking_loses_nothing(
    pg: Database, mosquitto: Mosquitto
) -> None:
    park = seeded(pg, 12)
    url = str(pg.engine.url.render_as_string(hide_password=False))
    worker = load_worker("crash-load", park, mosquitto.url, ack_timeout_s=3.0)
    bridge: procs.BridgeProcess | None = None
    try:
        worker.call("load", on=True)
        crashing = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.scale.crashing_bridge",
                "--database",
                url,
                "--broker",
                mosquitto.url,
                "--client-id",
                "crash-bridge",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert crashing.returncode == -9, crashing.stderr[-2000:]
        assert "applied" in crashing.stdout
        with pg.session(readonly=True) as s:
            applied = s.scalar(select(func.count()).select_from(InboxEntry))
        assert applied > 0
        stats = worker.call("stats")
        assert stats["inflight"] > 0  # committed, never acked
        # The same bridge back (a new member; the dead one's process is gone from this host,
        # so it does not wait out its heartbeat).
        bridge = procs.BridgeProcess("crash-bridge", url, [mosquitto.url], [])
        bridge.start()
        bridge.wait_connected(60)
        time.sleep(6)  # more readings; what was committed unacked comes again
        worker.call("load", on=False)
        procs.wait_until(lambda: worker.call("stats")["inflight"] == 0, 90, "acks for everything")
        # It came again (the broker redelivers its session's unacknowledged messages; the
        # collectors resend after their 3 s ack timeout) and was acked as seen, not applied.
        assert bridge.events.get("uplink_replayed", 0) > 0
        report = check.verify(pg, worker.call("totals")["totals"])
        assert report["counts"] == dict.fromkeys(report["counts"], 0), report["examples"]
        assert report["readings_in_database"] == report["readings_generated"] > 0
    finally:
        if bridge is not None:
            bridge.stop()
        worker.stop()
