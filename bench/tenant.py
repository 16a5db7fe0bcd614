"""`gridvend bench tenant`: a tenant's payment notification → the credit applied on a
(simulated) collector, against the cashier's sale round trip in the same run.

One cloud app (``create_app``, served by waitress on loopback, SQLite) with the sandbox
provider; one simulated collector that takes its commands the way the bridge hands them out
(``dispatch.next_to_send`` every 20 ms), applies credits in purchase order and answers with
``result`` messages through the real uplink (``ingest.apply_uplink``).

- ``tenant_notify_to_applied_p99_ms``: orders are made and paid at the sandbox bank first
  (signed notifications in hand); then the notifications are POSTed to
  ``/pay/notify/sandbox`` at ``--rate`` per second (open loop); latency = from the POST to the
  commit of the collector's ``applied`` result for that order's purchase number.
  Target: p99 <= 2000 ms at 10/s.
- ``cashier_sale_to_applied_p99_ms``: the same number of ``POST /api/v1/meters/{id}/sales``
  at the same rate, timed the same way (the anchor).
- ``tenant_vs_cashier_p99_ratio`` = tenant p99 / cashier p99 (printed, no target: the two share
  the collector and the sale path, so it shows what verification and the order add).
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from waitress.server import create_server

from cloud.access import auth
from cloud.audit import Actor
from cloud.control import dispatch
from cloud.db import Database
from cloud.models import Sale
from cloud.money import accounts
from cloud.park import inventory
from cloud.payments.orders import Payments
from cloud.payments.sandbox import SandboxProvider
from cloud.uplink import ingest
from cloud.web import create_app

SITE, GATEWAY = "bench", "gw0"


class Collector(threading.Thread):
    """The simulated collector: answers every command, credits in purchase order, and notes
    when each (meter, purchase number) was applied (after the result's commit)."""

    def __init__(self, db: Database) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.seq = 0
        self.balance: dict[str, int] = {}
        self.applied_at: dict[tuple[str, int], float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with self.db.session() as s:
                commands = dispatch.next_to_send(s, GATEWAY)
                dispatch.mark_sent(s, [c["id"] for c in commands])
            if not commands:
                time.sleep(0.02)
                continue
            results, credits = [], []
            for cmd in commands:
                meter, args = cmd["meter"], cmd["args"]
                if cmd["op"] == "credit":
                    self.balance[meter] = self.balance.get(meter, 0) + args["amount_micro_yuan"]
                    credits.append((meter, args["purchase_no"]))
                results.append(
                    {
                        "t": "result",
                        "cmd": cmd["id"],
                        "meter": meter,
                        "op": cmd["op"],
                        "status": "applied",
                        "reason": None,
                        "balance_micro_yuan": self.balance.get(meter, 0) if meter else None,
                        "purchase_no": args.get("purchase_no"),
                    }
                )
            self.seq += 1
            with self.db.session() as s:
                ingest.apply_uplink(s, GATEWAY, self.seq, results)
            now = time.perf_counter()
            for key in credits:
                self.applied_at[key] = now


def _seed(db: Database, meters: int, token: str) -> list[str]:
    actor = Actor("bench")
    ids = [f"{GATEWAY}-m{m:03d}" for m in range(meters)]
    with db.session() as s:
        inventory.upsert_site(s, SITE, "Bench park")
        inventory.upsert_gateway(s, GATEWAY, SITE, secrets.token_bytes(32).hex())
        for n, meter in enumerate(ids):
            inventory.upsert_meter(s, meter, GATEWAY, "bus1", str(n + 1), "acrel")
        auth.create_operator(s, "bench", "bench-password", "cashier", actor)
        auth.create_token(s, "bench", actor, token=token)
    with db.session() as s:
        for n, meter in enumerate(ids):
            accounts.open_account(s, {"name": f"Tenant {n}"}, [meter], actor)
    return ids


def _paced(count: int, rate: float, send: Any) -> None:
    """Open loop: request i starts at i / rate seconds, each in its own thread."""
    start = time.perf_counter()
    threads = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=send, args=(i,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(60)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def _wait_applied(collector: Collector, keys: list[tuple[str, int]], timeout_s: float = 30) -> None:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline and not all(k in collector.applied_at for k in keys):
        time.sleep(0.05)


def run(count: int, rate: float, meters: int) -> dict[str, float]:
    token = "bench-" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{Path(folder) / 'tenant.db'}")
        db.upgrade()
        ids = _seed(db, meters, token)
        app = create_app(
            {
                "DATABASE": db,
                "SECRET_KEY": secrets.token_hex(16),
                "PAYMENTS": {"sandbox": {"directory": str(Path(folder) / "sandbox")}},
            }
        )
        payments: Payments = app.extensions["gridvend.payments"]
        sandbox = payments.providers["sandbox"]
        assert isinstance(sandbox, SandboxProvider)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = create_server(app, host="127.0.0.1", port=port, threads=4)
        threading.Thread(target=server.run, daemon=True).start()
        collector = Collector(db)
        collector.start()
        try:
            notes = []
            for i in range(count):  # ordered and paid at the bank before the clock starts
                order, _ = payments.start(
                    "sandbox",
                    ids[i % meters],
                    1000,
                    notify_url=f"http://127.0.0.1:{port}/pay/notify/sandbox",
                )
                notes.append((order.out_trade_no, sandbox.bank.pay(order.out_trade_no)))
            sent: dict[str, float] = {}
            failures: list[str] = []

            def notify(i: int) -> None:
                no, note = notes[i]
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                sent[no] = time.perf_counter()
                conn.request("POST", "/pay/notify/sandbox", note.body, dict(note.headers))
                reply = conn.getresponse()
                if reply.read() != b"success":
                    failures.append(f"notify {no}: {reply.status}")
                conn.close()

            _paced(count, rate, notify)
            with db.session(readonly=True) as s:
                keys = {
                    no: (meter, purchase)
                    for no, meter, purchase in (
                        (k.split(":")[1], m, p)
                        for k, m, p in s.execute(
                            select(Sale.idempotency_key, Sale.meter_id, Sale.purchase_no).where(
                                Sale.idempotency_key.like("order:%")
                            )
                        )
                    )
                }
            _wait_applied(collector, list(keys.values()))
            tenant = [
                collector.applied_at[keys[no]] - t
                for no, t in sent.items()
                if no in keys and keys[no] in collector.applied_at
            ]
            cashier_sent: dict[tuple[str, int], float] = {}

            def sale(i: int) -> None:
                meter = ids[i % meters]
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                t0 = time.perf_counter()
                body = json.dumps({"amount_micro_yuan": 10_000_000, "method": "cash"})
                headers = {
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"bench-{i}",
                }
                conn.request("POST", f"/api/v1/meters/{meter}/sales", body, headers)
                reply = conn.getresponse()
                payload = json.loads(reply.read() or b"{}")
                if reply.status != 201:
                    failures.append(f"sale {i}: {reply.status} {payload}")
                else:
                    cashier_sent[(meter, payload["purchase_no"])] = t0
                conn.close()

            _paced(count, rate, sale)
            _wait_applied(collector, list(cashier_sent))
            cashier = [
                collector.applied_at[k] - t
                for k, t in cashier_sent.items()
                if k in collector.applied_at
            ]
        finally:
            collector.stop.set()
            collector.join(5)
            server.close()
            db.dispose()
    if failures or len(tenant) < count or len(cashier) < count:
        raise RuntimeError(
            f"{len(failures)} failures (first: {failures[:1]}); applied {len(tenant)}/{count} payments, {len(cashier)}/{count} sales"
        )
    return {
        "tenant_p50": _p(tenant, 0.5),
        "tenant_p99": _p(tenant, 0.99),
        "cashier_p50": _p(cashier, 0.5),
        "cashier_p99": _p(cashier, 0.99),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridvend bench tenant", description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="notifications (and cashier sales)")
    parser.add_argument("--rate", type=float, default=10.0, help="per second, open loop")
    parser.add_argument("--meters", type=int, default=20)
    args = parser.parse_args(argv)
    try:
        got = run(args.count, args.rate, args.meters)
    except RuntimeError as exc:
        print(f"tenant_bench_failed: {exc}", flush=True)
        return 1
    ratio = got["tenant_p99"] / got["cashier_p99"] if got["cashier_p99"] else float("inf")
    print(f"tenant_notifications: {args.count} at {args.rate:g}/s", flush=True)
    print(f"tenant_notify_to_applied_p50_ms: {got['tenant_p50']:.1f}", flush=True)
    print(f"tenant_notify_to_applied_p99_ms: {got['tenant_p99']:.1f} (target <= 2000)", flush=True)
    print(f"cashier_sale_to_applied_p50_ms: {got['cashier_p50']:.1f}", flush=True)
    print(f"cashier_sale_to_applied_p99_ms: {got['cashier_p99']:.1f} (anchor)", flush=True)
    print(f"tenant_vs_cashier_p99_ratio: {ratio:.2f}", flush=True)
    return 0 if got["tenant_p99"] <= 2000 else 1
