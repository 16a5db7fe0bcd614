"""The API's sale path under load, for ``gridvend bench cloud``: latency through HTTP, the same
sales in-process, and on PostgreSQL the pending-credit index's effect.

- ``api``: ``gridvend cloud serve`` (waitress, its default threads for the database), ``clients``
  concurrent keep-alive clients POSTing sales with their own Idempotency-Keys; latency per
  request as a client sees it, and sales per second.
- ``in-process``: the same POSTs, one at a time, through Flask's test client on the same kind of
  database: the rate the application itself allows, with no HTTP server, sockets or WSGI
  threads. ``api_over_in_process`` (API sales/s ÷ in-process sales/s, measured in the same run)
  is the share the serving layer and the concurrency leave; unlike milliseconds it does not move
  3× between a quiet and a loaded machine.
- ``index effect`` (PostgreSQL): every meter has ``history`` applied sales, as a meter does after
  years of top-ups, the park has ``pending_elsewhere`` credits pending on other meters (their
  collectors unreachable, or the bridge down), and a site default hoarding cap (every site has
  one since 0004), so a sale sums the meter's pending credits. Measured with the partial indexes
  of 0005 dropped (the sum then goes through the status index: every pending credit of the
  park), then with them, on the same database in the same run.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text, update

from cloud.access import auth
from cloud.audit import Actor
from cloud.db import Database
from cloud.models import PurchaseSequence, Sale
from cloud.money import accounts
from cloud.park import inventory
from cloud.web import create_app

SITE = "bench"
PENDING_INDEXES = {
    "ix_sales_pending_meter": "sales",
    "ix_transfers_in_pending_meter": "transfers_in",
}


@dataclass
class SaleRun:
    """What one round of sales measured."""

    sales: int
    sales_per_s: float
    p50_ms: float
    p99_ms: float
    failures: list[str]


def seed(url: str, meters: int, token: str, history: int = 0, pending_elsewhere: int = 0) -> None:
    """A site, a collector, ``meters`` meters with open accounts, an operator with ``token``;
    ``history`` applied sales per meter already on file; ``pending_elsewhere`` pending sales on
    other meters (20 each, on a second collector)."""

    db = Database(url)
    db.upgrade()
    actor = Actor("bench")
    with db.session() as s:
        inventory.upsert_site(s, SITE, "Bench park")
        inventory.upsert_gateway(s, "gw0", SITE, secrets.token_bytes(32).hex())
        for m in range(meters):
            inventory.upsert_meter(s, f"gw0-m{m:03d}", "gw0", "bus1", str(m + 1), "acrel")
        auth.create_operator(s, "bench", "bench-password", "cashier", actor)
        auth.create_token(s, "bench", actor, token=token)
    with db.session() as s:
        for m in range(meters):
            accounts.open_account(s, {"name": f"Tenant {m}"}, [f"gw0-m{m:03d}"], actor)
    if history:
        now = int(time.time()) - 86_400
        with db.session() as s:
            for m in range(meters):
                meter = f"gw0-m{m:03d}"
                rows = [
                    {
                        "meter_id": meter,
                        "account_id": None,
                        "amount_micro_yuan": 1_000_000,
                        "method": "cash",
                        "purchase_no": n,
                        "status": "applied",
                        "created_ts": now,
                        "resolved_ts": now,
                    }
                    for n in range(1, history + 1)
                ]
                s.execute(insert(Sale), rows)
                s.execute(
                    update(PurchaseSequence)
                    .where(PurchaseSequence.meter_id == meter)
                    .values(last_no=history)
                )
    if pending_elsewhere:
        others = max(1, pending_elsewhere // 20)
        now = int(time.time())
        with db.session() as s:
            inventory.upsert_gateway(s, "gw1", SITE, secrets.token_bytes(32).hex())
            for m in range(others):
                inventory.upsert_meter(s, f"gw1-m{m:04d}", "gw1", "bus1", str(m + 1), "acrel")
        with db.session() as s:
            rows = [
                {
                    "meter_id": f"gw1-m{n % others:04d}",
                    "account_id": None,
                    "amount_micro_yuan": 1_000_000,
                    "method": "cash",
                    "purchase_no": n // others + 1,
                    "status": "pending",
                    "created_ts": now,
                }
                for n in range(pending_elsewhere)
            ]
            s.execute(insert(Sale), rows)
    if not db.is_sqlite:
        with db.session() as s:
            s.execute(text("ANALYZE sales"))
    db.dispose()


def _percentile_ms(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def _body() -> str:
    return json.dumps({"amount_micro_yuan": 1_000_000, "method": "cash"})


def _headers(token: str, key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Idempotency-Key": key,
    }


def _wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(url: str) -> Iterator[int]:
    """``gridvend cloud serve`` on ``url`` (its default threads), on a free port."""
    port = _free_port()
    script = Path(sys.executable).with_name("gridvend")
    proc = subprocess.Popen(
        [str(script), "cloud", "serve", "--port", str(port), "--database", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, 30)
        yield port
    finally:
        proc.terminate()
        proc.wait(15)


def api(port: int, token: str, meters: int, clients: int, sales: int, tag: str) -> SaleRun:
    """``clients`` concurrent clients POSTing ``sales`` sales in all (2 meters per client)."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    per_client = max(1, sales // clients)

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        for i in range(per_client):
            meter = f"gw0-m{(n * 2 + i % 2) % meters:03d}"
            t0 = time.perf_counter()
            conn.request(
                "POST",
                f"/api/v1/meters/{meter}/sales",
                _body(),
                _headers(token, f"{tag}-{n}-{i}"),
            )
            resp = conn.getresponse()
            payload = resp.read()
            mine.append(time.perf_counter() - t0)
            if resp.status != 201:
                with lock:
                    failures.append(f"{resp.status} {payload[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return SaleRun(
        len(latencies),
        len(latencies) / elapsed,
        _percentile_ms(latencies, 0.5),
        _percentile_ms(latencies, 0.99),
        failures,
    )


