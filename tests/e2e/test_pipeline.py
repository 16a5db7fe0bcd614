"""The whole system end to end, each part run as the user runs it: ``gridvend sim`` → ``gridvend
edge run`` → Mosquitto → ``gridvend cloud bridge`` → database → ``gridvend cloud serve``, on
SQLite and on PostgreSQL. The simulator's control channel tells the meters' true relay state."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.park import Park
from provisioning.broker import BrokerDir
from tests.e2e import asyncapi
from tests.e2e.collector import NorthListener
from tests.e2e.dbs import database_url
from tests.e2e.park import A, Api, ApiError, B, C, D, start_park, wait_for
from tests.support.services import Mosquitto, free_port

# PostgreSQL is a required service (127.0.0.1:5432): without it the postgres half errors, as
# in tests/cloud; it is never skipped, so a missing server cannot pass for a green run.
DB_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DB_KINDS)
def park(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Park, Api, Mosquitto, NorthListener]]:
    # The broker as a site runs it: the generated password file and ACL, anonymous refused,
    # the collectors, the bridge and the north listener (an integrator) each with their own user.
    bd = BrokerDir.create(tmp_path / "broker", port=free_port())
    viewer = bd.add_integrator("park", "e2e-viewer")
    bd.save()
    with Mosquitto(port=bd.port, config_file=bd.conf_file) as mosquitto:
        north = NorthListener(mosquitto.port, username="e2e-viewer", password=viewer).start()
        with database_url(request.param, tmp_path) as url:
            running, api = start_park(tmp_path, url, mosquitto.url, bd)
            try:
                yield running, api, mosquitto, north
            finally:
                running.stop()
                north.stop()


def relay(park: Park, meter: str) -> str:
    return str(park.sim_state(meter)["relay"])


def open_account(api: Api, name: str, meter: str, transfer_in: int = 0) -> dict[str, Any]:
    spec = {"meter": meter, "transfer_in_micro_yuan": transfer_in}
    return api.post("/accounts", {"customer": {"name": name}, "meters": [spec]})  # type: ignore[no-any-return]


def sale(api: Api, meter: str, amount: int, key: str) -> dict[str, Any]:
    return api.post(f"/meters/{meter}/sales", {"amount_micro_yuan": amount}, key=key)  # type: ignore[no-any-return]


def _find(api: Api, path: str) -> dict[str, Any]:
    """``/sales/ID`` directly; ``/refunds/ID`` from the refund query; ``/commands/ID``."""
    if path.startswith("/refunds/"):
        wanted = int(path.rsplit("/", 1)[1])
        rows = api.get("/refunds?limit=5000")["refunds"]
        return next(r for r in rows if r["id"] == wanted)
    return api.get(path)  # type: ignore[no-any-return]


def decided(api: Api, path: str, park: Park, timeout_s: float = 60.0) -> dict[str, Any]:
    """Wait until the money record (or command) at ``path`` is decided by the collector."""
    return wait_for(  # type: ignore[no-any-return]
        f"{path} to be decided",
        lambda: (lambda r: r if r["status"] not in ("pending", "sent") else None)(_find(api, path)),
        timeout_s,
        park,
    )


def reading_charges(api: Api, meter: str) -> int:
    total, after = 0, 0
    while True:
        page = api.get(f"/readings?meter={meter}&limit=10000&after={after}")
        total += sum(r["charge_micro_yuan"] for r in page["readings"])
        if page["next_after"] is None:
            return total
        after = page["next_after"]


def identity(api: Api, meter: str) -> dict[str, Any]:
    m = api.get(f"/meters/{meter}")
    assert m["balance_micro_yuan"] == (
        m["credits_micro_yuan"] - m["refunds_micro_yuan"] - m["charges_micro_yuan"]
    ), m
    return m  # type: ignore[no-any-return]


def converged(api: Api, meters: tuple[str, ...] = (A, B, C), since_ts: int = 0) -> bool:
    """Every meter has a reading taken after ``since_ts`` and its mirror balance equals the
    balance its collector reported last."""
    for meter in meters:
        m = api.get(f"/meters/{meter}")
        if (m["last_reading_ts"] or 0) < since_ts:
            return False
        if m["edge_balance_micro_yuan"] != m["balance_micro_yuan"]:
            return False
    return True


def close_and_settle(api: Api, park: Park, account_id: int) -> dict[str, Any]:
    """Close an account and wait for its (single) settlement."""
    api.post(f"/accounts/{account_id}/close", ok=202)
    closed = wait_for(
        "the account to close",
        lambda: (lambda a: a if a["status"] == "closed" else None)(
            api.get(f"/accounts/{account_id}")
        ),
        60,
        park,
    )
    (settlement,) = closed["settlements"]
    assert settlement["status"] == "applied"
    return settlement  # type: ignore[no-any-return]


def test_a_sale_through_the_whole_pipeline_closes_the_simulated_relay(
    park: tuple[Park, Api, Mosquitto, NorthListener],
) -> None:
    p, api, _, _ = park
    open_account(api, "Studio One", A)
    # No credit: the collector trips the meter by itself.
    wait_for("meter A's relay to open at zero credit", lambda: relay(p, A) == "open", 60, p)
    first = sale(api, A, 20_000_000, "sale-a-1")
    assert first["status"] == "pending"
    assert first["purchase_no"] == 1
    assert first["receipt_no"]
    # The same key and body is the same sale; the same key with another body is refused.
    assert (
        api.post(f"/meters/{A}/sales", {"amount_micro_yuan": 20_000_000}, "sale-a-1", ok=200)["id"]
        == first["id"]
    )
    with pytest.raises(ApiError) as conflict:
        sale(api, A, 21_000_000, "sale-a-1")
    assert conflict.value.status == 409
    assert decided(api, f"/sales/{first['id']}", p)["status"] == "applied"
    wait_for("meter A's relay to close after the sale", lambda: relay(p, A) == "closed", 60, p)
    m = wait_for("meter A's mirror to show the credit", lambda: (lambda m: m if m["credits_micro_yuan"] == 20_000_000 and m["last_reading_ts"] else None)(identity(api, A)), 30, p)  # fmt: skip
    assert m["purchase_count"] == 1
    # The plain DL/T 645 meter reports too.
    wait_for("meter D's readings", lambda: api.get(f"/meters/{D}")["energy_wh"] is not None, 30, p)


def test_money_scenario_with_an_outage_keeps_the_ledger_identity_for_every_meter(
    park: tuple[Park, Api, Mosquitto, NorthListener],
) -> None:
    p, api, broker, north = park
    account_c = open_account(api, "Studio Three", C, transfer_in=8_000_000)
    open_account(api, "Studio One", A)
    open_account(api, "Studio Two", B)
    s_a = sale(api, A, 50_000_000, "a-1")
    s_b = sale(api, B, 4_000_000, "b-1")
    for s in (s_a, s_b):
        assert decided(api, f"/sales/{s['id']}", p)["status"] == "applied"
    for meter in (A, C):
        p.set_load(meter, 30_000)
    # A refund and a reversal, both confirmed by the collector.
    refund = api.post(f"/meters/{A}/refunds", {"amount_micro_yuan": 5_000_000}, key="rf-a-1")
    assert decided(api, f"/refunds/{refund['id']}", p)["status"] == "applied"
    s_a2 = sale(api, A, 3_000_000, "a-2")
    assert decided(api, f"/sales/{s_a2['id']}", p)["status"] == "applied"
    reversal = api.post(f"/sales/{s_a2['id']}/reversal", {"note": "wrong meter"})
    assert decided(api, f"/commands/{reversal['command_id']}", p)["status"] in (
        "applied",
        "verified",
    )

    # Outage: the broker goes away; the collector keeps enforcing on its own.
    broker.stop()
    energy_a = p.sim_state(A)["energy_wh"]
    p.set_load(B, 30_000)  # B starts drawing only now: its trip is the collector's own doing
    wait_for("meter B to be tripped offline at zero credit", lambda: relay(p, B) == "open", 90, p)
    # ... and A has used at least 3 yuan (300 Wh at 10 yuan/kWh) the cloud has not heard of.
    wait_for("A to use 300 Wh", lambda: p.sim_state(A)["energy_wh"] >= energy_a + 300, 60, p)
    # The office still sees A's last mirrored balance and refunds nearly all of it; meanwhile
    # the collector has charged A for the outage, so it must refuse: no money goes back.
    mirror_a = api.get(f"/meters/{A}")["balance_micro_yuan"]
    big = api.post(f"/meters/{A}/refunds", {"amount_micro_yuan": mirror_a - 500_000}, key="rf-a-2")
    broker.start()
    rejected = decided(api, f"/refunds/{big['id']}", p, 90)
    assert rejected["status"] == "rejected", rejected
    # B is topped up after the outage and powers up again.
    s_b2 = sale(api, B, 30_000_000, "b-2")
    assert decided(api, f"/sales/{s_b2['id']}", p)["status"] == "applied"
    wait_for("meter B's relay to close again", lambda: relay(p, B) == "closed", 60, p)

    # Close C's account while C still draws 30 kW: the collector reports C's charges since its
    # last report before the close result, so the cloud settles exactly what the collector
    # refunds (a stale mirror would refund too much and never converge below).
    assert p.sim_state(C)["power_w"] > 0
    assert api.get(f"/meters/{C}")["balance_micro_yuan"] > 0
    settlement = close_and_settle(api, p, account_c["id"])
    assert settlement["refund_due_micro_yuan"] > 0
    wait_for("meter C's relay to open after closing", lambda: relay(p, C) == "open", 60, p)

    # Quiesce, then let the mirror converge to what the collector reported last.
    for meter in (A, B, C):
        p.set_load(meter, 0)
    quiet = int(time.time()) + 2  # the collector's clock is this machine's
    wait_for("the mirrors to converge", lambda: converged(api, since_ts=quiet), 60, p)
    assert api.get("/alarms?active=true&kind=ledger_mismatch")["alarms"] == []
    a = identity(api, A)
    b = identity(api, B)
    c = identity(api, C)
    d = identity(api, D)  # the plain meter: read, never charged
    assert d["charges_micro_yuan"] == 0
    assert d["energy_wh"] is not None
    assert a["credits_micro_yuan"] == 50_000_000 + 3_000_000
    assert a["refunds_micro_yuan"] == 5_000_000 + 3_000_000  # the refused refund is not counted
    assert b["credits_micro_yuan"] == 4_000_000 + 30_000_000
    assert b["charges_micro_yuan"] >= 4_000_000  # B consumed all its first credit
    assert c["balance_micro_yuan"] == 0
    assert c["state"] == "closed"
    assert c["credits_micro_yuan"] == 8_000_000
    assert c["refunds_micro_yuan"] == settlement["refund_due_micro_yuan"]
    # The charges the mirror holds are exactly the readings' charges.
    for meter, m in ((A, a), (B, b), (C, c)):
        assert reading_charges(api, meter) == m["charges_micro_yuan"]

    # Third parties heard about it in payloads that match docs/asyncapi.yaml.
    doc = asyncapi.load()
    with north.lock:
        received = list(north.received)
    channels = {asyncapi.check(doc, topic, json.loads(body)) for topic, body, _ in received}
    assert "gridvend/v1/{site}/north/sales" in channels
    assert "gridvend/v1/{site}/north/events" in channels
    assert "gridvend/v1/{site}/north/meters/{meter}/readings" in channels
    money = north.payloads("/north/sales")
    assert {"type": "refund", "status": "rejected"} in [
        {"type": m["type"], "status": m["status"]} for m in money
    ]
    assert any(m["type"] == "settlement" and m["status"] == "applied" for m in money)
