"""The vend round trip of the scale benchmark: a sale through the API (``gridvend cloud serve``),
carried by a bridge to a virtual collector as a ``credit`` command, applied there, its result
carried back and committed: POST sent → the sale's row says ``applied``."""

from __future__ import annotations

import http.client
import json
import secrets
import time

import psycopg

from cloud.access import auth
from cloud.audit import Actor
from cloud.db import Database
from cloud.money import accounts


def prepare(db: Database, meter: str) -> str:
    """An operator with a token and an open account on ``meter``; returns the token."""
    token = "bench-" + secrets.token_urlsafe(24)
    actor = Actor("bench")
    with db.session() as s:
        auth.create_operator(s, "bench", "bench-password", "cashier", actor)
        auth.create_token(s, "bench", actor, token=token)
    with db.session() as s:
        accounts.open_account(s, {"name": "Bench tenant"}, [meter], actor)
    return token


class Prober:
    """Sells 1 yuan at a time and waits for the sale to be applied."""

    def __init__(self, db_url: str, port: int, token: str, meter: str) -> None:
        self.port = port
        self.token = token
        self.meter = meter
        self.conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"))
        self.conn.autocommit = True
        self.n = 0
        self.failures: list[str] = []

    def once(self, timeout_s: float = 120.0) -> float | None:
        """Seconds from POST to ``applied`` committed; None (and a failure noted) otherwise."""
        self.n += 1
        http_conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        body = json.dumps({"amount_micro_yuan": 1_000_000, "method": "cash"})
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"vend-{secrets.token_hex(8)}",
        }
        start = time.perf_counter()
        try:
            http_conn.request("POST", f"/api/v1/meters/{self.meter}/sales", body, headers)
            resp = http_conn.getresponse()
            payload = resp.read()
        finally:
            http_conn.close()
        if resp.status != 201:
            self.failures.append(f"{resp.status} {payload[:200]!r}")
            return None
        sale_id = json.loads(payload)["id"]
        deadline = start + timeout_s
        while time.perf_counter() < deadline:
            row = self.conn.execute("SELECT status FROM sales WHERE id = %s", (sale_id,)).fetchone()
            if row is not None and row[0] != "pending":
                if row[0] != "applied":
                    self.failures.append(f"sale {sale_id} {row[0]}")
                    return None
                return time.perf_counter() - start
            time.sleep(0.003)
        self.failures.append(f"sale {sale_id} still pending after {timeout_s:.0f} s")
        return None

    def close(self) -> None:
        self.conn.close()
