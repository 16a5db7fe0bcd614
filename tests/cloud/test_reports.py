"""Reports (sales per day/month/year in local time, energy by place and day, lost contact),
daily rollups and archival of old readings with the ledger still adding up."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
from sqlalchemy import event

from cloud.errors import InvalidError, RuleError
from cloud.models import ArchiveRun, DailyRollup, Meter, Reading, Sale, Unit
from cloud.money import accounts, ledger, refunds, sales
from cloud.reporting import archive, reports
from tests.cloud.support import ACTOR, T0, FakeEdge, send, sync

Y = 1_000_000
DAY = 86_400
# T0 is 2026-01-01 00:00 UTC = 08:00 in Shanghai. 16:30 UTC is 00:30 the next local day.
LATE = T0 + 16 * 3600 + 1800


@pytest.fixture
def trading(db, park):
    edges = {"gw-1": FakeEdge("gw-1"), "gw-2": FakeEdge("gw-2")}
    with db.session() as s:
        accounts.open_account(s, {"name": "A"}, ["m-101", "m-102"], ACTOR, now=T0)
        accounts.open_account(s, {"name": "B"}, ["m-201"], ACTOR, now=T0)
    sync(db, edges, now=T0)
    with db.session() as s:
        sales.sell(s, "m-101", 100 * Y, "cash", ACTOR, now=T0 + 60)
        sales.sell(s, "m-201", 40 * Y, "cash", ACTOR, now=LATE)  # local Jan 2
        sales.sell(s, "m-102", 10 * Y, "cash", ACTOR, now=T0 + 40 * DAY)  # February
    sync(db, edges, now=T0 + 40 * DAY)
    with db.session() as s:
        refunds.refund(s, "m-101", 30 * Y, ACTOR, now=T0 + 40 * DAY)
        sales.sell(s, "m-201", 5 * Y, "cash", ACTOR, now=T0 + 40 * DAY)  # stays pending
    sync(db, {"gw-1": edges["gw-1"]}, now=T0 + 41 * DAY)
    return edges


def test_sales_report_per_local_day(db, trading):
    with db.session() as s:
        out = reports.sales(s, "day", dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    rows = {r["period"]: r for r in out["rows"]}
    assert rows["2026-01-01"]["sales_micro_yuan"] == 100 * Y
    assert rows["2026-01-02"]["sales_micro_yuan"] == 40 * Y  # 00:30 local, not Jan 1
    feb = rows["2026-02-10"]
    assert (feb["sales_count"], feb["pending_count"]) == (2, 1)
    refund_day = rows["2026-02-11"]  # refunds count when the edge confirmed them
    assert refund_day["refunds_micro_yuan"] == 30 * Y
    assert out["totals"]["net_micro_yuan"] == (100 + 40 + 10 + 5 - 30) * Y


def test_sales_report_per_month_and_year(db, trading):
    with db.session() as s:
        months = reports.sales(s, "month", dt.date(2026, 1, 1), dt.date(2026, 12, 31))
        years = reports.sales(s, "year", dt.date(2025, 1, 1), dt.date(2026, 12, 31))
    assert [(r["period"], r["sales_micro_yuan"]) for r in months["rows"]] == [
        ("2026-01", 140 * Y),
        ("2026-02", 15 * Y),
    ]
    assert [(r["period"], r["net_micro_yuan"]) for r in years["rows"]] == [("2026", 125 * Y)]


def test_rejected_sales_are_not_counted(db, trading):
    with db.session() as s:
        s.query(Sale).filter(Sale.amount_micro_yuan == 5 * Y).one().status = "rejected"
    with db.session() as s:
        out = reports.sales(s, "year", dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert out["totals"]["sales_micro_yuan"] == 150 * Y


def test_report_arguments_are_checked(db, park):
    with pytest.raises(InvalidError) as err, db.session() as s:
        reports.sales(s, "week", dt.date(2026, 1, 1), dt.date(2026, 1, 2))
    assert err.value.field == "period"
    with pytest.raises(RuleError) as rule, db.session() as s:
        reports.energy(s, dt.date(2026, 1, 5), dt.date(2026, 1, 1))
    assert rule.value.field == "to"


def _consume(db, edge, meter, day_offsets_wh):
    msgs = [edge.reading(meter, wh, ts=T0 + off) for off, wh in day_offsets_wh]
    send(db, edge, msgs, now=T0 + 3 * DAY)


def test_energy_report_by_place_and_day_from_rollups_and_live_readings(db, park):
    edge = FakeEdge("gw-1")
    # Local Jan 1 is T0 − 8 h … T0 + 16 h.
    _consume(db, edge, "m-101", [(0, 1000), (3600, 500), (DAY, 2000), (DAY + 60, 250)])
    _consume(db, edge, "m-103", [(60, 100), (DAY + 120, 300)])
    with db.session() as s:
        archive.rollup_day(s, "studio", dt.date(2026, 1, 1))  # Jan 2 stays live
        unit_a101 = s.query(Unit).filter(Unit.number == "A-101").one()
        everything = reports.energy(s, dt.date(2026, 1, 1), dt.date(2026, 1, 2))
        only_unit = reports.energy(s, dt.date(2026, 1, 1), dt.date(2026, 1, 2), unit=unit_a101.id)
    days = {d["day"]: d for d in everything["days"]}
    # m-101: Jan 1 counter 1000 → 1500 (its first reading has no earlier one: 500 Wh);
    # Jan 2 1500 → 3750 (2250 Wh). m-103: Jan 1 only one reading (0); Jan 2 100 → 400 (300).
    assert days["2026-01-01"]["energy_wh"] == 500
    assert days["2026-01-02"]["energy_wh"] == 2250 + 300
    assert everything["total_charge_micro_yuan"] == (1000 + 500 + 2000 + 250 + 100 + 300) * 1000
    assert [m["meter"] for m in only_unit["meters"]] == ["m-101", "m-102"]
    assert only_unit["total_energy_wh"] == 500 + 2250
    with db.session() as s:
        assert s.query(DailyRollup).count() == 2


def test_archive_exports_old_readings_and_the_ledger_still_adds_up(db, park, tmp_path):
    edge = FakeEdge("gw-1")
    with db.session() as s:
        accounts.open_account(s, {"name": "A"}, ["m-101"], ACTOR, now=T0)
        sales.sell(s, "m-101", 100 * Y, "cash", ACTOR, now=T0)
    sync(db, {"gw-1": edge})
    _consume(db, edge, "m-101", [(0, 1000), (DAY, 2000), (10 * DAY, 3000)])
    now = T0 + 12 * DAY  # keep 5 days: the first two readings go
    with db.session() as s:
        runs = archive.archive_readings(s, tmp_path, now=now, keep_days=5, fmt="jsonl")
    assert len(runs) == 1
    assert runs[0].rows == 2
    with db.session() as s:
        assert s.query(Reading).count() == 1
        meter = s.get(Meter, "m-101")
        assert meter.archived_charges_micro_yuan == 3 * Y
        assert meter.charges_micro_yuan == 6 * Y
        ledger.verify(s, "m-101")  # rows + archived charges = the mirror
        assert s.query(ArchiveRun).one().sha256 == runs[0].sha256
        rolled = {r.day: r.energy_wh for r in s.query(DailyRollup)}
    assert set(rolled) >= {dt.date(2026, 1, 1), dt.date(2026, 1, 2)}
    lines = gzip.decompress((tmp_path / runs[0].path.split("/")[-1]).read_bytes()).splitlines()
    exported = [json.loads(line) for line in lines]
    assert [r["charge_micro_yuan"] for r in exported] == [Y, 2 * Y]
    with db.session() as s:  # nothing old is left: a second run does nothing
        assert archive.archive_readings(s, tmp_path, now=now, keep_days=5) == []


def test_archive_locks_its_meters_in_id_order_as_ingest_does(db, park, tmp_path):
    """Ingest locks a batch's meters in id order (cloud/uplink/batch.py); the archive, which
    locks the meters whose readings it moves out, must take them in the same order, or the two
    can deadlock."""
    edge = FakeEdge("gw-1")
    for meter in ("m-103", "m-101", "m-102"):
        _consume(db, edge, meter, [(0, 1000)])
    locks: list[str] = []

    def catch(conn, cursor, statement, params, context, executemany):
        if "FOR UPDATE" in statement and "FROM meters" in statement:
            locks.append(statement)

    event.listen(db.engine, "before_cursor_execute", catch)
    try:
        with db.session() as s:
            runs = archive.archive_readings(s, tmp_path, now=T0 + 12 * DAY, keep_days=5)
    finally:
        event.remove(db.engine, "before_cursor_execute", catch)
    assert [run.rows for run in runs] == [3]
    if db.is_sqlite:
        assert locks == []  # no row locks there: one writer at a time (BEGIN IMMEDIATE)
        return
    assert locks
    assert all("ORDER BY meters.id" in statement for statement in locks), locks


def test_archive_job_writes_csv_for_the_bridge(db, park, tmp_path):
    edge = FakeEdge("gw-1")
    _consume(db, edge, "m-101", [(0, 1000)])
    result = archive.job(db, T0 + 200 * DAY, out_dir=tmp_path)
    (run,) = result["runs"]
    text = gzip.decompress(Path(run["path"]).read_bytes()).decode()
    header, row = text.splitlines()
    assert header.startswith("id,gateway_id,reading_id,meter_id,ts")
    assert ",m-101," in row


def test_archive_in_small_batches_never_splits_a_day(db, park, tmp_path):
    edge = FakeEdge("gw-1")
    # Three readings on local Jan 1, two on Jan 2, one on Jan 3.
    offsets = [0, 60, 120, DAY, DAY + 60, 2 * DAY]
    _consume(db, edge, "m-101", [(off, 100) for off in offsets])
    now = T0 + 30 * DAY
    sizes = []
    for _ in range(5):
        with db.session() as s:
            runs = archive.archive_readings(s, tmp_path, now=now, keep_days=5, max_rows=2)
        sizes.extend(r.rows for r in runs)
    assert sizes == [3, 2, 1]  # Jan 1 whole (over the batch size), then Jan 2, then Jan 3
    with db.session() as s:
        assert s.query(Reading).count() == 0
        rolled = {r.day: (r.readings, r.charge_micro_yuan) for r in s.query(DailyRollup)}
        assert rolled[dt.date(2026, 1, 1)] == (3, 300_000)
        assert rolled[dt.date(2026, 1, 2)] == (2, 200_000)
        ledger.verify(s, "m-101")
