"""Bad report filters are refused naming the field, with a code the office words in its language
(end before start, more than 5 years, an unknown building or one outside the operator's
buildings, a place that is not in the tree, a date that is not one); background exports
(real files, a real thread): who may see one, progress, failure, a stalled job, pruning; the
credit runway list; the report centre's columns as the migration made them."""

from __future__ import annotations

import datetime as dt
import io
import time
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from cloud.access.scope import EVERYTHING, Scope
from cloud.db import Database
from cloud.errors import NotFoundError
from cloud.models import Base, Building, DailyRollup, Floor, Meter, PlaceRollup, Unit
from cloud.reporting import export_jobs, filters, runway, sales_report
from cloud.reporting.exports import Column, write_workbook
from cloud.reporting.usage import days as usage_days
from cloud.reporting.usage import runway_days
from tests.reports import park
from tests.reports.conftest import Built

D = dt.date


@pytest.mark.parametrize(
    ("start", "end", "code", "field"),
    [
        (D(2026, 2, 10), D(2026, 2, 1), "end_before_start", "to"),
        (D(2021, 1, 1), D(2026, 1, 1), "range_too_long", "from"),
        (D(2020, 2, 29), D(2025, 2, 28), "range_too_long", "from"),
    ],
)
def test_a_range_is_refused_naming_the_field(start: D, end: D, code: str, field: str) -> None:
    with pytest.raises(filters.FilterError) as info:
        filters.date_range(start, end)
    assert (info.value.code, info.value.field, info.value.status) == (code, field, 422)


def test_five_years_less_a_day_is_allowed() -> None:
    assert filters.date_range(D(2021, 1, 1), D(2025, 12, 31)).days == 1826


@pytest.mark.parametrize("text", ["2026-13-01", "2026-02-30", "yesterday", "2026-2-1"])
def test_a_date_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(filters.FilterError) as info:
        filters.parse_date(text, "from")
    assert info.value.code == "bad_date"
    assert info.value.params["value"] == text


def test_unknown_or_foreign_places_are_refused(built: Built) -> None:
    with built.db.session(readonly=True) as s:
        east = s.scalars(select(Building).where(Building.name == "East")).one()
        west = s.scalars(select(Building).where(Building.name == "West")).one()
        west_floor = s.scalars(select(Floor).where(Floor.building_id == west.id)).first()
        west_unit = s.scalars(select(Unit).where(Unit.number == "W-101")).one()
        only_east = Scope(frozenset({east.id}))
        for raw, code in (("999999", "unknown_building"), ("x", "unknown_building"),
                          (str(west.id), "unknown_building")):  # fmt: skip
            with pytest.raises(filters.FilterError) as info:
                filters.building(s, only_east, raw)
            assert info.value.code == code
        assert filters.building(s, only_east, str(east.id)) is east
        assert west_floor is not None
        for raw, code in ((f"b:{west.id}", "unknown_building"), (f"f:{west_floor.id}", "unknown_floor"),
                          (f"u:{west_unit.id}", "unknown_unit"), ("b:999999", "unknown_building"),
                          ("building 1", "unknown_place")):  # fmt: skip
            with pytest.raises(filters.FilterError) as info:
                filters.place(s, only_east, raw)
            assert info.value.code == code, raw
        with pytest.raises(filters.FilterError):
            filters.meter(s, only_east, "w1")
        assert filters.place(s, EVERYTHING, f"b:{west.id}").label == "West"
        # and the sales report refuses a range before computing anything
        with pytest.raises(filters.FilterError):
            sales_report.report(s, "day", filters.Range(D(2026, 2, 2), D(2026, 2, 1)))


def _viewer(op: int = 1, perms: tuple[str, ...] = ("reports.read",), buildings: Any = None) -> Any:
    return export_jobs.Viewer(op, frozenset(perms), frozenset(buildings) if buildings else None)


def _wait(jobs: export_jobs.ExportJobs, job: str, viewer: Any) -> dict[str, Any]:
    for _ in range(400):
        found = jobs.status(job, viewer)
        if found["state"] != "running":
            return found
        time.sleep(0.025)
    raise AssertionError("the job did not finish")


