"""The agent's bookkeeping around the real engine: credits in purchase order, duplicates answered
from the inbox, reports whose charges add up, history, the ledger identity, one transaction."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge.book import MeterBook
from edge.cache.queues import Inbox
from edge.cache.store import Store
from edge.core import engine
from edge.processor import MeterInfo, Processor

T0 = 1_767_225_600  # 2026-01-01 00:00 UTC
PRICE = 1_000_000  # 1 yuan per kWh
TARIFFS = {"flat": [{"version": 1, "effective_from": 0, "price_micro_yuan_per_kwh": PRICE}]}


def make(tmp_path: Path, meters: int = 2, **kw: Any) -> Processor:
    store = Store(tmp_path / "edge.sqlite", seq_block=10)
    ctx = engine.Context(tariffs=TARIFFS, zone_rules=[[0, 28800]], defaults={"tariff_id": "flat"})
    infos = [MeterInfo(f"m{i}", "bus1", i, "acrel-ddsy1352") for i in range(1, meters + 1)]
    return Processor(MeterBook(store, ctx, infos, {}, now=T0, **kw))


def outbox(p: Processor) -> list[dict[str, Any]]:
    rows = p.store.conn.execute("SELECT id, body FROM outbox ORDER BY id").fetchall()
    return [{"id": r[0], **json.loads(r[1])} for r in rows]


def cmd(cid: str, meter: str, op: str, **args: Any) -> dict[str, Any]:
    return {"t": "cmd", "id": cid, "meter": meter, "op": op, "args": args}


def reading(ts: int, energy_wh: int, relay: str = "closed") -> dict[str, Any]:
    return {"ts": ts, "energy_wh": energy_wh, "power_w": 1000, "relay": relay}


def identity(p: Processor, meter: str) -> None:
    s = p.states[meter]
    assert s["balance_micro_yuan"] == (
        s["credits_micro_yuan"] - s["refunds_micro_yuan"] - s["charges_micro_yuan"]
    )
    booked = p.store.ledger_totals(meter)
    assert booked["credits_micro_yuan"] == s["credits_micro_yuan"]
    assert booked["refunds_micro_yuan"] == s["refunds_micro_yuan"]
    assert booked["charges_micro_yuan"] <= s["charges_micro_yuan"]


def test_credit_with_gap_is_held_until_missing_one_arrives(tmp_path: Path) -> None:
    p = make(tmp_path)
    p.commands([cmd("open", "m1", "open_account")], T0)
    p.commands([cmd("c2", "m1", "credit", purchase_no=2, amount_micro_yuan=2_000_000)], T0)
    msgs = outbox(p)
    assert {"t": "need_purchase", "meter": "m1", "purchase_no": 1}.items() <= msgs[-2].items()
    assert msgs[-1]["t"] == "result"
    assert msgs[-1]["status"] == "held"
    assert msgs[-1]["cmd"] == "c2"
    assert p.states["m1"]["balance_micro_yuan"] == 0
    p.commands([cmd("c1", "m1", "credit", purchase_no=1, amount_micro_yuan=1_000_000)], T0 + 1)
    results = [m for m in outbox(p) if m["t"] == "result" and m["status"] == "applied"]
    by_cmd = {r["cmd"]: r for r in results}
    assert by_cmd["c1"]["purchase_no"] == 1
    assert by_cmd["c1"]["balance_micro_yuan"] == 1_000_000
    assert by_cmd["c2"]["purchase_no"] == 2
    assert by_cmd["c2"]["balance_micro_yuan"] == 3_000_000
    assert [r["purchase_no"] for r in p.store.ledger("m1") if r["kind"] == "credit"] == [1, 2]
    assert p.store.inbox.held("m1") == {}
    identity(p, "m1")


def test_duplicate_command_gets_the_stored_result_and_is_applied_once(tmp_path: Path) -> None:
    p = make(tmp_path)
    p.commands([cmd("open", "m1", "open_account")], T0)
    credit = cmd("c1", "m1", "credit", purchase_no=1, amount_micro_yuan=5_000_000)
    p.commands([credit], T0)
    first = [m for m in outbox(p) if m["t"] == "result" and m["cmd"] == "c1"]
    p.commands([credit, credit], T0 + 5)
    again = [m for m in outbox(p) if m["t"] == "result" and m["cmd"] == "c1"]
    assert len(again) == 3
    assert all(
        {k: v for k, v in r.items() if k != "id"}
        == {k: v for k, v in first[0].items() if k != "id"}
        for r in again
    )
    assert p.states["m1"]["credits_micro_yuan"] == 5_000_000
    identity(p, "m1")


def test_refund_that_would_go_negative_is_rejected_with_the_balance(tmp_path: Path) -> None:
    p = make(tmp_path)
    p.commands([cmd("open", "m1", "open_account")], T0)
    p.commands([cmd("r1", "m1", "refund", amount_micro_yuan=1)], T0)
    result = outbox(p)[-1]
    assert result["status"] == "rejected"
    assert "negative" in result["reason"]
    assert result["balance_micro_yuan"] == 0


def test_unknown_meter_and_bad_engine_input_are_rejected_without_change(tmp_path: Path) -> None:
    p = make(tmp_path)
    before = json.dumps(p.states, sort_keys=True)
    p.commands([cmd("x1", "nope", "mode", mode="keep_power")], T0)
    assert outbox(p)[-1]["status"] == "rejected"
    assert "not on this collector" in outbox(p)[-1]["reason"]
    p.commands([cmd("x2", "m1", "close_account")], T0)  # not opened: a transition error
    assert outbox(p)[-1]["status"] == "rejected"
    p.commands([cmd("x3", "m1", "settings", alarm1_micro_yuan="lots")], T0)
    assert outbox(p)[-1]["status"] == "rejected"
    assert json.dumps(p.states, sort_keys=True) == before


def test_reports_carry_charges_that_add_up_to_the_running_total(tmp_path: Path) -> None:
    p = make(tmp_path, report_s=30, history_s=600)
    p.commands([cmd("open", "m1", "open_account")], T0)
    p.commands([cmd("c1", "m1", "credit", purchase_no=1, amount_micro_yuan=100_000_000)], T0)
    energy = 1_000_000
    for i in range(400):
        ts = T0 + 5 * i
        energy += 7 + i % 5
        p.readings([("m1", reading(ts, energy))], ts)
    reports = [m for m in outbox(p) if m["t"] == "reading" and m["meter"] == "m1"]
    assert len(reports) >= 2000 // 30
    total = 0
    for r in reports:
        total += r["charge_micro_yuan"]
        assert r["charges_micro_yuan"] == total
        assert r["balance_micro_yuan"] == (
            r["credits_micro_yuan"] - r["refunds_micro_yuan"] - r["charges_micro_yuan"]
        )
    # what is not reported yet is the consumption since the last report (< report_s ago)
    assert reports[-1]["ts"] > T0 + 5 * 399 - 30
    assert 0 <= p.states["m1"]["charges_micro_yuan"] - total < 30 * 12 * PRICE // 1000
    ids = [r["id"] for r in reports]
    assert ids == sorted(ids)
    assert len(p.store.history("m1")) == 2000 // 600 + 1
    identity(p, "m1")
    assert p.store.ledger_totals("m1")["charges_micro_yuan"] > 0


def test_balance_crossing_zero_trips_and_a_credit_closes(tmp_path: Path) -> None:
    p = make(tmp_path)
    p.commands([cmd("open", "m1", "open_account")], T0)
    p.commands([cmd("c1", "m1", "credit", purchase_no=1, amount_micro_yuan=10_000)], T0)
    out = p.readings([("m1", reading(T0, 0))], T0)
    out = p.readings([("m1", reading(T0 + 60, 20))], T0 + 60)  # 20 Wh = 20,000 micro-yuan
    assert ("m1", "trip", "credit") in out.relay
    assert p.states["m1"]["balance_micro_yuan"] < 0
    out = p.commands([cmd("c2", "m1", "credit", purchase_no=2, amount_micro_yuan=50_000)], T0 + 90)
    assert ("m1", "close", "restore") in out.relay
    kinds = [m.get("kind") for m in outbox(p) if m["t"] == "event"]
    assert "trip" in kinds
    assert "close" in kinds
    identity(p, "m1")


def test_state_survives_a_reload_from_the_store(tmp_path: Path) -> None:
    p = make(tmp_path)
    p.commands([cmd("open", "m1", "open_account")], T0)
    p.commands([cmd("c1", "m1", "credit", purchase_no=1, amount_micro_yuan=7_000_000)], T0)
    p.readings([("m1", reading(T0, 10)), ("m2", reading(T0, 10))], T0)
    p.readings([("m1", reading(T0 + 40, 1010))], T0 + 40)
    saved = json.dumps(p.states, sort_keys=True)
    p.store.conn.close()  # no clean shutdown
    again = make(tmp_path)
    assert json.dumps(again.states, sort_keys=True) == saved
    assert again.book.reported["m1"] == p.book.reported["m1"]
    assert again.desired_relays() == [("m1", "close", "restore")]


def test_tariff_command_is_stored_and_used_after_restart(tmp_path: Path) -> None:
    p = make(tmp_path)
    version = {"version": 2, "effective_from": T0 + 3600, "price_micro_yuan_per_kwh": 2 * PRICE}
    p.commands(
        [
            {
                "t": "cmd",
                "id": "t2",
                "meter": None,
                "op": "tariff",
                "args": {"tariff_id": "flat", "version": version},
            }
        ],
        T0,
    )
    assert outbox(p)[-1]["status"] == "applied"
    p.store.conn.close()
    again = make(tmp_path)
    assert [v["version"] for v in again.book.ctx.tariffs["flat"]] == [1, 2]
    bad = {"version": 3, "effective_from": T0, "price_micro_yuan_per_kwh": -1}
    again.commands(
        [
            {
                "t": "cmd",
                "id": "t3",
                "meter": None,
                "op": "tariff",
                "args": {"tariff_id": "flat", "version": bad},
            }
        ],
        T0,
    )
    assert outbox(again)[-1]["status"] == "rejected"
    assert [v["version"] for v in again.book.ctx.tariffs["flat"]] == [1, 2]


def test_clock_drift_over_30_s_is_reported(tmp_path: Path) -> None:
    p = make(tmp_path)
    p.commands(
        [{"t": "cmd", "id": "tm", "meter": None, "op": "time", "args": {"utc": T0 - 45}}], T0
    )
    events = [m for m in outbox(p) if m["t"] == "event"]
    assert events[-1]["kind"] == "clock_drift"
    assert events[-1]["detail"]["drift_s"] == 45


def test_a_failing_batch_commits_nothing(tmp_path: Path) -> None:
    p = make(tmp_path)
    p.readings([("m1", reading(T0, 10))], T0)
    count = len(outbox(p))
    with pytest.raises(KeyError):
        p.readings([("m1", reading(T0 + 30, 20)), ("ghost", reading(T0 + 30, 1))], T0 + 30)
    assert len(outbox(p)) == count


def test_time_command_asks_the_buses_to_set_meter_clocks(tmp_path: Path) -> None:
    p = make(tmp_path)
    out = p.commands(
        [{"t": "cmd", "id": "tm", "meter": None, "op": "time", "args": {"utc": T0}}], T0
    )
    assert out.sync_clock
    assert outbox(p)[-1]["status"] == "applied"


def test_settings_changed_in_edge_toml_apply_at_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.sqlite")
    ctx = engine.Context(tariffs=TARIFFS, zone_rules=[[0, 28800]], defaults={"tariff_id": "flat"})
    info = [MeterInfo("m1", "bus1", 1, "acrel-ddsy1352")]
    Processor(MeterBook(store, ctx, info, {"m1": {"alarm1_micro_yuan": 7_000_000}}, now=T0))
    store.conn.close()
    store = Store(tmp_path / "edge.sqlite")
    again = Processor(MeterBook(store, ctx, info, {"m1": {"alarm2_micro_yuan": 1_000_000}}, now=T0))
    assert again.states["m1"]["settings"] == {"alarm2_micro_yuan": 1_000_000}


@pytest.mark.parametrize("restart", [False, True])
def test_money_result_follows_a_report_of_every_charge_made_before_it(
    tmp_path: Path, restart: bool
) -> None:
    # The cloud settles a closed account from its mirror (credits − refunds − reported charges).
    # If consumption since the last report were still unreported when the close result arrives,
    # the cloud would refund more than the collector took back. So a money command's result is
    # preceded by a reading carrying every charge made before it (also after a restart).
    p = make(tmp_path, report_s=3600)
    p.commands([cmd("open", "m1", "open_account")], T0)
    p.commands([cmd("c1", "m1", "credit", purchase_no=1, amount_micro_yuan=10_000_000)], T0)
    p.readings([("m1", reading(T0, 1_000_000))], T0)
    p.readings([("m1", reading(T0 + 60, 1_000_700))], T0 + 60)  # 0.7 kWh: not reported yet
    if restart:
        p.store.close()
        p = make(tmp_path, report_s=3600)
    mirror = 0
    for m in outbox(p):
        if m["t"] == "result" and m["op"] == "credit" and m["status"] == "applied":
            mirror += 10_000_000
        if m["t"] == "reading":
            mirror -= m["charge_micro_yuan"]
    assert mirror == 10_000_000 - 0  # the cloud does not know of the 0.7 kWh yet
    p.commands([cmd("close", "m1", "close_account")], T0 + 61)
    msgs = outbox(p)
    at = next(i for i, m in enumerate(msgs) if m["t"] == "result" and m["cmd"] == "close")
    result = msgs[at]
    assert result["status"] == "applied"
    assert result["balance_micro_yuan"] == 0
    flushed = [m for m in msgs[:at] if m["t"] == "reading"][-1]
    assert flushed["ts"] == T0 + 60
    assert flushed["charge_micro_yuan"] == 700_000
    assert flushed["balance_micro_yuan"] == 9_300_000  # what the settlement refunds
    s = p.states["m1"]
    assert s["refunds_micro_yuan"] == 9_300_000
    assert s["balance_micro_yuan"] == 0
    identity(p, "m1")


class DiskFullOnce(Store):
    """A real store whose disk fills up once: the ``nth`` call of ``method`` after ``arm`` fails
    as SQLite fails on a full flash (the transaction rolls back, the agent retries later)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.inbox = _DiskFullInbox(self)

    def arm(self, method: str, nth: int = 1) -> None:
        self._fail = (method, nth)

    def _maybe_fail(self, method: str) -> None:
        armed = getattr(self, "_fail", None)
        if armed is not None and armed[0] == method:
            if armed[1] <= 1:
                self._fail = None
                raise sqlite3.OperationalError("database or disk is full")
            self._fail = (method, armed[1] - 1)

    def save_state(self, *args: Any, **kw: Any) -> None:
        self._maybe_fail("save_state")
        super().save_state(*args, **kw)


