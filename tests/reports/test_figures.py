"""Every report of the report centre against the fixture park computed by hand (expected.py):
energy to the Wh and cost to the micro-yuan by day, month, band and place, with comparisons;
sales by day, month and year, by method and operator; plain instruments' start and end
counters; lost meters and collectors; alarms; the tenant's monthly statement; the archive read
back. On SQLite and on PostgreSQL (``built``)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from cloud.access.scope import EVERYTHING, Scope
from cloud.audit import Actor
from cloud.errors import ConflictError, InvalidError
from cloud.models import Account, Alarm, ArchiveRun, AuditEntry, Building, Floor, Meter, Unit
from cloud.monitoring import alarms
from cloud.reporting import (
    alarm_report,
    cashier,
    energy_report,
    filters,
    instruments,
    lost,
    restore,
    sales_report,
    statement,
)
from tests.reports import expected, park
from tests.reports.conftest import Built

ALL = list(park.METERS)
D = dt.date


def _analysis(built: Built, start: D, end: D, **kw: object) -> dict:
    with built.db.session(readonly=True) as s:
        where = kw.pop("where", None)
        if isinstance(where, str):
            where = filters.place(s, EVERYTHING, where)
        return energy_report.analysis(
            s, filters.Range(start, end), site_id=park.SITE, now=park.NOW, where=where, **kw
        )


def test_energy_by_day_is_the_hand_computation_to_the_wh_and_the_micro_yuan(built: Built) -> None:
    """Days rolled up and archived (January), rolled up (to Feb 12) and live (Feb 13–15)."""
    got = _analysis(built, D(2026, 1, 16), D(2026, 2, 15))
    want = expected.energy_by_day(ALL)
    assert [r["period"] for r in got["rows"]] == [d.isoformat() for d in sorted(want)]
    for row in got["rows"]:
        day = want[D.fromisoformat(row["period"])]
        assert (row["energy_wh"], row["cost_micro_yuan"]) == (day.wh, day.charge), row["period"]
        assert row["bands"] == {b: day.bands[b][0] for b in expected.BANDS}, row["period"]
        assert row["band_costs"] == {b: day.bands[b][1] for b in expected.BANDS}, row["period"]
        assert row["unsplit_wh"] == 0
    assert got["total_energy_wh"] == sum(d.wh for d in want.values())
    assert got["total_cost_micro_yuan"] == sum(d.charge for d in want.values())
    assert sum(r["share_bp"] for r in got["rows"]) == 10_000


def test_the_tariff_version_changes_prices_from_its_day(built: Built) -> None:
    before = _analysis(built, D(2026, 1, 24), D(2026, 1, 24), where="u:" + _unit_id(built, "E-101"))
    after = _analysis(built, D(2026, 1, 26), D(2026, 1, 26), where="u:" + _unit_id(built, "E-101"))
    # The same consumption each day; v2 is 10 % dearer in every band. Jan 25's first interval
    # (closed at 00:00 on the 25th) is still v1's, so compare whole v1 and v2 days.
    assert before["total_energy_wh"] == after["total_energy_wh"]
    assert after["total_cost_micro_yuan"] * 10 == before["total_cost_micro_yuan"] * 11


def test_month_scale_band_table_and_shares(built: Built) -> None:
    got = _analysis(built, D(2026, 1, 1), D(2026, 2, 28), scale="month")
    want = expected.energy_by_day(ALL)
    jan = expected.total(want, D(2026, 1, 1), D(2026, 1, 31))
    feb = expected.total(want, D(2026, 2, 1), D(2026, 2, 28))
    assert [(r["period"], r["energy_wh"], r["cost_micro_yuan"]) for r in got["rows"]] == [
        ("2026-01", jan.wh, jan.charge),
        ("2026-02", feb.wh, feb.charge),
    ]
    whole = expected.total(want, D(2026, 1, 1), D(2026, 2, 28))
    table = {b["band"]: (b["energy_wh"], b["cost_micro_yuan"]) for b in got["bands"]}
    assert table == {b: tuple(whole.bands[b]) for b in expected.BANDS if whole.bands[b][0]}
    assert sum(b["share_bp"] for b in got["bands"]) == 10_000
    shares = {b["band"]: b["share_bp"] for b in got["bands"]}
    assert abs(shares["peak"] - whole.bands["peak"][0] * 10_000 // whole.wh) <= 1


def test_places_building_floor_and_unit(built: Built) -> None:
    want = expected.energy_by_day
    with built.db.session(readonly=True) as s:
        east = s.scalars(select(Building).where(Building.name == "East")).one().id
        floor2 = (
            s.scalars(select(Floor).where(Floor.building_id == east, Floor.name == "2F")).one().id
        )
    for place, meters in ((f"b:{east}", ["e1", "e2", "e3"]), (f"f:{floor2}", ["e3"]),
                          ("u:" + _unit_id(built, "W-102"), ["w2", "w3"])):  # fmt: skip
        got = _analysis(built, D(2026, 2, 1), D(2026, 2, 14), where=place)
        total = expected.total(want(meters), D(2026, 2, 1), D(2026, 2, 14))
        assert (got["total_energy_wh"], got["total_cost_micro_yuan"]) == (total.wh, total.charge)


def test_period_on_period_and_year_on_year(built: Built) -> None:
    want = expected.energy_by_day(ALL)
    got = _analysis(built, D(2026, 2, 1), D(2026, 2, 7), compare="pop")
    assert got["base"] == {"from": "2026-01-25", "to": "2026-01-31"}
    base = expected.total(want, D(2026, 1, 25), D(2026, 1, 31))
    now = expected.total(want, D(2026, 2, 1), D(2026, 2, 7))
    assert (got["base_energy_wh"], got["base_cost_micro_yuan"]) == (base.wh, base.charge)
    change = abs(now.wh - base.wh) * 10_000 // base.wh
    assert got["change_bp"] == (change if now.wh >= base.wh else -change)
    assert next(r["base_period"] for r in got["rows"]) == "2026-01-25"
    first = want[D(2026, 1, 25)]
    assert got["rows"][0]["base_energy_wh"] == first.wh
    yoy = _analysis(built, D(2026, 2, 1), D(2026, 2, 7), compare="yoy")
    assert yoy["base"] == {"from": "2025-02-01", "to": "2025-02-07"}
    assert yoy["base_energy_wh"] == 0
    assert yoy["change_bp"] is None
    month = _analysis(built, D(2026, 2, 1), D(2026, 2, 28), scale="month", compare="pop")
    assert month["base"] == {"from": "2026-01-01", "to": "2026-01-31"}
    assert month["base_energy_wh"] == expected.total(want, D(2026, 1, 1), D(2026, 1, 31)).wh


def test_energy_cost_is_the_charges_the_edge_reported(built: Built) -> None:
    got = _analysis(built, D(2026, 1, 1), D(2026, 2, 28), scale="month")
    with built.db.session(readonly=True) as s:
        meters = list(s.scalars(select(Meter)))
        mirror = sum(m.charges_micro_yuan for m in meters)
        edge = sum(m.edge_charges_micro_yuan or 0 for m in meters)
    assert got["total_cost_micro_yuan"] == mirror == edge
    assert sum(b["cost_micro_yuan"] for b in got["bands"]) == mirror


def _sales(built: Built, period: str, start: D, end: D, scope: Scope = EVERYTHING) -> dict:
    with built.db.session(readonly=True) as s:
        return sales_report.report(
            s, period, filters.Range(start, end), site_id=park.SITE, scope=scope
        )


def test_daily_sales_report_is_the_hand_computation(built: Built) -> None:
    got = _sales(built, "day", D(2026, 1, 15), D(2026, 2, 14))
    want = expected.sales_by_day()
    assert len(got["rows"]) == 31  # every day, quiet ones included
    keys = ("sales_count", "sales_micro_yuan", "pending_count", "pending_micro_yuan",
            "refunds_micro_yuan", "reversals_micro_yuan", "net_micro_yuan")  # fmt: skip
    for row in got["rows"]:
        day = want.get(D.fromisoformat(row["period"]), {})
        assert {k: row[k] for k in keys} == {k: day.get(k, 0) for k in keys}, row["period"]
    assert got["totals"]["net_micro_yuan"] == sum(d["net_micro_yuan"] for d in want.values())
    methods = {m["method"]: m["net_micro_yuan"] for m in got["by_method"]}
    assert methods == {"cash": 5 * park.OPENING_SALE + 100_000_000 + 50_500_000 - 80_000_000
                       + 20_000_000, "wechat": 200_000_000}  # fmt: skip
    ops = {o["operator"].split()[0]: (o["sales_micro_yuan"], o["refunds_micro_yuan"],
                                      o["reversals_micro_yuan"]) for o in got["by_operator"]}  # fmt: skip
    assert ops == {
        "cashier1": (5 * park.OPENING_SALE + 150_500_000, 80_000_000, 0),
        "cashier2": (520_000_000, 0, 0),
        "supervisor": (0, 0, 300_000_000),
    }


def test_the_daily_report_names_an_operator_once_when_their_name_is_their_username(
    built: Built,
) -> None:
    """The park's operators were made without a display name (it is then their username):
    the by-operator table says "cashier1", not "cashier1 cashier1"."""
    got = _sales(built, "day", D(2026, 1, 15), D(2026, 2, 14))
    assert sorted(o["operator"] for o in got["by_operator"]) == ["cashier1", "cashier2",
                                                                 "supervisor"]  # fmt: skip


def test_days_add_up_to_the_month_and_months_to_the_year(built: Built) -> None:
    days = _sales(built, "day", D(2026, 1, 1), D(2026, 1, 31))
    month = _sales(built, "month", D(2026, 1, 1), D(2026, 12, 31))
    year = _sales(built, "year", D(2026, 1, 1), D(2026, 12, 31))
    jan = month["rows"][0]
    for key in sales_report.FIELDS:
        assert sum(r[key] for r in days["rows"]) == jan[key], key
        assert sum(r[key] for r in month["rows"]) == year["rows"][0][key] == year["totals"][key]
    assert len(month["rows"]) == 12
    energy_days = _analysis(built, D(2026, 2, 1), D(2026, 2, 28))
    energy_month = _analysis(built, D(2026, 2, 1), D(2026, 2, 28), scale="month")
    energy_year = _analysis(built, D(2026, 1, 1), D(2026, 12, 31), scale="year")
    assert (
        sum(r["cost_micro_yuan"] for r in energy_days["rows"])
        == energy_month["rows"][0]["cost_micro_yuan"]
    )
    months = _analysis(built, D(2026, 1, 1), D(2026, 12, 31), scale="month")
    assert sum(r["energy_wh"] for r in months["rows"]) == energy_year["rows"][0]["energy_wh"]


def test_the_daily_report_agrees_with_the_cashier_close_every_day(built: Built) -> None:

    got = _sales(built, "day", D(2026, 1, 15), D(2026, 2, 14))
    with built.db.session(readonly=True) as s:
        for row in got["rows"]:
            close = cashier.daily_close(s, D.fromisoformat(row["period"]), site_id=park.SITE)
            for key in cashier.FIELDS:
                assert close["totals"][key] == row[key], (row["period"], key)


def test_plain_instruments_start_end_and_difference(built: Built) -> None:
    times = park.reading_times("w3")
    counter = {t: park.FIRST_COUNTER["w3"] + sum(i.wh for i in expected.intervals("w3") if i.end <= t)
               for t in times}  # fmt: skip
    with built.db.session(readonly=True) as s:
        feb = instruments.report(s, filters.Range(D(2026, 2, 1), D(2026, 2, 14)), site_id=park.SITE)
        jan = instruments.report(
            s, filters.Range(D(2026, 1, 16), D(2026, 1, 20)), site_id=park.SITE
        )
    assert [r["meter"] for r in feb["rows"]] == ["w3"]  # only the plain instrument
    row = feb["rows"][0]
    assert (row["start_ts"], row["start_wh"]) == (
        park.local(2026, 1, 31, 23, 30),
        counter[park.local(2026, 1, 31, 23, 30)],
    )
    assert (row["end_ts"], row["end_wh"]) == (
        park.local(2026, 2, 14, 23, 30),
        counter[park.local(2026, 2, 14, 23, 30)],
    )
    days = expected.energy_by_day(["w3"])
    assert row["energy_wh"] == expected.total(days, D(2026, 2, 1), D(2026, 2, 14)).wh
    assert row["charge_micro_yuan"] == 0
    assert row["latest"]["ts"] == park.END
    archived = jan["rows"][0]  # January's readings are in the archive: rollups give the counters
    assert archived["start_wh"] == park.FIRST_COUNTER["w3"]
    assert archived["energy_wh"] == expected.total(days, D(2026, 1, 16), D(2026, 1, 20)).wh


def test_lost_meters_and_collectors_with_counts_per_building(built: Built) -> None:
    with built.db.session(readonly=True) as s:
        meters = lost.meters(s, site_id=park.SITE, now=park.NOW)
        gws = lost.gateways(s, site_id=park.SITE, now=park.NOW)
    assert [(i["id"], i["building"], i["unit"]) for i in meters["items"]] == [
        ("w2", "West", "W-102")
    ]
    item = meters["items"][0]
    assert item["last_seen_ts"] is not None
    assert item["since_ts"] >= park.LOST_AT
    assert meters["by_building"] == [{"building": "West", "count": 1}]
    assert [(g["id"], g["building"], g["meters"]) for g in gws["items"]] == [("gw-w", "West", 3)]
    assert gws["items"][0]["last_heartbeat_ts"] == park.HEARTBEAT_STOPPED
    assert gws["items"][0]["lost_for_s"] == park.NOW - park.HEARTBEAT_STOPPED


def test_live_alarms_history_and_the_scope(built: Built) -> None:
    with built.db.session(readonly=True) as s:
        live = [alarm_report.row(r, park.NOW) for r in s.execute(
            alarm_report.statement(s, active=True, site_id=park.SITE).order_by(*alarm_report.ORDER))]  # fmt: skip
        history = sorted(r[0].kind for r in s.execute(alarm_report.statement(
            s, site_id=park.SITE, rng=filters.Range(D(2026, 1, 15), D(2026, 2, 15)))))  # fmt: skip
        east = s.scalars(select(Building).where(Building.name == "East")).one().id
        scoped = {r[0].meter_id for r in s.execute(
            alarm_report.statement(s, scope=Scope(frozenset({east}))))}  # fmt: skip
    assert sorted((a["kind"], a["meter"] or a["gateway"]) for a in live) == [
        ("gateway_lost_contact", "gw-w"), ("lost_contact", "w2")]  # fmt: skip
    lost_row = next(a for a in live if a["kind"] == "lost_contact")
    assert (lost_row["unit"], lost_row["building"]) == ("W-102", "West")
    assert lost_row["balance_micro_yuan"] == expected.balance_before("w2", park.NOW)
    # the arrears alarms of the five accounts before their first sale, cleared by it
    assert history == ["arrears"] * 5 + ["gateway_lost_contact", "lost_contact"]
    assert scoped == {"e1", "e2", "e3"}  # East's only


def test_statement_opening_purchases_refunds_charges_closing(built: Built) -> None:
    days = expected.energy_by_day(["e1"])
    with built.db.session(readonly=True) as s:
        account = s.scalars(select(Account).where(Account.number == "AC-e1")).one()
        jan = statement.monthly(s, account.id, D(2026, 1, 1), now=park.NOW)
        feb = statement.monthly(s, account.id, D(2026, 2, 1), now=park.NOW)

        mirror = s.get(Meter, "e1")
        assert mirror is not None
        balance = mirror.balance_micro_yuan
    t = jan["totals"]
    charges_jan = expected.total(days, D(2026, 1, 1), D(2026, 1, 31))
    assert t["opening_micro_yuan"] == 0
    assert t["purchases_micro_yuan"] == park.OPENING_SALE + 100_000_000
    assert t["refunds_micro_yuan"] == 0
    assert t["charges_micro_yuan"] == charges_jan.charge
    assert t["energy_wh"] == charges_jan.wh
    assert t["closing_micro_yuan"] == expected.balance_before("e1", park.local(2026, 2, 1))
    assert jan["identity_holds"]
    assert feb["identity_holds"]
    f = feb["totals"]
    assert f["opening_micro_yuan"] == t["closing_micro_yuan"]
    assert (f["purchases_micro_yuan"], f["refunds_micro_yuan"]) == (0, 80_000_000)
    assert (
        f["opening_micro_yuan"]
        + f["purchases_micro_yuan"]
        - f["refunds_micro_yuan"]
        - f["charges_micro_yuan"]
        == f["closing_micro_yuan"]
    )
    assert f["closing_micro_yuan"] == balance  # the month in progress closes at the mirror
    assert {b: v for b, v in feb["bands"].items() if v[0]} == {
        b: v for b, v in expected.total(days, D(2026, 2, 1), D(2026, 2, 28)).bands.items() if v[0]}  # fmt: skip
    assert [line["kind"] for line in feb["lines"]] == ["refund"]


def test_a_reversal_is_a_refund_and_a_pending_sale_is_not_in_the_statement(built: Built) -> None:
    with built.db.session(readonly=True) as s:
        account = s.scalars(select(Account).where(Account.number == "AC-w1")).one()
        feb = statement.monthly(s, account.id, D(2026, 2, 1), now=park.NOW)
    assert feb["totals"]["purchases_micro_yuan"] == 300_000_000
    assert feb["totals"]["refunds_micro_yuan"] == 300_000_000
    assert [line["kind"] for line in feb["lines"]] == ["sale", "reversal"]
    assert feb["totals"]["closing_micro_yuan"] == expected.balance_before("w1", park.NOW)


def test_archive_runs_and_an_archived_month_read_back_from_its_file(built: Built) -> None:
    with built.db.session(readonly=True) as s:
        runs = restore.runs(s, check=True)
        month = restore.month(s, D(2026, 1, 1), site_id=park.SITE)
    assert len(runs) == 1
    assert runs[0]["present"]
    assert runs[0]["intact"]
    before = park.local(2026, 1, 31)
    archived = sum(1 for m in park.METERS for t in park.reading_times(m) if t < before)
    assert runs[0]["rows"] == archived == month["readings"]
    assert (runs[0]["first_day"], runs[0]["last_day"]) == ("2026-01-16", "2026-01-30")
    assert month["agrees"]
    assert {r["day"] for r in month["rows"]} == {
        D(2026, 1, 16) + dt.timedelta(days=i) for i in range(15)
    }
    want = expected.energy_by_day(ALL)
    span = expected.total(want, D(2026, 1, 16), D(2026, 1, 30))
    assert (month["energy_wh"], month["charge_micro_yuan"]) == (span.wh, span.charge)


def test_a_damaged_archive_file_is_refused(built: Built, tmp_path: Path) -> None:

    with built.db.session(readonly=True) as s:
        run = s.scalars(select(ArchiveRun)).one()
        s.expunge(run)

    copy = tmp_path / "copy.csv.gz"
    shutil.copyfile(run.path, copy)
    with open(copy, "r+b") as f:
        f.seek(40)
        f.write(b"\x00\x01\x02")
    run.path = str(copy)
    with pytest.raises(ConflictError, match="damaged"):
        list(restore.read_back(run))


def _unit_id(built: Built, number: str) -> str:
    with built.db.session(readonly=True) as s:
        return str(s.scalars(select(Unit.id).where(Unit.number == number)).one())


def test_acknowledge_keeps_the_alarm_active_with_who_when_and_the_note(built: Built) -> None:

    with built.db.session() as s:
        alarm = s.scalars(select(Alarm).where(Alarm.kind == "lost_contact")).one()
        with pytest.raises(InvalidError, match="note"):
            alarms.acknowledge(s, alarm, "  ", Actor("operator:supervisor", None), now=park.NOW)
        alarms.acknowledge(
            s, alarm, "已通知电工上门", Actor("operator:supervisor", None), now=park.NOW + 5
        )
        alarm_id = alarm.id
    with built.db.session(readonly=True) as s:
        found = s.get(Alarm, alarm_id)
        assert found is not None
        assert found.active
        assert (found.ack_ts, found.ack_by, found.ack_note) == (
            park.NOW + 5,
            "operator:supervisor",
            "已通知电工上门",
        )
        handled = list(s.execute(alarm_report.statement(s, state="handled")))
        assert [r[0].id for r in handled] == [alarm_id]
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "alarm.acknowledge")).one()
