"""`gridvend bench notify`: 10,000 queued texts drained by the notifier (the real service: the
outbox on SQLite, its database thread, group commits, delivery reports).

* Through the GSM modem: the simulated modem of the tests (``tests/notify/modem_sim.py``) on a
  real pty, keeping its line's pace (``--baud``, 10 bits a byte both ways) plus ``--send-ms`` of
  network time per segment. Anchor: the modem's own time for the run (its wire time and network
  time, summed by the simulator). ``modem_drain_over_own_time``: the drain time over it; target
  <= 1.25 (the notifier keeps the modem busy; what is left is the time between one ``OK`` and the
  next ``AT+CMGS``).
* Through an HTTP channel: Aliyun SendSms, each request signed (ACS3-HMAC-SHA256) and verified by
  the fake provider (``tests/notify/fake_cloud.py``) in its own process. ``http_per_s``; target
  >= 200.

Every text is checked to have arrived once: the modem's log of decoded PDUs and the provider's
count of verified requests must match the outbox, with no duplicate.

It needs the repository checkout (the simulators live in ``tests/``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from cloud.db import Database
from cloud.models import OutboxMessage
from cloud.notify import config, outbox
from cloud.notify.service import Notifier

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"sign": "园区电费", "unit": "A-101", "balance": "12.34"}
DONE = ("sent", "delivered")


def _simulators() -> None:
    if not (ROOT / "tests" / "notify" / "modem_sim.py").is_file():
        raise SystemExit("bench notify needs the repository checkout (tests/notify/modem_sim.py)")


def _fill(db: Database, count: int) -> None:
    with db.session() as s:
        for i in range(count):
            outbox.enqueue(
                s, key=f"bench:{i}", kind="alarm1", recipient=f"+8613{i:09d}", params=PARAMS
            )


def _done(db: Database) -> int:
    with db.session(readonly=True) as s:
        return int(
            s.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state.in_(DONE))
            )
            or 0
        )


async def _drain(db: Database, settings: config.Settings, count: int, timeout_s: float) -> float:
    notifier = Notifier(db, settings)
    t0 = time.monotonic()
    await notifier.start()
    try:
        deadline = t0 + timeout_s
        while _done(db) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {_done(db)} of {count} sent after {timeout_s} s")
            await asyncio.sleep(0.2)
        return time.monotonic() - t0
    finally:
        await notifier.stop()


def _settings(channels: dict[str, Any]) -> config.Settings:
    return config.from_dict({
        "poll_s": 0.2, "scan_s": 3600, "health_s": 5, "runway_check_s": 86400,
        "quiet_hours": {"start": "00:00", "end": "00:00"},
        "limits": {"per_number_per_hour": 1000, "per_number_per_day": 1000},
        "channels": channels,
    })  # fmt: skip


def _child(*args: str) -> subprocess.Popen[bytes]:
    _simulators()
    return subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )


def _line(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().decode().strip()


def modem_run(args: argparse.Namespace, folder: Path) -> dict[str, float]:
    # The modem in its own process, as a real one is its own hardware: its pace is its own.
    sim = _child("tests.notify.modem_sim", "--baud", str(args.baud), "--send-ms", str(args.send_ms))
    try:
        path = json.loads(_line(sim))["path"]
        db = Database(f"sqlite:///{folder / 'modem.db'}")
        db.upgrade()
        _fill(db, args.count)
        settings = _settings({"modem": {"kind": "modem", "port": path, "baud": args.baud}})
        elapsed = asyncio.run(_drain(db, settings, args.count, args.timeout))
        db.dispose()
        assert sim.stdin is not None
        sim.stdin.write(b"stats\n")
        sim.stdin.flush()
        stats = json.loads(_line(sim))
    finally:
        if sim.stdin is not None:
            sim.stdin.close()
        sim.wait(10)
    if stats["messages"] != args.count or stats["duplicates"]:
        raise RuntimeError(
            f"the modem got {stats['messages']} texts of {args.count}, "
            f"{stats['duplicates']} duplicates"
        )
    return {"drain_s": elapsed, "own_s": float(stats["busy_s"])}


def http_run(args: argparse.Namespace, folder: Path) -> dict[str, float]:
    server = _child("tests.notify.fake_cloud", "aliyun", "AK", "secret", "SMS_1", "unit", "balance")
    try:
        url = _line(server)
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError("the fake Aliyun did not start")
        db = Database(f"sqlite:///{folder / 'http.db'}")
        db.upgrade()
        _fill(db, args.count)
        settings = _settings({"aliyun": {
            "kind": "aliyun", "access_key_id": "AK", "access_key_secret": "secret",
            "sign_name": "园区电费", "endpoint": url, "concurrency": args.http_concurrency,
            "templates": {"alarm1": {"code": "SMS_1", "params": ["unit", "balance"]}},
        }})  # fmt: skip
        elapsed = asyncio.run(_drain(db, settings, args.count, args.timeout))
        with db.session(readonly=True) as s:
            ids = s.scalar(select(func.count(func.distinct(OutboxMessage.provider_id))))
        db.dispose()
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(10)
    if ids != args.count:
        raise RuntimeError(f"{ids} distinct provider ids for {args.count} texts")
    return {"drain_s": elapsed, "per_s": args.count / elapsed}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridvend bench notify", description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--baud", type=int, default=115_200, help="the modem's line")
    parser.add_argument("--send-ms", type=float, default=5.0, help="network time per segment")
    parser.add_argument("--http-concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=900.0, help="per drain, seconds")
    parser.add_argument("--only", choices=["modem", "http"], default=None)
    args = parser.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory(prefix="gridvend-bench-notify-") as tmp:
        folder = Path(tmp)
        if args.only in (None, "modem"):
            try:
                m = modem_run(args, folder)
            except RuntimeError as exc:
                print(f"notify_modem_failed: {exc}", flush=True)
                return 1
            ratio = m["drain_s"] / m["own_s"]
            print(f"modem_texts: {args.count} at {args.baud} baud, {args.send_ms:g} ms a send")
            print(f"modem_own_time_s: {m['own_s']:.1f} (anchor)")
            print(f"modem_drain_s: {m['drain_s']:.1f}")
            print(f"modem_drain_over_own_time: {ratio:.2f} (target <= 1.25)", flush=True)
            ok = ok and ratio <= 1.25
        if args.only in (None, "http"):
            try:
                h = http_run(args, folder)
            except RuntimeError as exc:
                print(f"notify_http_failed: {exc}", flush=True)
                return 1
            print(f"http_texts: {args.count} (Aliyun SendSms, signed and verified)")
            print(f"http_drain_s: {h['drain_s']:.1f}")
            print(f"http_per_s: {h['per_s']:.0f} (target >= 200)", flush=True)
            ok = ok and h["per_s"] >= 200
    return 0 if ok else 1
