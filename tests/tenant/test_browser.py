"""The tenant site the way a tenant uses it: Debian's Chromium at 375 px (touch, a phone's user
agent) against the app served on loopback. Signing in with the code the phone received, the
first load's bytes, no horizontal scroll on any page, the top-up form marking its own bad input
in the page's language, paying through the sandbox and the result page following the order
live, the charts drawn, receipts (one sign-in: codes are rate limited); axe-core (no serious or critical violation) on every page.
The office's reconciliation page (run, cases, summary, Excel export) in the same module."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cloud.models import Meter
from cloud.payments import make_provider
from cloud.payments.orders import Payments
from cloud.payments.sandbox import SandboxProvider
from tests.support.browser import LiveServer, axe_violations, download_xlsx
from tests.tenant.support import TENANT_A, Site
from tests.web.support import PASSWORDS

METER = TENANT_A["meters"][0]
FIRST_LOAD_LIMIT = 150 * 1024


def _bytes_loaded(page: Any, url: str) -> int:
    """Load ``url`` in a fresh state of the page and add up every response body."""
    sizes: list[int] = []

    def count(response: Any) -> None:
        try:
            sizes.append(len(response.body()))
        except Exception:  # a redirect has no body
            sizes.append(0)

    page.on("response", count)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.remove_listener("response", count)
    return sum(sizes)


def _no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    inner = page.evaluate("() => window.innerWidth")
    assert width <= inner, f"{page.url}: content {width} px wide on a {inner} px screen"


def _axe(page: Any) -> None:
    found = axe_violations(page)
    assert found == [], f"{page.url}: {found}"


def _sign_in(page: Any, live: LiveServer, site: Site) -> None:
    page.goto(live.url + "/t/")
    assert "/t/login" in page.url
    page.fill("#f-unit", TENANT_A["unit"])
    page.fill("#f-phone", "138 0000 0001")
    page.click("#send-code")
    page.wait_for_selector("#code-sent")
    page.fill("#f-code", site.outbox.last_code(TENANT_A["phone"]))
    page.click("#verify")
    page.wait_for_url(f"{live.url}/t/m/{METER}/")


def test_a_tenant_tops_up_fifty_yuan_and_watches_it_arrive(
    phone: Any, live: LiveServer, site: Site
) -> None:
    page = phone
    login_bytes = _bytes_loaded(page, live.url + "/t/login")
    assert login_bytes < FIRST_LOAD_LIMIT, login_bytes
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    _no_horizontal_scroll(page)
    _axe(page)
    _sign_in(page, live, site)
    home_bytes = _bytes_loaded(page, f"{live.url}/t/m/{METER}/")
    assert home_bytes < FIRST_LOAD_LIMIT, home_bytes
    with site.db.session(readonly=True) as s:
        meter = s.get(Meter, METER)
        assert meter is not None
        before = meter.balance_micro_yuan
    assert page.locator("#status-pill").inner_text() in ("正常", "报警", "欠费", "已断电", "保电")
    _no_horizontal_scroll(page)
    _axe(page)

    page.click("nav.tabs >> text=用电")
    page.wait_for_selector("#chart-daily svg")
    page.wait_for_selector("#chart-monthly svg")
    assert page.locator("#chart-daily svg text", has_text="kWh").count() >= 1
    _no_horizontal_scroll(page)
    _axe(page)

    page.click("nav.tabs >> text=首页")
    page.click("#topup-link")
    page.check("#preset-other", force=True)
    page.fill("#f-amount", "99999")
    page.click("#pay")
    error = page.locator("#e-amount")
    assert error.inner_text() == "请输入 0.01 至 10000.00 元之间的金额。"
    assert page.locator("#f-amount").get_attribute("aria-invalid") == "true"
    _no_horizontal_scroll(page)
    _axe(page)
    page.click("button[value=en]")
    page.check("#preset-other", force=True)
    page.fill("#f-amount", "12.345")
    page.click("#pay")
    assert page.locator("#e-amount").inner_text() == "Enter an amount in yuan, like 12.50."
    page.click("button[value=zh_CN]")

    page.check("#preset-50", force=True)
    page.check("#provider-sandbox", force=True)
    page.click("#pay")
    page.wait_for_selector("#sandbox-confirm")
    assert page.locator("#sandbox-amount").inner_text() == "¥50.00"
    _axe(page)
    page.click("#sandbox-confirm")
    page.wait_for_selector("#order-live")
    page.wait_for_selector("#step-paid.done")
    assert "已支付" in page.locator("#order-message").inner_text()
    _no_horizontal_scroll(page)
    _axe(page)
    site.sync()  # the collector applies the credit while the page is open
    page.wait_for_selector("#step-credited.done", timeout=20_000)
    assert page.locator("#order-message").inner_text() == "已充入电表。"
    balance = page.locator("#order-balance").inner_text()
    assert balance == f"¥{(before + 50_000_000) // 1_000_000:,}.{(before // 10_000) % 100:02d}"

    page.click("text=缴费记录与票据")
    page.wait_for_selector("#records")
    _no_horizontal_scroll(page)
    _axe(page)
    page.locator("#records a", has_text="票据").first.click()
    page.wait_for_selector("#receipt")
    assert "人民币伍拾元整" in page.locator("#receipt").inner_text()
    _no_horizontal_scroll(page)
    _axe(page)


def test_the_office_reconciles_a_day_and_exports_its_cases(
    browser: Any, live: LiveServer, site: Site, tmp_path: Any
) -> None:
    # Yesterday: one payment notified as usual, one paid at the bank whose notification is lost.
    yesterday = dt.date.today() - dt.timedelta(days=1)
    noon = dt.datetime.combine(yesterday, dt.time(12), dt.timezone(dt.timedelta(hours=8)))

    def clock() -> float:
        return noon.timestamp()

    sandbox = make_provider("sandbox", {"directory": str(site.folder / "sandbox")}, clock=clock)
    assert isinstance(sandbox, SandboxProvider)
    then = Payments(site.db, {"sandbox": sandbox}, clock)
    seen, _ = then.start("sandbox", "m-201", 3000, notify_url="http://127.0.0.1/pay/notify/sandbox")
    then.notify("sandbox", sandbox.bank.pay(seen.out_trade_no))
    lost, _ = then.start("sandbox", "m-201", 1100, notify_url="http://127.0.0.1/pay/notify/sandbox")
    sandbox.bank.pay(lost.out_trade_no)
    site.sync()

    context = browser.new_context(locale="zh-CN", accept_downloads=True)
    page = context.new_page()
    try:
        page.goto(live.url + "/office/login")
        page.fill("#f-username", "supervisor")
        page.fill("#f-password", PASSWORDS["supervisor"])
        page.click("#login-submit")
        page.click("nav.office-menu >> text=支付对账")
        page.fill("#day", yesterday.isoformat())
        page.click("form.filters button[type=submit]")
        assert page.locator("#not-reconciled").is_visible()
        page.on("dialog", lambda d: d.accept())
        page.click("#run-now")
        page.wait_for_selector("#cases")
        rows = page.locator("#cases tbody tr")
        assert rows.count() == 1
        assert rows.first.get_attribute("data-kind") == "provider_only"
        assert lost.out_trade_no in rows.first.inner_text()
        assert "已处理" in rows.first.inner_text()  # queried and credited by the run
        summary = page.locator("#summary tbody tr", has_text=yesterday.isoformat())
        assert "沙箱支付" in summary.inner_text()
        _axe(page)
        wb, path = download_xlsx(page, lambda: page.click("#export"), tmp_path)
        assert wb.sheetnames == ["对账差错", "每日汇总"]
        cases = list(wb["对账差错"].iter_rows(min_row=3, values_only=True))
        assert len(cases) == 1
        assert cases[0][2] == lost.out_trade_no
        assert str(cases[0][3]) == "11"  # the bill's amount, exact yuan
        summaries = list(wb["每日汇总"].iter_rows(min_row=3, values_only=True))
        assert any(r[0] == yesterday.isoformat() and r[2] == 2 for r in summaries)
        assert path.suffix == ".xlsx"
    finally:
        context.close()