class _DiskFullInbox(Inbox):
    def __init__(self, store: DiskFullOnce) -> None:
        super().__init__(store)
        self.store = store

    def put(self, *args: Any, **kw: Any) -> None:
        self.store._maybe_fail("inbox_put")
        super().put(*args, **kw)


def make_disk_full(tmp_path: Path, **kw: Any) -> tuple[Processor, DiskFullOnce]:
    store = DiskFullOnce(tmp_path / "edge.sqlite", seq_block=10)
    ctx = engine.Context(tariffs=TARIFFS, zone_rules=[[0, 28800]], defaults={"tariff_id": "flat"})
    infos = [MeterInfo(f"m{i}", "bus1", i, "acrel-ddsy1352") for i in range(1, 3)]
    return Processor(MeterBook(store, ctx, infos, {}, now=T0, **kw)), store


def test_a_command_batch_that_fails_to_commit_is_applied_in_full_when_resent(
    tmp_path: Path,
) -> None:
    # The credit's engine step ran before the disk filled up at the refund's inbox row: the
    # transaction rolled back, so the collector has promised nothing. The cloud resends both
    # commands; the credit must be applied (not answered "duplicate" from a state that kept
    # the rolled-back credit), once, with its ledger row.
    p, store = make_disk_full(tmp_path)
    p.commands([cmd("open", "m1", "open_account")], T0)
    batch = [
        cmd("c1", "m1", "credit", purchase_no=1, amount_micro_yuan=5_000_000),
        cmd("r1", "m1", "refund", amount_micro_yuan=1_000_000),
    ]
    store.arm("inbox_put", nth=2)
    with pytest.raises(sqlite3.OperationalError):
        p.commands(batch, T0)
    assert p.states["m1"]["balance_micro_yuan"] == 0
    p.commands(batch, T0 + 30)
    results = {m["cmd"]: m for m in outbox(p) if m["t"] == "result"}
    assert results["c1"]["status"] == "applied"
    assert results["c1"]["balance_micro_yuan"] == 5_000_000
    assert results["r1"]["status"] == "applied"
    assert results["r1"]["balance_micro_yuan"] == 4_000_000
    assert [r["purchase_no"] for r in p.store.ledger("m1") if r["kind"] == "credit"] == [1]
    assert p.states["m1"]["balance_micro_yuan"] == 4_000_000
    identity(p, "m1")


