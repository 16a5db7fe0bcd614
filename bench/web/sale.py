"""`gridvend bench web sale`: a sale through the office's web form against the API's sale, in
the same run, on the same server and database.

``gridvend cloud serve`` (waitress, its default threads) on a fresh SQLite file with 2 meters
per cashier, each with an open account. Then, in turn:

- the anchor, ``api``: ``--cashiers`` concurrent keep-alive clients POSTing
  ``/api/v1/meters/{id}/sales`` with their Idempotency-Keys (as ``gridvend bench cloud``
  does), latency per request as the client sees it;
- ``web``: as many cashiers signed in to the office (their own session and CSRF token), each
  confirming sales on the sell form as the browser does: ``POST /office/sales/sell/{meter}``
  through htmx (a fresh form key per sale, as the form gives), answered with the receipt page
  itself (``HX-Push-Url`` puts its own URL in the address bar); latency from the POST to the
  receipt page's last byte. ``--no-htmx`` measures the plain form instead: POST → 303 → GET.

Rounds alternate (api, web, api, web) so a busy machine slows both alike; p99 over all rounds
of each. Target: ``web_sale_p99_ms <= 1.5 × api_sale_p99_ms``. Every web sale is checked in
the database afterwards: exactly one sale per form key, each with its receipt row.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import tempfile
import threading
import time
from typing import Any

from sqlalchemy import func, select

from bench.web.client import Office
from bench.web.server import seed, serving
from cloud.db import Database
from cloud.models import Receipt, Sale

TARGET_RATIO = 1.5
# What the confirm form sends (it posts through htmx, and is answered with the receipt page).
HTMX = {"HX-Request": "true", "HX-Current-URL": "/office/sales/sell"}


def _line(name: str, value: Any) -> None:
    print(f"{name}: {value}", flush=True)


def _percentile_ms(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def api_round(
    port: int, token: str, meters: int, clients: int, per_client: int, tag: str
) -> tuple[list[float], list[str]]:
    """``clients`` concurrent API clients, ``per_client`` sales each; latencies, failures."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        for i in range(per_client):
            meter = f"gw0-m{(n * 2 + i % 2) % meters:03d}"
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": f"{tag}-{n}-{i}",
            }
            body = json.dumps({"amount_micro_yuan": 1_000_000, "method": "cash"})
            t0 = time.perf_counter()
            conn.request("POST", f"/api/v1/meters/{meter}/sales", body, headers)
            resp = conn.getresponse()
            payload = resp.read()
            mine.append(time.perf_counter() - t0)
            if resp.status != 201:
                with lock:
                    failures.append(f"{resp.status} {payload[:160]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures


def web_round(
    port: int,
    logins: dict[str, str],
    meters: int,
    per_cashier: int,
    keys: list[str],
    htmx: bool = True,
) -> tuple[list[float], list[str]]:
    """Each cashier signs in, then confirms ``per_cashier`` sales; latencies, failures."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    offices: list[Office] = []
    for username, password in logins.items():
        office = Office(port)
        office.login(username, password)
        offices.append(office)

    def cashier(n: int, office: Office) -> None:
        mine: list[float] = []
        made: list[str] = []
        for i in range(per_cashier):
            meter = f"gw0-m{(n * 2 + i % 2) % meters:03d}"
            key = "web-" + secrets.token_urlsafe(18)
            t0 = time.perf_counter()
            page = office.post(
                f"/office/sales/sell/{meter}",
                {"key": key, "amount": "1.00", "method": "cash"},
                HTMX if htmx else None,
            )
            if page.status == 303:  # without htmx: the redirect to the receipt page
                page = office.get(page.header("Location") or "")
            mine.append(time.perf_counter() - t0)
            made.append(key)
            pushed = page.header("HX-Push-Url") or ""
            if (
                page.status != 200
                or "receipt-preview" not in page.text
                or (htmx and not pushed.startswith("/office/sales/documents/sale/"))
            ):
                with lock:
                    failures.append(f"{page.status} {page.body[:160]!r}")
        office.close()
        with lock:
            latencies.extend(mine)
            keys.extend(made)

    threads = [
        threading.Thread(target=cashier, args=(n, office)) for n, office in enumerate(offices)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures


def _check(url: str, keys: list[str]) -> str | None:
    """Exactly one sale per form key, each with its receipt."""
    db = Database(url)
    try:
        with db.session(readonly=True) as s:
            sold = s.scalar(
                select(func.count()).select_from(Sale).where(Sale.idempotency_key.like("web-%"))
            )
            issued = s.scalar(
                select(func.count())
                .select_from(Receipt)
                .join(Sale, (Receipt.kind == "sale") & (Receipt.record_id == Sale.id))
                .where(Sale.idempotency_key.like("web-%"))
            )
    finally:
        db.dispose()
    if sold != len(set(keys)) or issued != sold:
        return f"{len(set(keys))} web sales made, {sold} in the database, {issued} receipts"
    return None


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridvend bench web sale", description=__doc__)
    parser.add_argument("--cashiers", type=int, default=20)
    parser.add_argument("--sales", type=int, default=400, help="per side per round, in all")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-htmx", action="store_true", help="POST → 303 → GET instead")
    args, _other = parser.parse_known_args(argv)
    token = "bench-" + secrets.token_urlsafe(24)
    meters = args.cashiers * 2
    api_latencies: list[float] = []
    web_latencies: list[float] = []
    failures: list[str] = []
    keys: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{os.path.join(folder, 'web.db')}"
        logins = seed(url, meters, args.cashiers, token)
        per = max(1, args.sales // args.cashiers)
        with serving(url) as port:
            # Warm-up: first requests import templates, fill pools and caches.
            api_round(port, token, meters, args.cashiers, 1, "warm")
            web_round(port, logins, meters, 1, keys)
            for r in range(args.rounds):
                lat, failed = api_round(port, token, meters, args.cashiers, per, f"r{r}")
                api_latencies.extend(lat)
                failures.extend(failed)
                lat, failed = web_round(port, logins, meters, per, keys, not args.no_htmx)
                web_latencies.extend(lat)
                failures.extend(failed)
        problem = _check(url, keys)
    if problem:
        failures.append(problem)
    api_p99 = _percentile_ms(api_latencies, 0.99)
    web_p99 = _percentile_ms(web_latencies, 0.99)
    _line("web_sale_cashiers", args.cashiers)
    _line("web_sale_requests", len(web_latencies))
    _line("api_sale_p50_ms", f"{_percentile_ms(api_latencies, 0.5):.1f}")
    _line("api_sale_p99_ms", f"{api_p99:.1f}")
    _line("web_sale_p50_ms", f"{_percentile_ms(web_latencies, 0.5):.1f}")
    _line("web_sale_p99_ms", f"{web_p99:.1f}")
    ratio = web_p99 / api_p99 if api_p99 else float("inf")
    _line("web_over_api_sale_p99", f"{ratio:.2f} (target <= {TARGET_RATIO})")
    if failures:
        _line("web_sale_failures", f"{len(failures)} (first: {failures[0]})")
        return 1
    return 0 if ratio <= TARGET_RATIO else 1
