"""Helpers for the agent tests: an edge.toml over simulators and a private broker, and the
checks every scenario ends with (exactly-once ids, charge continuity, the ledger identity)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.cache.store import open_readonly
from edge.config import key_file_text
from shared.codec import envelope

SITE, GATEWAY = "test-site", "gw-test"
KEY = bytes(range(100, 132))
RING = envelope.Keyring({1: KEY}, current=1)
PRICE = 1_000_000  # micro-yuan per kWh: 1,000 micro-yuan per Wh


def write_config(
    tmp: Path,
    broker_url: str,
    buses: list[tuple[str, str, list[int]]],
    *,
    report_s: int = 1,
    sweep_interval_ms: int = 200,
    defaults: str = "",
) -> Path:
    """edge.toml for ``buses`` = [(name, sim url, addresses)]; meter ids are ``{bus}-{addr}``."""
    (tmp / "gw.key").write_text(key_file_text({1: KEY}, 1))
    lines = [
        f'site = "{SITE}"',
        f'gateway = "{GATEWAY}"',
        'timezone = "+08:00"',
        'store = "edge.sqlite"',
        "[broker]",
        f'url = "{broker_url}"',
        "keepalive_s = 5",
        "[keys]",
        'file = "gw.key"',
        "[intervals]",
        f"report_s = {report_s}",
        "history_s = 60",
        "heartbeat_s = 1",
        "tick_s = 1",
        "[sync]",
        "ack_timeout_s = 2",
        "backoff_min_s = 0.05",
        "backoff_max_s = 0.5",
        "window = 8",
        "batch_msgs = 100",
        "[defaults]",
        'tariff_id = "flat"',
        "alarm1_micro_yuan = 60000",
        "alarm2_micro_yuan = 30000",
        "arrears_micro_yuan = 0",
        "hysteresis_micro_yuan = 1000",
        "rated_power_w = 10000000",
        defaults,
        "[tariffs]",
        f"flat = [{{version = 1, effective_from = 0, price_micro_yuan_per_kwh = {PRICE}}}]",
    ]
    for name, url, _addresses in buses:
        lines += [
            "[[buses]]",
            f'name = "{name}"',
            f'url = "{url}"',
            'model = "acrel-ddsy1352"',
            f"options = {{sweep_interval_ms = {sweep_interval_ms}, lost_after = 50}}",
        ]
    for name, _url, addresses in buses:
        for a in addresses:
            lines += ["[[meters]]", f'id = "{name}-{a}"', f'bus = "{name}"', f"address = {a}"]
    path = tmp / "edge.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def until(pred: Callable[[], bool], timeout_s: float = 60.0, what: str = "") -> None:
    """Poll ``pred`` until true (generous ceilings: the machine is shared)."""
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s: {what}")
        await asyncio.sleep(0.05)


def wait(pred: Callable[[], bool], timeout_s: float = 60.0, what: str = "") -> None:
    """Blocking twin of :func:`until`."""
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s: {what}")
        time.sleep(0.05)


def store_snapshot(path: Path) -> dict[str, Any]:
    """States, credit ledger rows and uplink backlog, read as ``gridvend edge status`` does."""

    conn = open_readonly(path)
    try:
        states = {r[0]: json.loads(r[1]) for r in conn.execute("SELECT id, state_json FROM meters")}
        ledger: dict[str, dict[str, int]] = {}
        credits: dict[str, list[int]] = {}
        for meter, kind, amount, no in conn.execute(
            "SELECT meter, kind, amount_micro_yuan, purchase_no FROM ledger ORDER BY id"
        ):
            tot = ledger.setdefault(meter, {"credit": 0, "refund": 0, "charge": 0})
            if kind in ("credit", "transfer_in", "settlement_credit"):
                tot["credit"] += amount
            elif kind == "charge":
                tot["charge"] += amount
            else:
                tot["refund"] += amount
            if kind == "credit":
                credits.setdefault(meter, []).append(no)
        queued = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        inflight = conn.execute("SELECT COUNT(*) FROM inflight").fetchone()[0]
        reserved = conn.execute("SELECT value FROM kv WHERE key = 'seq_reserved'").fetchone()
    finally:
        conn.close()
    return {
        "states": states,
        "ledger": ledger,
        "credits": credits,
        "backlog": queued + inflight,
        "seq_reserved": int(reserved[0]) if reserved else 0,
    }


def check_identity(state: dict[str, Any]) -> None:
    assert state["balance_micro_yuan"] == (
        state["credits_micro_yuan"] - state["refunds_micro_yuan"] - state["charges_micro_yuan"]
    ), state["meter"]


def check_exactly_once(msgs: list[dict[str, Any]]) -> None:
    """Every queued message reached the receiver once: ids unique and without a gap."""
    ids = [m["id"] for m in msgs if "id" in m and m["t"] != "cmd"]
    assert len(ids) == len(set(ids)), "a message arrived twice (re-sealed?)"
    assert sorted(ids) == list(range(1, len(ids) + 1)), "a message is missing"


def check_charge_continuity(msgs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per meter, each report's charges = the previous report's + its charge. Returns the last
    report of each meter."""
    last: dict[str, dict[str, Any]] = {}
    for m in sorted((m for m in msgs if m["t"] == "reading"), key=lambda m: m["id"]):
        prev = last.get(m["meter"])
        before = prev["charges_micro_yuan"] if prev else 0
        assert m["charges_micro_yuan"] == before + m["charge_micro_yuan"], (m, prev)
        assert m["balance_micro_yuan"] == (
            m["credits_micro_yuan"] - m["refunds_micro_yuan"] - m["charges_micro_yuan"]
        )
        last[m["meter"]] = m
    return last