def test_a_reading_batch_that_fails_to_commit_reports_its_charge_when_retried(
    tmp_path: Path,
) -> None:
    # The agent keeps a batch whose commit failed and hands it in again. Its charges must reach
    # the uplink then: a retry that finds them already in memory would never report them, and
    # the cloud's mirror would be short of them for good.
    p, store = make_disk_full(tmp_path, report_s=30)
    p.commands([cmd("open", "m1", "open_account")], T0)
    p.commands([cmd("c1", "m1", "credit", purchase_no=1, amount_micro_yuan=10_000_000)], T0)
    p.readings([("m1", reading(T0, 1_000_000)), ("m2", reading(T0, 5))], T0)
    batch = [("m1", reading(T0 + 60, 1_000_500)), ("m2", reading(T0 + 60, 6))]
    store.arm("save_state", nth=2)  # m1 is rated and saved, m2's save hits the full disk
    with pytest.raises(sqlite3.OperationalError):
        p.readings(batch, T0 + 60)
    p.readings(batch, T0 + 61)
    p.readings([("m1", reading(T0 + 120, 1_000_600))], T0 + 120)
    reports = [m for m in outbox(p) if m["t"] == "reading" and m["meter"] == "m1"]
    s = p.states["m1"]
    assert s["charges_micro_yuan"] == 600_000
    assert sum(r["charge_micro_yuan"] for r in reports) == s["charges_micro_yuan"]
    assert reports[-1]["charges_micro_yuan"] == s["charges_micro_yuan"]
    assert reports[-1]["balance_micro_yuan"] == s["balance_micro_yuan"] == 9_400_000
    identity(p, "m1")