def in_process(url: str, token: str, meters: int, sales: int, tag: str) -> SaleRun:
    """The same sales one at a time through Flask's test client (no server, no sockets)."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"gv-bench-instance-{secrets.token_hex(4)}"
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": secrets.token_hex(16)})
    app.instance_path = str(folder)
    client = app.test_client()
    latencies: list[float] = []
    failures: list[str] = []
    # Warm up (first-request imports, connection pool, token cache) outside the timing.
    for i in range(5):
        client.post(
            f"/api/v1/meters/gw0-m{i % meters:03d}/sales",
            data=_body(),
            headers=_headers(token, f"{tag}-warm-{i}"),
        )
    start = time.perf_counter()
    for i in range(sales):
        t0 = time.perf_counter()
        resp = client.post(
            f"/api/v1/meters/gw0-m{i % meters:03d}/sales",
            data=_body(),
            headers=_headers(token, f"{tag}-{i}"),
        )
        latencies.append(time.perf_counter() - t0)
        if resp.status_code != 201:
            failures.append(f"{resp.status_code} {resp.data[:200]!r}")
    elapsed = time.perf_counter() - start
    app.extensions["gridvend.db"].dispose()
    return SaleRun(
        sales,
        sales / elapsed,
        _percentile_ms(latencies, 0.5),
        _percentile_ms(latencies, 0.99),
        failures,
    )


def set_pending_indexes(url: str, present: bool) -> None:
    """Drop or create the partial indexes of migration 0005 (PostgreSQL), then ANALYZE."""

    db = Database(url)
    with db.engine.begin() as conn:
        for name, table in PENDING_INDEXES.items():
            if present:
                conn.execute(
                    text(
                        f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
                        "(meter_id, amount_micro_yuan) WHERE status = 'pending'"
                    )
                )
            else:
                conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        conn.execute(text("ANALYZE sales"))
        conn.execute(text("ANALYZE transfers_in"))
    db.dispose()


def token() -> str:
    return "bench-" + secrets.token_urlsafe(24)


def report(line: Any, prefix: str, run: SaleRun) -> None:
    """Print one round's figures as ``name: value`` lines through ``line``."""
    line(f"{prefix}_sales_per_s", round(run.sales_per_s))
    line(f"{prefix}_p50_ms", f"{run.p50_ms:.1f}")
    line(f"{prefix}_p99_ms", f"{run.p99_ms:.1f}")
    if run.failures:
        line(f"{prefix}_failures", f"{len(run.failures)} (first: {run.failures[0]})")
