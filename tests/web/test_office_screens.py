"""The 登录管理 and 系统设置 screens in Debian's Chromium, as an administrator uses them: add an
operator (a bad field is marked and nothing is added), give them a role and a building, make a
custom role; import meters from a sheet with one bad row (the error is shown, nothing is
imported) and then a good sheet; a TOU tariff whose table misses an hour is refused; export the
meter list and open the file with openpyxl; axe-core finds no serious violation on any screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from cloud.models import AuditEntry, Meter, Operator, Role, SiteDefaults, Tariff, now_ts
from tests.cloud.support import FakeEdge, sync
from tests.support.browser import axe_violations, download_xlsx
from tests.web.support import Office


@pytest.fixture
def admin(page: Any, office: Office) -> Any:
    office.login(page, "admin")
    return page


def test_adding_an_operator_marks_a_bad_field_then_adds_them_with_role_and_building(
    admin: Any, office: Office
) -> None:
    page = admin
    page.goto(office.url + "/office/access/operators")
    page.click("#add-operator")
    page.fill("#f-username", "zhang")
    page.fill("#f-display_name", "张三")
    page.fill("#f-password", "short")
    page.click("#operator-form button[type=submit]")
    assert page.locator("#f-password").get_attribute("aria-invalid") == "true"
    assert page.locator("#e-password").inner_text() == "密码至少需要 8 个字符。"
    assert page.locator("#f-username").input_value() == "zhang"  # kept for the retry
    with office.db.session() as s:
        assert s.scalars(select(Operator).where(Operator.username == "zhang")).first() is None
    page.fill("#f-password", "long-enough-1")
    page.select_option("#f-role", "cashier")
    page.check("#operator-form input[name=buildings] >> nth=0")
    page.click("#operator-form button[type=submit]")
    expect(page.locator("body")).to_contain_text("已新增操作员 zhang")
    row = page.locator("tr[data-username=zhang]")
    assert "cashier" in row.inner_text()
    assert "A" in row.locator("td").nth(4).inner_text()
    with office.db.session() as s:
        op = s.scalars(select(Operator).where(Operator.username == "zhang")).one()
        assert [b.name for b in op.buildings] == ["A"]
        assert op.role.name == "cashier"
    # disable them (confirm dialog accepted); their status shows it
    page.once("dialog", lambda d: d.accept())
    row.locator("button:has-text('停用')").click()
    assert "操作员已停用" in page.content()
    assert "停用" in page.locator("tr[data-username=zhang] td").nth(5).inner_text()


def test_a_custom_role_is_a_set_of_named_permissions_and_built_ins_stay(
    admin: Any, office: Office
) -> None:
    page = admin
    page.goto(office.url + "/office/access/roles")
    assert page.locator("tr[data-role=admin] a:has-text('编辑')").count() == 0
    page.click("#add-role")
    page.fill("#f-name", "meter-reader")
    page.click("#role-form button[type=submit]")
    assert page.locator("#e-permissions").inner_text() == "请至少勾选一项权限。"
    page.check("label:has-text('查看抄表历史')")
    page.check("label:has-text('查看仪表、通讯管理机、命令和电价')")
    page.click("#role-form button[type=submit]")
    expect(page.locator("body")).to_contain_text("已新增角色 meter-reader")
    with office.db.session() as s:
        role = s.scalars(select(Role).where(Role.name == "meter-reader")).one()
        assert sorted(p.name for p in role.permissions) == ["meters.read", "readings.read"]
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "role.create")).all()
        assert audit
        assert audit[-1].after is not None


def _sheet(path: Path, rows: list[list[Any]]) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "meters"
    ws.append(["meter_id", "gateway_id", "bus", "address", "model", "name", "unit_no"])
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def _meter_count(office: Office) -> int:
    with office.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Meter)) or 0)


def test_meter_import_shows_the_bad_row_imports_nothing_then_imports_a_good_sheet(
    admin: Any, office: Office, tmp_path: Path
) -> None:
    page = admin
    before = _meter_count(office)
    page.goto(office.url + "/office/settings/meters")
    page.click("#import-meters")
    book, _path = download_xlsx(page, lambda: page.click("#template"), tmp_path)
    assert [c.value for c in next(book["meters"].iter_rows(max_row=1))][:5] == [
        "meter_id", "gateway_id", "bus", "address", "model",
    ]  # fmt: skip
    bad = _sheet(tmp_path / "bad.xlsx", [
        ["n-1", "gw-1", "bus9", "91", "acrel-dtsy1352", "新表一", "A-101"],
        ["n-1", "gw-1", "bus9", "92", "acrel-dtsy1352", "新表二", "A-101"],
    ])  # fmt: skip
    page.set_input_files("#file", str(bad))
    page.click("#upload")
    errors = page.locator("#import-errors").inner_text()
    assert "第 3 行 表号：重复（与第 2 行相同）" in errors
    assert page.locator("#confirm-import").count() == 0
    assert _meter_count(office) == before
    good = _sheet(tmp_path / "good.xlsx", [
        ["n-1", "gw-1", "bus9", "91", "acrel-dtsy1352", "新表一", "A-101"],
        ["n-2", "gw-1", "bus9", "92", "acrel-dtsy1352", "新表二", "A-102"],
    ])  # fmt: skip
    page.set_input_files("#file", str(good))
    page.click("#upload")
    assert "全部 2 行校验通过" in page.locator("#import-ok").inner_text()
    assert _meter_count(office) == before  # the preview wrote nothing
    page.click("#confirm-import")
    assert "已导入 2 块表" in page.content()
    assert _meter_count(office) == before + 2
    page.goto(office.url + "/office/settings/meters?q=n-")
    assert page.locator("#meters tbody tr").count() == 2


def test_a_tou_tariff_must_cover_the_day(admin: Any, office: Office) -> None:
    page = admin
    page.goto(office.url + "/office/settings/tariffs/new")
    page.fill("#f-tariff_id", "tou-1")
    page.check("#kind-tou")
    page.fill("#f-band_peak", "1.0000")
    page.fill("#f-band_valley", "0.3500")
    for hour in range(24):
        if hour != 13:
            page.select_option(f"#f-h{hour:02d}", "peak" if 8 <= hour < 22 else "valley")
    page.click("#tariff-form button[type=submit]")
    expect(page.locator("body")).to_contain_text("13:00 未选时段：时段表必须覆盖全天 24 小时。")
    with office.db.session() as s:
        assert s.get(Tariff, "tou-1") is None
    page.select_option("#f-h13", "peak")
    page.click("#tariff-form button[type=submit]")
    expect(page.locator("body")).to_contain_text("电价方案 tou-1：版本已保存")
    periods = page.locator("#versions tbody tr").first.inner_text()
    assert "00:00 谷" in periods
    assert "08:00 峰" in periods
    assert "22:00 谷" in periods


def test_the_meter_list_exports_the_filtered_set_to_a_real_xlsx(
    admin: Any, office: Office, tmp_path: Path
) -> None:
    page = admin
    page.goto(office.url + "/office/settings/meters?gateway=gw-1")
    shown = page.locator("#meters tbody tr").count()
    total = page.locator("#list-total").inner_text()
    book, path = download_xlsx(page, lambda: page.click("#export"), tmp_path)
    assert path.suffix == ".xlsx"
    ws = book["仪表管理"]
    rows = list(ws.iter_rows(values_only=True))
    assert "Film studio park" in rows[0][0]
    assert "gw-1" in rows[0][0]
    assert rows[1][0] == "表号"
    assert rows[1][9] == "剩余金额（元）"
    data = [r for r in rows[2:] if r[0] and r[0] != "合计"]
    assert len(data) == shown
    assert total == f"共 {shown} 条"
    assert {r[4] for r in data} == {"gw-1"}
    assert ws.freeze_panes == "A3"
    balance = ws.cell(row=3, column=10)
    assert balance.number_format == "#,##0.00"
    assert ws.cell(row=3, column=11).number_format == "#,##0.000"


def test_the_collector_test_sends_a_round_trip_and_shows_it_waiting(
    admin: Any, office: Office
) -> None:
    page = admin
    page.goto(office.url + "/office/settings/collectors")
    page.click("a:has-text('gw-1')")
    page.click("#ping")
    assert "等待管理机应答" in page.locator("#ping-results").inner_text()
    # The collector answers (the command loop as the bridge runs it, against a fake edge): the
    # open page shows it by itself (htmx polls the results), no reload.
    assert sync(office.db, {"gw-1": FakeEdge("gw-1")}, now=now_ts()) >= 1
    page.locator("#ping-results .ping-status", has_text="已应答").first.wait_for(timeout=10_000)


def test_the_operation_log_filters_shows_before_and_after_and_exports(
    admin: Any, office: Office, tmp_path: Path
) -> None:
    page = admin
    page.goto(office.url + "/office/settings/meters/m-102")
    page.fill("#f-name", "东门表")
    page.click("#meter-form button[type=submit]")
    expect(page.locator("body")).to_contain_text("已保存电表 m-102")
    page.goto(office.url + "/office/access/log")
    page.fill("#object", "m-102")
    page.click("form.filters button[type=submit]")
    assert "object=m-102" in page.url
    rows = page.locator("#oplog tbody tr")
    assert rows.count() >= 1
    book, _path = download_xlsx(page, lambda: page.click("#export"), tmp_path)
    sheet = book["操作日志"]
    assert "m-102" in sheet["A1"].value
    assert sheet["A2"].value == "时间"
    assert sheet["A3"].is_date
    assert {r[4] for r in sheet.iter_rows(min_row=3, values_only=True)} == {"m-102"}


@pytest.mark.parametrize(
    "path",
    [
        "/office/",
        "/office/password",
        "/office/access/operators",
        "/office/access/operators/new",
        "/office/access/roles",
        "/office/access/roles/new",
        "/office/access/log",
        "/office/settings/places",
        "/office/settings/collectors",
        "/office/settings/collectors/gw-1",
        "/office/settings/meters",
        "/office/settings/meters/m-101",
        "/office/settings/meters/import",
        "/office/settings/tariffs",
        "/office/settings/tariffs/new",
        "/office/settings/defaults",
    ],
)
def test_screens_have_no_serious_accessibility_violation(
    admin: Any, office: Office, path: str
) -> None:
    response = admin.goto(office.url + path)
    assert response.status == 200
    assert axe_violations(admin) == []


def test_site_defaults_mark_a_wrong_field_then_save_the_receipt_header(
    admin: Any, office: Office
) -> None:
    page = admin
    page.goto(office.url + "/office/settings/defaults")
    page.fill("#f-alarm1_micro_yuan", "10.00")
    page.fill("#f-alarm2_micro_yuan", "20.00")
    page.fill("#f-receipt_header", "影视基地物业售电")
    page.click("#defaults-form button[type=submit]")
    assert page.locator("#e-alarm2_micro_yuan").inner_text() == "报警金额2 不能高于报警金额1。"
    with office.db.session() as s:
        defaults = s.get(SiteDefaults, "studio")
        assert defaults is not None
        assert defaults.receipt_header is None
    page.fill("#f-alarm2_micro_yuan", "5.00")
    page.fill("#f-receipt_copies", "2")
    page.click("#defaults-form button[type=submit]")
    expect(page.locator("body")).to_contain_text("默认参数已保存")
    assert page.locator("#f-receipt_header").input_value() == "影视基地物业售电"
    with office.db.session() as s:
        defaults = s.get(SiteDefaults, "studio")
        assert defaults is not None
        assert defaults.receipt_copies == 2
        assert defaults.alarm1_micro_yuan == 10_000_000
        assert defaults.alarm2_micro_yuan == 5_000_000


def test_a_tiered_tariff_is_saved_with_its_steps(admin: Any, office: Office) -> None:
    page = admin
    page.goto(office.url + "/office/settings/tariffs/new")
    page.fill("#f-tariff_id", "tier-1")
    page.check("#kind-tiered")
    page.fill("#f-tier_from_0", "0")
    page.fill("#f-tier_price_0", "0.5")
    page.fill("#f-tier_from_1", "200")
    page.fill("#f-tier_price_1", "0.8")
    page.click("#tariff-form button[type=submit]")
    expect(page.locator("body")).to_contain_text("电价方案 tier-1：版本已保存")
    with office.db.session() as s:
        tariff = s.get(Tariff, "tier-1")
        assert tariff is not None
        steps = tariff.versions[0].body["tiers"]["steps"]
        assert steps == [[0, 500_000], [200, 800_000]]