def test_a_refund_resent_after_a_long_outage_is_answered_not_applied_again(
    tmp_path: Path,
) -> None:
    # The refund was applied, then the link went down for longer than the inbox is kept: its
    # result is still in the outbox, so the cloud never heard of it and resends the command
    # when the collector comes back. The inbox must still know the command, or the refund is
    # taken from the tenant's credit twice.
    day = 86_400
    p = make(tmp_path)
    p.commands([cmd("open", "m1", "open_account")], T0)
    p.commands([cmd("c1", "m1", "credit", purchase_no=1, amount_micro_yuan=10_000_000)], T0)
    p.commands([cmd("r1", "m1", "refund", amount_micro_yuan=3_000_000)], T0)
    later = T0 + 31 * day
    p.store.prune(later, 90 * day, 30 * day, 400 * day)
    p.commands([cmd("r1", "m1", "refund", amount_micro_yuan=3_000_000)], later)
    answers = [m for m in outbox(p) if m["t"] == "result" and m["cmd"] == "r1"]
    assert [a["balance_micro_yuan"] for a in answers] == [7_000_000, 7_000_000]
    assert p.states["m1"]["balance_micro_yuan"] == 7_000_000
    identity(p, "m1")


def test_an_extra_args_field_named_type_does_not_change_what_a_command_does(
    tmp_path: Path,
) -> None:
    # Fields a command's args do not need are ignored (docs/protocol.md: a newer sender may add
    # some). Merged into the engine event as they were, an args field "type" replaced the op:
    # an open_account could become a credit the cloud never sold.
    p = make(tmp_path)
    extra = {"type": "credit", "purchase_no": 1, "amount_micro_yuan": 9_000_000}
    p.commands([cmd("open", "m1", "open_account", **extra)], T0)
    p.commands([cmd("c1", "m1", "credit", purchase_no=1, amount_micro_yuan=1_000_000)], T0)
    results = {m["cmd"]: m for m in outbox(p) if m["t"] == "result"}
    assert results["open"]["status"] == "applied"
    assert results["open"]["op"] == "open_account"
    assert results["c1"]["status"] == "applied"
    assert results["c1"]["balance_micro_yuan"] == 1_000_000
    assert p.states["m1"]["account"] == "opened"
    assert p.states["m1"]["credits_micro_yuan"] == 1_000_000
    identity(p, "m1")