def test_a_background_export_writes_its_file_and_says_how_far_it_is(tmp_path: Path) -> None:
    jobs = export_jobs.ExportJobs(tmp_path)
    rows = [{"n": i, "yuan": i * 10_000} for i in range(2_500)]
    seen: list[int] = []

    def work(out: Any, progress: Any) -> int:
        def tracked(done: int) -> None:
            seen.append(done)
            progress(done)

        return write_workbook(out, "导出测试", [Column("n", "n", "int"), Column("yuan", "元", "yuan")],
                              rows, progress=tracked)  # fmt: skip

    owner = _viewer(7, buildings={1, 2})
    job = jobs.start(
        owner=owner, permission="reports.read", title="t", filename="t.xlsx", total=2_500, work=work
    )
    found = _wait(jobs, job, owner)
    assert (found["state"], found["rows"], found["percent"]) == ("done", 2_500, 100)
    assert seen == [1000, 2000]
    path, name = jobs.file(job, owner)
    assert name == "t.xlsx"
    ws = openpyxl.load_workbook(io.BytesIO(path.read_bytes()))["导出测试"]
    assert ws.max_row == 2 + 2_500
    # who else may see it: the whole park or wider buildings with the permission, nobody else
    assert jobs.status(job, _viewer(8))["state"] == "done"
    assert jobs.status(job, _viewer(9, buildings={1, 2, 3}))["state"] == "done"
    for other in (_viewer(10, buildings={1}), _viewer(11, perms=("alarms.read",))):
        with pytest.raises(NotFoundError):
            jobs.status(job, other)
    with pytest.raises(NotFoundError):
        jobs.status("../../etc/passwd", owner)


def test_a_failed_export_says_why_and_a_stalled_one_is_failed(tmp_path: Path) -> None:
    now = [1_000.0]
    jobs = export_jobs.ExportJobs(tmp_path, clock=lambda: now[0])
    owner = _viewer()

    def broken(out: Any, progress: Any) -> int:
        raise RuntimeError("the database went away")

    job = jobs.start(
        owner=owner, permission=None, title="t", filename="t.xlsx", total=5, work=broken
    )
    found = _wait(jobs, job, owner)
    assert found["state"] == "failed"
    assert "the database went away" in found["error"]
    with pytest.raises(NotFoundError):
        jobs.file(job, owner)
    assert not list(tmp_path.glob("*.part"))
    # a job whose process died: its status stops moving
    stuck = tmp_path / "stuck-job-id-000000.json"
    stuck.write_text(
        '{"id": "stuck-job-id-000000", "owner": 1, "permission": null, "buildings": null, '
        '"title": "t", "filename": "t.xlsx", "state": "running", "rows": 10, "total": 100, '
        '"error": null, "started": 1000, "updated": 1000, "finished": null}'
    )
    now[0] = 1000 + export_jobs.STALL_S + 1
    assert jobs.status("stuck-job-id-000000", owner)["state"] == "failed"
    now[0] = 1000 + export_jobs.KEEP_S + 1
    assert jobs.prune() == 2
    assert list(tmp_path.iterdir()) == []


def test_the_runway_list_is_the_engines_days_fewest_first(built: Built) -> None:
    with built.db.session(readonly=True) as s:
        found = runway.runway_list(s, site_id=park.SITE, now=park.NOW)
        meters = {m.id: m for m in s.scalars(select(Meter))}
        today = D(2026, 2, 15)
        phone = {
            m: runway_days(s, meters[m], park.NOW, usage_days(s, meters[m], today - dt.timedelta(days=29), today))
            for m in ("e1", "e2", "e3", "w1", "w2")
        }  # fmt: skip
    items = found["items"]
    assert {i["meter"] for i in items} == {"e1", "e2", "e3", "w1", "w2"}  # w3 is a plain meter
    days = [i["runway_days"] for i in items]
    assert days == sorted(days)
    assert {i["meter"]: i["runway_days"] for i in items} == phone  # what the tenant's phone says
    assert all(d > 0 for d in days)
    assert sum(b["count"] for b in found["buckets"]) == len(items)
    assert items[0]["phone"].startswith("1380000000")


