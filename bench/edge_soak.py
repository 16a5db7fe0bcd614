"""The long crash soak behind `gridvend bench edge --soak N`: ``gridvend edge run`` is killed
with SIGKILL at N random moments while credits and readings flow (the test suite does 50;
this runs as many as asked). Afterwards every credit must be applied exactly once, the ledger
identity hold, no uplink sequence number carry two different envelopes, and every queued
uplink message reach the receiver exactly once with continuous charges.

Prints ``soak_*`` lines; returns 0 only if every check holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from bench.edge import GATEWAY, KEY, RING, SITE, Receiver, _mosquitto, _wait
from edge.config import key_file_text
from edge.sim import SimProcess
from shared.codec import envelope, messages
from shared.codec.errors import EnvelopeError

AMOUNT = 1_000_000


class SoakReceiver(Receiver):
    """The bench receiver plus what the soak checks: ids, payload per sequence, results, and
    command resends until a final result (as the cloud does)."""

    def __init__(self, port: int) -> None:
        self.ids: list[int] = []
        self.payloads: dict[int, str] = {}
        self.reused: list[int] = []
        self.final: dict[str, dict[str, Any]] = {}
        self.reports: list[dict[str, Any]] = []
        self.pending: dict[str, tuple[dict[str, Any], float]] = {}
        self._stop = threading.Event()
        super().__init__(port)
        threading.Thread(target=self._resend, daemon=True).start()

    def command(self, cmd: dict[str, Any]) -> None:
        with self.lock:
            self.pending[cmd["id"]] = (cmd, time.monotonic())
        self.send([cmd])

    def _resend(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            with self.lock:
                due = [c for c, sent in self.pending.values() if now - sent > 2.0]
                for c in due:
                    self.pending[c["id"]] = (c, now)
            for c in due:
                self.send([c])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            opened = envelope.open_sealed(RING, msg.payload, envelope.UP, GATEWAY)
        except EnvelopeError:
            self.errors += 1
            return
        seq = opened.header.seq
        digest = hashlib.sha256(msg.payload).hexdigest()
        with self.lock:
            if self.payloads.setdefault(seq, digest) != digest:
                self.reused.append(seq)
            fresh = not self.window.seen_seq(seq)
            if fresh:
                try:
                    self.window.accept(seq)
                except EnvelopeError:
                    fresh = False
            if fresh:
                for m in opened.body["m"]:
                    if "id" in m:
                        self.ids.append(m["id"])
                    if m["t"] == "reading":
                        self.reports.append(m)
                    elif m["t"] == "result" and m["status"] != "held":
                        self.final[str(m["cmd"])] = m
                        self.pending.pop(m["cmd"], None)
        self.send([messages.ack([seq])])

    def close(self) -> None:
        self._stop.set()
        super().close()


def _config(folder: Path, port: int, sim_url: str, meters: int) -> Path:
    (folder / "gw.key").write_text(key_file_text({1: KEY}, 1))
    lines = [
        f'site = "{SITE}"', f'gateway = "{GATEWAY}"', 'timezone = "+08:00"', 'store = "edge.sqlite"',
        "[broker]", f'url = "mqtt://127.0.0.1:{port}"', "[keys]", 'file = "gw.key"',
        "[intervals]", "report_s = 1", "history_s = 60", "heartbeat_s = 1",
        "[sync]", "ack_timeout_s = 2", "backoff_min_s = 0.05", "backoff_max_s = 0.5",
        "[defaults]", 'tariff_id = "flat"', "rated_power_w = 10000000",
        "[tariffs]", "flat = [{version = 1, effective_from = 0, price_micro_yuan_per_kwh = 1000000}]",
        "[[buses]]", 'name = "b1"', f'url = "{sim_url}"', 'model = "acrel-ddsy1352"',
        "options = {sweep_interval_ms = 200, lost_after = 1000}",
    ]  # fmt: skip
    for a in range(1, meters + 1):
        lines += ["[[meters]]", f'id = "b1-{a}"', 'bus = "b1"', f"address = {a}"]
    path = folder / "edge.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def soak(kills: int, seed: int = 7, meters: int = 4) -> dict[str, Any]:
    """Run the soak; returns the figures and ``soak_ok``."""
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="gv-bench-soak-"))
    out: dict[str, Any] = {"soak_kills": kills}
    ids = [f"b1-{a}" for a in range(1, meters + 1)]
    sent: dict[str, tuple[str, int]] = {}
    with _mosquitto() as port:
        sim = SimProcess(["--model", "acrel-ddsy1352", "--count", str(meters), "--listen",
                          "tcp://127.0.0.1:0", "--speed", "10"]).start()  # fmt: skip
        rx = SoakReceiver(port)
        log = (folder / "agent.log").open("ab")
        cmd = [sys.executable, "-m", "gridvend", "edge", "run", "--config",
               str(_config(folder, port, sim.url, meters))]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc: subprocess.Popen[bytes] | None = None
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
            for m in ids:
                rx.command(messages.cmd(f"open-{m}", m, "open_account", {}))
            _wait(lambda: all(f"open-{m}" in rx.final for m in ids), 60, "accounts")
            stop = threading.Event()

            def feed() -> None:
                no = 0
                while not stop.is_set():
                    no += 1
                    for m in ids:
                        cid = f"c-{m}-{no}"
                        sent[cid] = (m, no)
                        rx.command(messages.cmd(cid, m, "credit",
                                                {"purchase_no": no, "amount_micro_yuan": AMOUNT}))  # fmt: skip
                    stop.wait(0.5)

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            for _ in range(kills):
                time.sleep(rng.uniform(0.05, 1.5))
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
            stop.set()
            feeder.join(10)
            _wait(lambda: all(c in rx.final for c in sent), 300, "every credit answered")
            with sim.control() as ctl:
                ctl.call("fault", dead=True)
            db = folder / "edge.sqlite"

            def drained() -> bool:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                try:
                    n = conn.execute("SELECT (SELECT COUNT(*) FROM outbox) + "
                                     "(SELECT COUNT(*) FROM inflight)").fetchone()[0]  # fmt: skip
                finally:
                    conn.close()
                return int(n) == 0

            _wait(drained, 300, "uplink drained")
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            conn = sqlite3.connect(db)
            states = {
                r[0]: json.loads(r[1]) for r in conn.execute("SELECT id, state_json FROM meters")
            }
            credits: dict[str, list[int]] = {}
            for meter, no in conn.execute(
                "SELECT meter, purchase_no FROM ledger WHERE kind = 'credit' ORDER BY id"
            ):
                credits.setdefault(meter, []).append(no)
            last_id = conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"
            ).fetchone()[0]
            conn.close()
        finally:
            if proc is not None and proc.poll() is None:  # never leave an agent behind
                proc.kill()
                proc.wait(30)
            rx.close()
            sim.close()
            log.close()
    per_meter = {m: max(no for mm, no in sent.values() if mm == m) for m in ids}
    checks = {
        "credits_once_in_order": all(
            credits.get(m) == list(range(1, per_meter[m] + 1)) for m in ids
        ),
        "results_applied": all(rx.final[c]["status"] == "applied" for c in sent),
        "ledger_identity": all(
            s["balance_micro_yuan"]
            == s["credits_micro_yuan"] - s["refunds_micro_yuan"] - s["charges_micro_yuan"]
            for s in states.values()
        ),
        "no_nonce_reuse": not rx.reused,
        "messages_exactly_once": sorted(rx.ids) == list(range(1, last_id + 1)),
    }
    charges: dict[str, int] = {}
    continuous = True
    for r in sorted(rx.reports, key=lambda r: r["id"]):
        before = charges.get(r["meter"], 0)
        continuous &= r["charges_micro_yuan"] == before + r["charge_micro_yuan"]
        charges[r["meter"]] = r["charges_micro_yuan"]
    checks["charges_continuous"] = continuous
    out["soak_credits"] = len(sent)
    out["soak_messages"] = last_id
    out.update({f"soak_{k}": int(v) for k, v in checks.items()})
    out["soak_ok"] = int(all(checks.values()))
    return out
