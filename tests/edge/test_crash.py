"""Crash safety: `gridvend edge run` is killed with SIGKILL at random moments, over and over, while
credits and readings flow. After every restart nothing is applied twice or lost, the ledger
identity holds, and sequence numbers (the envelope nonces) keep increasing."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from edge.sim import SimThread
from tests.edge.agentkit import (
    GATEWAY,
    RING,
    SITE,
    check_charge_continuity,
    check_exactly_once,
    check_identity,
    store_snapshot,
    wait,
    write_config,
)
from tests.edge.receiver import Receiver
from tests.support.services import Mosquitto

KILLS = 30  # `gridvend bench edge --soak N` kills it hundreds of times
PURCHASES = 30
AMOUNT = 1_000_000
METERS = ["b1-1", "b1-2", "b1-3", "b1-4"]


def _last_outbox_id(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0


def _drained(db: Path, rx: Receiver, last_id: list[int]) -> bool:
    """Nothing left to send and the receiver holds the outbox's last message (kept in
    ``last_id``)."""
    if store_snapshot(db)["backlog"] != 0:
        return False
    last = _last_outbox_id(db)
    with rx.lock:
        ids = [m["id"] for m in rx.messages if "id" in m and m["t"] != "cmd"]
    last_id[:] = [last]
    return bool(ids) and max(ids) == last


def start_agent(cfg: Path, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gridvend", "edge", "run", "--config", str(cfg)],
        stdout=log,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_kill_9_at_random_moments_applies_every_credit_once_and_keeps_nonces_fresh(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    rng = random.Random(4)
    db = tmp_path / "edge.sqlite"
    sent: dict[str, tuple[str, int]] = {}  # cmd id -> (meter, purchase no)
    reserved: list[int] = []
    with SimThread("acrel-ddsy1352", count=4, speed=10, control=None) as sim:

        def loads(bus: Any) -> None:
            for m in bus.meters.values():
                m.load_override_w = 2_000

        sim.call(loads)
        cfg = write_config(tmp_path, mosquitto.url, [("b1", sim.url, [1, 2, 3, 4])])
        log = (tmp_path / "agent.log").open("ab")
        with Receiver(mosquitto.port, SITE, GATEWAY, RING, resend_after_s=2.0) as rx:
            hellos_before = 0  # hellos heard before the running agent started
            proc = start_agent(cfg, log)
            try:
                opened = [rx.command(m, "open_account", {}) for m in METERS]
                wait(lambda: all(rx.final_result(c) for c in opened), 60, "accounts opened")

                def feed() -> None:  # credits keep coming while agents die and restart
                    for no in range(1, PURCHASES + 1):
                        for meter in METERS:
                            cid = rx.command(
                                meter, "credit", {"purchase_no": no, "amount_micro_yuan": AMOUNT}
                            )
                            sent[cid] = (meter, no)
                        time.sleep(0.5)

                feeder = threading.Thread(target=feed, daemon=True)
                feeder.start()
                for k in range(KILLS):
                    if k % 2 == 0:
                        # every other kill lands after the agent is up and talking (a loaded
                        # machine starts it slowly: random delays alone would kill most
                        # agents before they ever connect)
                        wait(
                            lambda n=hellos_before: len(rx.hello_seqs) > n,
                            60,
                            "the agent connected",
                        )
                        time.sleep(rng.uniform(0.0, 0.5))
                    else:
                        time.sleep(rng.uniform(0.05, 0.9))
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(timeout=30)
                    reserved.append(store_snapshot(db)["seq_reserved"])
                    hellos_before = len(rx.hello_seqs)
                    proc = start_agent(cfg, log)
                feeder.join(timeout=120)
                assert len(sent) == PURCHASES * len(METERS)
                # the last agent lives: it says hello (perhaps already, while the feeder ran:
                # count from before it started), and every credit gets its final answer
                wait(lambda: len(rx.hello_seqs) > hellos_before, 60, "the last agent connected")
                wait(lambda: all(rx.final_result(c) for c in sent), 120, "every credit answered")
                sim.call(lambda bus: bus.global_faults.update(dead=True))  # no more readings:
                # let the uplink drain to the last message: the dead bus still makes a few (each
                # meter's lost contact) after the backlog first reaches 0, so wait for the
                # receiver to hold the outbox's last id with nothing left to send
                drained_to: list[int] = []
                wait(lambda: _drained(db, rx, drained_to), 120, "uplink drained")
                with rx.lock:
                    msgs = list(rx.messages)
                    hellos = list(rx.hello_seqs)
                    results = {c: rx.final_result(c) for c in sent}
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=60) == 0
            finally:
                if proc.poll() is None:  # a failed check must not leave an agent behind
                    proc.kill()
                    proc.wait(timeout=30)
        log.close()

    snap = store_snapshot(db)
    for meter in METERS:
        state = snap["states"][meter]
        check_identity(state)
        assert snap["credits"][meter] == list(range(1, PURCHASES + 1)), "a credit lost or doubled"
        assert state["credits_micro_yuan"] == PURCHASES * AMOUNT
        assert snap["ledger"][meter]["credit"] == state["credits_micro_yuan"]
        assert state["last_purchase_no"] == PURCHASES
    for cid, (meter, no) in sent.items():
        result = results[cid]
        assert result is not None
        assert result["status"] == "applied", result
        assert (result["meter"], result["purchase_no"]) == (meter, no)
    # every message of every run reached the receiver exactly once, with continuous charges
    check_exactly_once(msgs)
    assert max(m["id"] for m in msgs if "id" in m and m["t"] != "cmd") == drained_to[0]
    check_charge_continuity(msgs)
    # nonces: never one number for two envelopes; each run starts above every earlier one
    assert rx.reused == []
    assert hellos == sorted(set(hellos))
    assert len(hellos) > KILLS // 2
    assert reserved == sorted(reserved)
    assert snap["seq_reserved"] > reserved[0]
