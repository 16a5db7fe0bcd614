"""The park the web benchmarks run against: a fresh database with one site, one collector,
meters with open accounts, an API token and office logins; ``gridvend cloud serve`` on it."""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from cloud.access import auth
from cloud.audit import Actor
from cloud.db import Database
from cloud.money import accounts
from cloud.park import inventory

SITE = "bench"


def seed(url: str, meters: int, cashiers: int, token: str) -> dict[str, str]:
    """Meters ``gw0-m000`` … with open accounts, an API cashier with ``token``, and
    ``cashiers`` office logins; returns the logins (username → password)."""
    db = Database(url)
    db.upgrade()
    actor = Actor("bench")
    logins = {f"cashier-{n:02d}": f"bench-cashier-{n:02d}" for n in range(cashiers)}
    with db.session() as s:
        inventory.upsert_site(s, SITE, "Bench park")
        inventory.upsert_place(s, SITE, "B1", "F1")
        inventory.upsert_gateway(s, "gw0", SITE, secrets.token_bytes(32).hex())
        for m in range(meters):
            inventory.upsert_unit(s, SITE, "B1", "F1", f"U{m:03d}")
            inventory.upsert_meter(
                s, f"gw0-m{m:03d}", "gw0", "bus1", str(m + 1), "acrel", unit_no=f"U{m:03d}"
            )
        auth.create_operator(s, "bench-api", "bench-password", "cashier", actor)
        auth.create_token(s, "bench-api", actor, token=token)
        for username, password in logins.items():
            auth.create_operator(s, username, password, "cashier", actor)
    with db.session() as s:
        for m in range(meters):
            accounts.open_account(s, {"name": f"Tenant {m}"}, [f"gw0-m{m:03d}"], actor)
    db.dispose()
    return logins


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


@contextlib.contextmanager
def serving(url: str) -> Iterator[int]:
    """``gridvend cloud serve`` on ``url`` (its default threads) on a free loopback port."""
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