def test_the_report_columns_match_the_models(built: Built) -> None:
    with built.db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [
        d
        for d in diffs
        if any(k in repr(d) for k in ("daily_rollups", "ack_", "ix_alarms_raised_ts"))
    ]
    assert mine == []


def test_the_per_building_totals_are_the_meter_rollups_summed(built: Built) -> None:
    with built.db.session(readonly=True) as s:
        place = {
            (day, b): (e, c)
            for day, b, e, c in s.execute(
                select(PlaceRollup.day, PlaceRollup.building_id, PlaceRollup.energy_wh,
                       PlaceRollup.charge_micro_yuan)
            )
        }  # fmt: skip
        per_meter: dict[tuple[D, int], list[int]] = {}
        for r, building in s.execute(
            select(DailyRollup, Floor.building_id)
            .join(Meter, Meter.id == DailyRollup.meter_id)
            .join(Unit, Unit.id == Meter.unit_id)
            .join(Floor, Floor.id == Unit.floor_id)
        ):
            slot = per_meter.setdefault((r.day, building), [0, 0])
            slot[0] += r.energy_wh
            slot[1] += r.charge_micro_yuan
    assert place == {k: tuple(v) for k, v in per_meter.items()}
    assert len({d for d, _b in place}) == 28  # Jan 16 – Feb 12 rolled up


def test_migration_0013_fills_the_totals_from_the_rollups_there_were(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        database.upgrade("0012_order_refunded_ts")
        with database.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sites (id, name, timezone, created_ts) VALUES ('s', 'S', 'UTC', 0)"
                )
            )
            conn.execute(text("INSERT INTO buildings (id, site_id, name) VALUES (7, 's', 'B')"))
            conn.execute(text("INSERT INTO floors (id, building_id, name) VALUES (1, 7, '1F')"))
            conn.execute(
                text(
                    "INSERT INTO units (id, site_id, floor_id, number, name) VALUES (1, 's', 1, 'U1', '')"
                )
            )
            conn.execute(text("INSERT INTO gateways (id, site_id, name, key_id, key_hex, mqtt_username, online, "
                              "lost_contact, down_seq_next, down_seq_reserved, created_ts, owner_epoch) "
                              "VALUES ('g', 's', '', 1, :k, 'g', 0, 0, 1, 1, 0, 0)"), {"k": "11" * 32})  # fmt: skip
            conn.execute(text("INSERT INTO buses (id, gateway_id, name) VALUES (1, 'g', 'b')"))
            for m, unit in (("m1", 1), ("m2", 1), ("m3", None)):
                conn.execute(text("INSERT INTO meters (id, gateway_id, bus_id, address, model, name, unit_id, ct_ratio, pt_ratio, "
                                  "prepaid, settings, mode, display_state, relay, lost_contact, created_ts, purchase_count, "
                                  "last_applied_purchase_no) VALUES (:m, 'g', 1, :m, 'x', '', :u, 1, 1, 1, '{}', "
                                  "'prepaid', 'opened', 'closed', 0, 0, 0, 0)"),
                             {"m": m, "u": unit})  # fmt: skip
                conn.execute(text("INSERT INTO daily_rollups (meter_id, day, energy_wh, charge_micro_yuan, readings, updated_ts, "
                                  "peak_wh) VALUES (:m, '2026-01-05', 1000, 800000, 48, 0, 1000)"), {"m": m})  # fmt: skip
        database.upgrade()
        with database.session(readonly=True) as s:
            rows = sorted(
                (r.building_id, r.meters, r.energy_wh, r.charge_micro_yuan, r.peak_wh)
                for r in s.scalars(select(PlaceRollup))
            )
        assert rows == [(0, 1, 1000, 800_000, 1000), (7, 2, 2000, 1_600_000, 2000)]
    finally:
        database.dispose()
