"""The report centre in Chromium against the fixture park of tests/reports (built through the
real edge bookkeeping and ingest, January archived), served on loopback: one park, one server
and one browser for the module. Each report is opened, its filter changed, its export
downloaded and opened with openpyxl, and the file's totals compared with the page's; axe-core
on every report; the live alarm list refreshes itself and an alarm is handled with a note; a
refused filter is worded in Chinese and in English; an export of more than 10,000 rows shows
its progress and completes."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import insert

from cloud.db import Database
from cloud.models import Alarm
from cloud.web import create_app
from tests.reports import expected, park
from tests.support.browser import LiveServer, axe_violations, download_xlsx

URL = "/office/reports"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Reports:
    def __init__(self, db: Database, server: LiveServer, app: Any) -> None:
        self.db = db
        self.server = server
        self.url = server.url
        self.app = app

    def login(self, page: Any, user: str = "admin") -> None:
        page.goto(self.url + "/office/login")
        page.fill("#f-username", user)
        page.fill("#f-password", f"{user}-secret-1")
        page.click("#login-submit")
        page.wait_for_url(self.url + "/office/")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reports]:
    folder = tmp_path_factory.mktemp("report-screens")
    db = Database(f"sqlite:///{folder / 'reports.db'}")
    db.upgrade()
    park.build(db, folder / "archive")
    app = create_app(
        {"TESTING": False, "DATABASE": db, "SECRET_KEY": "report-screens-secret-0123456789",
         "EXPORTS_DIR": str(folder / "exports"), "ALARM_REFRESH_S": 1}
    )  # fmt: skip
    server = LiveServer(app).start()
    try:
        yield Reports(db, server, app)
    finally:
        server.close()
        db.dispose()


def _yuan(text: str) -> Decimal:
    return Decimal(re.sub(r"[^0-9.\-]", "", text))


def _fen(micro: int) -> Decimal:
    """What a page shows of an amount: yuan to the fen, half up."""
    return (Decimal(micro) / 1_000_000).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _totals_row(ws: Any) -> list[Any]:
    rows = list(ws.iter_rows(values_only=True))
    return list(rows[-1])


def test_sales_report_filter_export_and_totals(page: Any, reports: Reports, tmp_path: Path) -> None:
    reports.login(page)
    page.goto(reports.url + URL + "/sales?from=2026-01-15&to=2026-02-14")
    want = expected.sales_by_day()
    net = sum(d["net_micro_yuan"] for d in want.values())
    totals = page.locator("#report-totals td")
    assert _yuan(totals.nth(5).inner_text()) * 1_000_000 == net
    page.wait_for_selector("#report-chart svg")
    assert axe_violations(page) == []
    # the filter: February only
    page.fill("#from", "2026-02-01")
    page.click("#show")
    page.wait_for_url(re.compile(r".*from=2026-02-01.*"))
    feb = sum(d["net_micro_yuan"] for day, d in want.items() if day.month == 2)
    assert _yuan(page.locator("#report-totals td").nth(5).inner_text()) * 1_000_000 == feb
    book, _path = download_xlsx(page, lambda: page.click("#export"), tmp_path)
    assert book.sheetnames == ["售电日报", "按付款方式", "按操作员"]
    ws = book["售电日报"]
    assert "测试园区" in ws["A1"].value
    assert "2026-02-01" in ws["A1"].value
    last = _totals_row(ws)
    assert last[0] == "合计"
    assert last[6] * 1_000_000 == feb
    assert ws.freeze_panes == "A3"
    assert ws["G3"].number_format == "#,##0.00"
    # the monthly report's tab
    page.click("#period-month")
    page.wait_for_selector("tr[data-period='2026-02']")


def test_energy_analysis_place_scale_comparison_and_export(
    page: Any, reports: Reports, tmp_path: Path
) -> None:
    reports.login(page)
    page.goto(reports.url + URL + "/energy?from=2026-02-01&to=2026-02-07")
    page.wait_for_selector("#report-chart svg")
    assert axe_violations(page) == []
    page.locator("#place-tree a", has_text="East").first.click()
    page.wait_for_url(re.compile(r".*place=b%3A\d+.*|.*place=b:\d+.*"))
    page.select_option("#compare", "pop")
    page.click("#show")
    page.wait_for_selector("#kpi-base")
    days = expected.energy_by_day(["e1", "e2", "e3"])
    now = expected.total(days, dt.date(2026, 2, 1), dt.date(2026, 2, 7))
    base = expected.total(days, dt.date(2026, 1, 25), dt.date(2026, 1, 31))
    assert page.inner_text("#total-energy").replace(",", "") == f"{Decimal(now.wh) / 1000:.3f}"
    assert _yuan(page.inner_text("#total-cost")) == _fen(now.charge)
    assert f"{Decimal(base.wh) / 1000:,.3f}" in page.inner_text("#kpi-base")
    assert page.locator("#band-table tr[data-band='peak']").count() == 1
    book, _path = download_xlsx(page, lambda: page.click("#export"), tmp_path)
    ws = book["能耗分析"]
    last = _totals_row(ws)
    assert Decimal(str(last[1])) == Decimal(now.wh) / 1000
    assert Decimal(str(last[2])) == Decimal(now.charge) / 1_000_000
    bands = {r[0]: r for r in book["按尖峰平谷"].iter_rows(min_row=3, values_only=True)}
    assert Decimal(str(bands["峰"][1])) == Decimal(now.bands["peak"][0]) / 1000


def test_the_energy_comparisons_change_column_is_an_increase_not_a_tills_change(
    reports: Reports,
) -> None:
    client = reports.app.test_client()
    token = _TOKEN.search(client.get("/office/login").get_data(as_text=True))
    assert token is not None
    client.post("/office/login", data={"username": "admin", "password": "admin-secret-1",
                                       "csrf_token": token.group(1)})  # fmt: skip
    query = "?from=2026-02-01&to=2026-02-07&compare=pop"
    page = client.get(URL + "/energy" + query).get_data(as_text=True)
    head = re.search(r'id="report-table">\s*<thead>(.*?)</thead>', page, re.S)
    assert head is not None
    titles = re.findall(r"<th[^>]*>([^<]*)</th>", head.group(1))
    assert titles[-1] == "增减", titles
    assert "找零" not in page  # the till's word for the money given back
    export = client.get(URL + "/energy/export" + query)
    assert export.status_code == 200
    data = export.data
    export.close()
    ws = openpyxl.load_workbook(io.BytesIO(data))["能耗分析"]
    header = next(r for r in ws.iter_rows(values_only=True) if r and r[0] == "时段")
    assert list(header[-3:]) == titles[-3:]  # the comparison's columns in the page's words


def test_the_other_reports_open_filter_and_export_what_they_show(
    page: Any, reports: Reports, tmp_path: Path
) -> None:
    reports.login(page)
    checks = [
        ("/lost", "#report-total", "失联表计"),
        ("/lost?kind=gateway", "#report-total", "失联通讯管理机"),
        ("/instruments?from=2026-02-01&to=2026-02-14", "#total-energy", "计量仪表能耗"),
        ("/statement?account=AC-e1&month=2026-02", "#total-closing", "月度对账单"),
        ("/runway", "#report-total", "剩余可用天数"),
        ("/archive?month=2026-01", "#total-energy", "回读归档月份"),
        ("/alarms/history?from=2026-01-15&to=2026-02-15", "#report-total", "报警记录"),
    ]
    for path, total, word in checks:
        page.goto(reports.url + URL + path)
        assert word in page.content(), path
        assert page.locator(total).count() == 1, path
        assert axe_violations(page) == [], path
        book, _file = download_xlsx(page, lambda: page.click("#export"), tmp_path)
        assert "测试园区" in book.worksheets[0]["A1"].value, path
    # filters changed on the page: a building, a place, a month, a bound on the days left
    page.goto(reports.url + URL + "/lost")
    page.select_option("#building", label="East")
    page.click("#show")
    page.wait_for_url(re.compile(r".*building=\d+.*"))
    assert page.inner_text("#report-total") == "0"  # w2 is in West
    page.goto(reports.url + URL + "/statement?account=AC-e1&month=2026-02")
    page.fill("#month", "2026-01")
    page.click("#show")
    page.wait_for_url(re.compile(r".*month=2026-01.*"))
    jan_closing = _yuan(page.inner_text("#total-closing"))
    assert jan_closing == _fen(expected.balance_before("e1", park.local(2026, 2, 1)))
    page.goto(reports.url + URL + "/runway")
    shown = page.locator("#report-table tbody tr[data-meter]").count()
    page.fill("#within", "0")
    page.click("#show")
    page.wait_for_url(re.compile(r".*within=0.*"))
    assert shown == 5
    assert page.locator("#report-table tbody tr[data-meter]").count() == 0  # nobody is out yet
    # the figures behind two of them, against the hand computation
    page.goto(reports.url + URL + "/instruments?from=2026-02-01&to=2026-02-14")
    w3 = expected.total(expected.energy_by_day(["w3"]), dt.date(2026, 2, 1), dt.date(2026, 2, 14))
    assert page.inner_text("#total-energy").replace(",", "") == f"{Decimal(w3.wh) / 1000:.3f}"
    book, _file = download_xlsx(page, lambda: page.click("#export"), tmp_path)
    assert Decimal(str(_totals_row(book.worksheets[0])[8])) == Decimal(w3.wh) / 1000
    page.goto(reports.url + URL + "/statement?account=AC-e1&month=2026-02")
    balance = expected.balance_before("e1", park.NOW)
    assert _yuan(page.inner_text("#total-closing")) == _fen(balance)
    assert "text-success" in (page.get_attribute("#identity", "class") or "")
    book, _file = download_xlsx(page, lambda: page.click("#export"), tmp_path)
    assert Decimal(str(_totals_row(book["月度对账单"])[7])) == Decimal(balance) / 1_000_000


def test_live_alarms_refresh_themselves_and_are_handled_with_a_note(
    page: Any, reports: Reports
) -> None:
    reports.login(page, "supervisor")
    page.goto(reports.url + URL + "/alarms")
    row = page.locator("tr[data-kind='lost_contact']")
    assert "W-102" in row.inner_text()
    assert "未处理" in row.inner_text()
    assert axe_violations(page) == []
    # the list reloads itself: a collector alarm handled elsewhere shows here without a click
    with reports.db.session() as s:
        gw_alarm = s.query(Alarm).filter(Alarm.kind == "gateway_lost_contact").one()
        gw_alarm.ack_ts, gw_alarm.ack_by, gw_alarm.ack_note = park.NOW, "operator:admin", "已派人"
    page.wait_for_function(
        "() => (document.querySelector(\"tr[data-kind='gateway_lost_contact']\") || {}).innerText"
        "?.includes('已派人')", timeout=10_000,
    )  # fmt: skip
    row.get_by_role("link", name="处理").click()
    page.click("#acknowledge")  # no note: refused by the browser's required, then the server's
    page.fill("#note", "电工已上门检查")
    page.click("#acknowledge")
    page.wait_for_url(reports.url + URL + "/alarms")
    handled = page.locator("tr[data-kind='lost_contact']")
    assert "已处理" in handled.inner_text()
    assert "电工已上门检查" in handled.inner_text()
    page.goto(reports.url + URL + "/alarms/history?from=2026-01-15&to=2026-02-15&state=handled")
    assert page.locator("#report-table tbody tr[data-alarm]").count() == 2


def test_a_refused_filter_is_said_in_the_pages_language(page: Any, reports: Reports) -> None:
    reports.login(page)
    resp = page.goto(reports.url + URL + "/sales?from=2026-02-10&to=2026-02-01")
    assert resp.status == 422
    assert "结束日期 2026-02-01 早于开始日期 2026-02-10" in page.inner_text("#filter-error")
    resp = page.goto(reports.url + URL + "/energy?from=2019-01-01&to=2026-01-01")
    assert resp.status == 422
    assert "最多覆盖 5 年" in page.inner_text("#filter-error")
    resp = page.goto(reports.url + URL + "/lost?building=999")
    assert resp.status == 422
    assert "楼栋 999 不存在" in page.inner_text("#filter-error")
    page.click("button[name='lang'][value='en']")
    page.goto(reports.url + URL + "/sales?from=2026-02-10&to=2026-02-01")
    assert "The end date 2026-02-01 is before the start date 2026-02-10" in page.inner_text(
        "#filter-error"
    )


def test_an_export_of_more_than_10000_rows_shows_progress_and_completes(
    page: Any, reports: Reports, tmp_path: Path
) -> None:
    rows = 10_500
    first = park.local(2025, 6, 1)
    with reports.db.session() as s:  # history of 2025, apart from the month the others read
        s.execute(insert(Alarm), [
            {"kind": "clock_drift", "meter_id": "e1", "gateway_id": "gw-e", "active": False,
             "raised_ts": first + i * 60, "cleared_ts": first + i * 60 + 30, "cleared_by": "test"}
            for i in range(rows)
        ])  # fmt: skip
    reports.login(page)
    page.goto(reports.url + URL + "/alarms/history?from=2025-06-01&to=2025-06-30")
    assert page.inner_text("#report-total") == f"共 {rows} 条报警"
    page.click("#export")
    page.wait_for_url(re.compile(r".*/exports/[A-Za-z0-9_-]+$"))
    bar = page.locator("#export-bar")
    assert bar.get_attribute("max") == "100"
    assert page.locator("#export-progress").get_attribute("data-state") in ("running", "done")
    assert axe_violations(page) == []
    link = page.locator("#export-download")
    link.wait_for(timeout=120_000)
    assert page.locator("#export-bar").get_attribute("value") == "100"
    book, _path = download_xlsx(page, lambda: link.click(), tmp_path)
    ws = book["报警记录"]
    data = list(ws.iter_rows(min_row=3, values_only=True))
    assert len(data) == rows
    assert {r[1] for r in data} == {"时钟偏差"}
