"""售电管理 in Debian's Chromium against a live park (``tests/web/cashier_park.py``: ``gridvend
cloud serve``, ``gridvend cloud bridge``, a private Mosquitto and the simulated collector
``gw1``, one park for this module): a sale from the keyboard alone, printed, whose balance on
the page changes when the collector applies it; a sale booked while the collector is offline
and delivered when it is back; a double submit sells once; the per-sale limit and the hoarding
cap refuse with the reason; a refund with its second confirmation; a reversal refused once the
credit is consumed, and one that goes through; a cashier sees no 冲正 and no 拉闸; the records
exported and opened with openpyxl; axe-core on the sell page. Every money test checks the
ledger identity on the meters it touched."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect
from sqlalchemy import func, select

from cloud.models import AuditEntry, Receipt, Refund, Reversal, Sale
from shared import topics
from tests.e2e.park import A, B, C, wait_for
from tests.support.browser import axe_violations, download_xlsx
from tests.web import cashier_park
from tests.web.cashier_park import CashierPark

Y = 1_000_000


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CashierPark]:
    with cashier_park.running(tmp_path_factory.mktemp("cashier")) as running:
        yield running


def _sales_of(live: CashierPark, meter: str) -> list[Sale]:
    with live.park.db.session() as s:
        rows = list(s.scalars(select(Sale).where(Sale.meter_id == meter).order_by(Sale.id)))
        for r in rows:
            s.expunge(r)
        return rows


def _focused(page: Any, element_id: str) -> bool:
    """Whether ``element_id`` gets the keyboard focus (within 5 s: the browser moves it to an
    autofocus field when it next renders, a moment after the element is in the page)."""
    try:
        page.wait_for_function(
            "id => document.activeElement && document.activeElement.id === id",
            arg=element_id,
            timeout=5000,
        )
    except PlaywrightTimeout:  # the focus is elsewhere
        return False
    return True


def _sell_from_the_keyboard(page: Any, live: CashierPark, meter: str, amount: str) -> None:
    """Scan (type the meter no. and Enter) → amount → Enter → Enter (confirm)."""
    page.goto(live.url + "/office/sales/sell")
    assert _focused(page, "q")  # the search box has the focus
    page.keyboard.type(meter)
    page.keyboard.press("Enter")
    page.wait_for_selector("#info-panel")
    assert _focused(page, "f-amount")
    page.keyboard.type(amount)
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm-sale")
    assert _focused(page, "confirm-sale")
    page.keyboard.press("Enter")
    page.wait_for_selector("#receipt-preview")


def test_a_sale_from_the_keyboard_prints_and_the_balance_changes_when_the_collector_applies_it(
    page: Any, live: CashierPark
) -> None:
    live.login(page, "cashier")
    before = live.meter(A)["balance_micro_yuan"]
    _sell_from_the_keyboard(page, live, A, "100")
    assert re.search(r"/office/sales/documents/sale/\d+$", page.url)
    (sale,) = _sales_of(live, A)
    assert sale.amount_micro_yuan == 100 * Y
    assert sale.method == "cash"
    receipt = page.locator("#receipt-preview")
    assert sale.receipt_no in receipt.inner_text()
    assert "人民币壹佰元整" in receipt.inner_text()
    # The result page updates itself (htmx polling): no reload until the collector applied it.
    page.evaluate("window.__same_page = true")
    expect(page.locator("#dispatch-state")).to_have_text("已下发到表计", timeout=60_000)
    expected = f"¥{(before + 100 * Y) // Y:,}.00"
    expect(page.locator("#meter-balance")).to_have_text(expected, timeout=30_000)
    assert page.evaluate("window.__same_page") is True
    assert live.meter(A)["balance_micro_yuan"] == before + 100 * Y
    # Print from the keyboard: the print button has the focus.
    assert _focused(page, "print-receipt")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/printout\?auto=1.*"))
    till = page.locator("article.receipt.till")
    text = till.inner_text()
    for wanted in (sale.receipt_no, "售电小票", "张三", A, "人民币壹佰元整", "现金", "web-cashier"):
        assert wanted in text, wanted
    assert "补打" not in text
    # A second print is a reprint, marked on the receipt and logged with its count.
    page.goto(live.url + f"/office/sales/documents/sale/{sale.id}")
    page.click("#print-receipt")
    page.wait_for_url(re.compile(r".*/printout\?auto=1.*"))
    assert "补打（第 2 次打印）" in page.locator("article.receipt").inner_text()
    with live.park.db.session() as s:
        prints = s.scalars(
            select(Receipt.prints).where(Receipt.kind == "sale", Receipt.record_id == sale.id)
        ).one()
        logged = s.scalars(
            select(AuditEntry.after).where(
                AuditEntry.action == "receipt.reprint", AuditEntry.target_id == sale.receipt_no
            )
        ).all()
    assert prints == 2
    assert [entry["prints"] for entry in logged if entry] == [2]


def test_the_confirm_answers_with_the_result_in_the_page_and_the_language_switch_stays_on_it(
    page: Any, live: CashierPark
) -> None:
    """The confirm's htmx answer replaces <main> only: the header and the menu stay, the title
    and the address are the receipt's, and switching the language there reloads that receipt
    (not the confirm's POST-only address)."""
    live.login(page, "cashier")
    page.goto(live.url + f"/office/sales/sell?meter={B}")
    page.fill("#f-amount", "5")
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm-sale")
    page.evaluate("window.__same_page = true")
    page.keyboard.press("Enter")
    page.wait_for_selector("#receipt-preview")
    assert re.search(r"/office/sales/documents/sale/\d+$", page.url)
    assert page.evaluate("window.__same_page") is True  # no page load: htmx swapped <main>
    assert page.title().startswith("售电小票 ")
    assert page.locator("main").count() == 1
    assert page.locator("nav.office-menu").get_by_text("售电管理").is_visible()
    assert page.locator("#signed-in-as").inner_text().endswith("(web-cashier)")
    assert _focused(page, "print-receipt")
    receipt_url = page.url
    page.click("#language-form button[value=en]")
    page.wait_for_load_state()
    assert page.url == receipt_url
    assert "Sale receipt" in page.locator("#receipt-preview").inner_text()
    page.click("#language-form button[value=zh_CN]")
    page.wait_for_load_state()
    assert page.url == receipt_url
    wait_for("the sale to apply", lambda: _sales_of(live, B)[-1].status == "applied", 60)
    live.meter(B)


def test_a_double_submit_of_the_confirm_form_sells_once(page: Any, live: CashierPark) -> None:
    live.login(page, "cashier")
    page.goto(live.url + f"/office/sales/sell?meter={B}")
    page.fill("#f-amount", "30")
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm-sale")
    fields = {
        name: page.locator(f"#confirm-form input[name={name}]").input_value()
        for name in ("csrf_token", "key", "amount", "method", "note")
    }
    first = page.request.post(live.url + f"/office/sales/sell/{B}", form=fields)
    second = page.request.post(live.url + f"/office/sales/sell/{B}", form=fields)
    assert first.url == second.url  # both end on the same document
    sales = [s for s in _sales_of(live, B) if s.idempotency_key == fields["key"]]
    assert len(sales) == 1
    wait_for("the sale to apply", lambda: _sales_of(live, B)[-1].status == "applied", 60)
    live.meter(B)


def test_above_the_per_sale_limit_or_the_hoarding_cap_the_sale_is_refused_with_the_reason(
    page: Any, live: CashierPark
) -> None:
    live.login(page, "supervisor")
    count = len(_sales_of(live, C))
    page.goto(live.url + f"/office/sales/sell?meter={C}")
    page.fill("#f-amount", "10000.01")
    assert page.locator("#warn-max").is_visible()  # shown while typing
    page.keyboard.press("Enter")
    expect(page.locator("#f-amount")).to_have_attribute("aria-invalid", "true")
    assert page.locator("#e-amount").inner_text() == (
        "已拒绝：¥10,000.01 超过本园区单笔售电上限 ¥10,000.00。"
    )
    # A hoarding cap of 150 yuan on meter C (its own setting, dispatched like any other).
    live.api.post(
        f"/meters/{C}/commands",
        {"op": "dispatch_settings", "args": {"hoarding_cap_micro_yuan": 150 * Y}},
        ok=202,
    )
    page.goto(live.url + f"/office/sales/sell?meter={C}")
    assert page.locator("#info-cap").inner_text() == "¥150.00"
    page.fill("#f-amount", "200")
    assert page.locator("#warn-cap").is_visible()
    page.keyboard.press("Enter")
    expect(page.locator("#e-amount")).to_be_visible()
    message = page.locator("#e-amount").inner_text()
    assert "超过囤积金额上限 ¥150.00" in message
    assert "本次最多可售 ¥150.00" in message
    assert len(_sales_of(live, C)) == count  # nothing sold
    live.meter(C)


def _gw1_online(live: CashierPark) -> bool:
    gateways = live.api.get("/gateways")["gateways"]
    return bool(next(g for g in gateways if g["id"] == "gw1")["online"])


def _last_will(live: CashierPark) -> None:
    """Publish what the broker publishes for a collector that is gone: its retained
    ``offline`` status (its last will)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-last-will")
    client.connect("127.0.0.1", live.broker.port)
    client.loop_start()
    try:
        client.publish(
            topics.status("park", "gw1"), topics.OFFLINE, qos=1, retain=True
        ).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def _stop_collector(live: CashierPark) -> None:
    """Stop gw1's agent (SIGTERM: it says ``offline`` and disconnects) until the cloud sees it
    offline.

    Seen in about one run in five under load: the cloud keeps gw1 online after the agent's
    ``offline`` — an uplink envelope reaches the bridge after the status (the agent's sync task
    can still publish while it closes; reported, not this module's to fix). When that happens
    the test publishes the collector's last will, as the broker would for a vanished one."""
    live.park.stop_agent("gw1")
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        if not _gw1_online(live):
            return
        time.sleep(0.2)
    _last_will(live)
    wait_for("the cloud to see gw1 offline", lambda: not _gw1_online(live), 30)


def test_a_sale_while_the_collector_is_offline_is_booked_and_delivered_when_it_is_back(
    page: Any, live: CashierPark
) -> None:
    live.login(page, "cashier")
    _stop_collector(live)
    try:
        before = live.meter(C)["balance_micro_yuan"]
        _sell_from_the_keyboard(page, live, C, "20")
        state = page.locator("#dispatch-state")
        assert state.inner_text() == "已记账，表计上线后自动下发"
        assert "已记账，表计上线后自动下发" in page.locator("#receipt-preview").inner_text()
    finally:
        live.park.start_agent("gw1")
    expect(page.locator("#dispatch-state")).to_have_text("已下发到表计", timeout=90_000)
    assert live.meter(C)["balance_micro_yuan"] >= before + 20 * Y - 1 * Y  # minus a little use
    assert _sales_of(live, C)[-1].status == "applied"


def test_a_refund_needs_a_reason_and_a_second_confirmation(page: Any, live: CashierPark) -> None:
    live.login(page, "cashier")
    wait_for("meter A's sale to apply", lambda: live.meter(A)["balance_micro_yuan"] > 50 * Y, 60)
    before = live.meter(A)["balance_micro_yuan"]
    page.goto(live.url + "/office/sales/refund")
    page.keyboard.type(A)
    page.keyboard.press("Enter")
    page.wait_for_selector("#refund-form")
    page.keyboard.type("40")
    page.keyboard.press("Enter")  # no reason: the field is marked, nothing refunded
    expect(page.locator("#f-reason")).to_have_attribute("aria-invalid", "true")
    page.fill("#f-reason", "租户退租")
    page.click("#refund-next")
    page.wait_for_selector("#confirm-refund")
    assert page.locator("#confirm-reason").inner_text() == "租户退租"
    # The second confirmation: the browser's dialog names the amount and the meter.
    questions: list[str] = []

    def answer(dialog: Any) -> None:
        questions.append(dialog.message)
        if len(questions) == 1:
            dialog.dismiss()
        else:
            dialog.accept()

    page.on("dialog", answer)
    page.click("#confirm-refund")  # dismissed: nothing happens
    with live.park.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Refund)) == 0
    page.click("#confirm-refund")
    page.wait_for_selector("article.receipt.slip")
    assert "¥40.00" in questions[0]
    assert A in questions[0]
    slip = page.locator("article.receipt.slip").inner_text()
    assert "退电单" in slip
    assert "人民币肆拾元整" in slip  # a refund prints as a positive amount
    assert "租户退租" in slip
    expect(page.locator("#dispatch-state")).to_have_text("已下发到表计", timeout=60_000)
    m = live.meter(A)
    assert m["refunds_micro_yuan"] == 40 * Y
    assert m["balance_micro_yuan"] <= before - 40 * Y


def test_a_reversal_is_refused_once_the_credit_is_consumed_and_goes_through_before(
    page: Any, live: CashierPark
) -> None:
    live.login(page, "supervisor")
    # A sale of 10 yuan on B, applied, then consumed by a heavy load.
    _sell_from_the_keyboard(page, live, B, "10")
    sale = _sales_of(live, B)[-1]
    wait_for("the sale to apply", lambda: _sales_of(live, B)[-1].status == "applied", 60)
    live.park.set_load(B, 400_000)
    try:
        wait_for(
            "meter B to use up more than 10 yuan",
            lambda: live.meter(B)["balance_micro_yuan"] < 10 * Y,
            90,
        )
    finally:
        live.park.set_load(B, 0)
    page.goto(live.url + "/office/sales/reversal")
    page.locator(f"tr[data-sale='{sale.id}'] a").click()
    page.fill("#f-reason", "录错金额")
    page.once("dialog", lambda d: d.accept())
    page.click("#confirm-reversal")
    error = page.locator("#form-error").inner_text()
    assert error.startswith("冲正被拒绝：")
    assert "cannot cover reversing" in error  # the reason the service gives
    with live.park.db.session() as s:
        assert s.scalars(select(Reversal).where(Reversal.sale_id == sale.id)).first() is None
    # A sale not used yet reverses: the collector takes the purchase back.
    live.park.set_load(A, 0)
    _sell_from_the_keyboard(page, live, A, "50")
    fresh = _sales_of(live, A)[-1]
    wait_for("the sale to apply", lambda: _sales_of(live, A)[-1].status == "applied", 60)
    page.goto(live.url + f"/office/sales/documents/sale/{fresh.id}")
    page.click("#reverse-sale")
    page.fill("#f-reason", "重复收费")
    page.once("dialog", lambda d: d.accept())
    page.click("#confirm-reversal")
    page.wait_for_selector("article.receipt.slip")
    assert fresh.receipt_no in page.locator("article.receipt.slip").inner_text()  # 原单号
    expect(page.locator("#dispatch-state")).to_have_text("已下发到表计", timeout=60_000)
    # The original is marked in the records, and offers no second reversal.
    page.goto(live.url + f"/office/sales/records?kind=sale&q={fresh.receipt_no}")
    row = page.locator(f"tr[data-number='{fresh.receipt_no}']")
    assert "已冲正" in row.inner_text()
    assert row.locator("a:has-text('冲正')").count() == 0
    live.meter(A)
    live.meter(B)


def test_a_cashier_sees_no_reversal_and_no_trip_a_supervisor_sees_both(
    page: Any, live: CashierPark, browser: Any
) -> None:
    live.login(page, "cashier")
    page.goto(live.url + f"/office/sales/sell?meter={A}")
    menu = page.locator("nav.office-menu").inner_text()
    assert "售电" in menu
    assert "冲正" not in menu
    assert page.locator("#trip").count() == 0
    assert page.locator("main button:has-text('拉闸')").count() == 0
    page.goto(live.url + "/office/sales/records?kind=sale")
    assert page.locator("#records tbody tr").count() > 0
    assert page.locator("#records tbody a:has-text('冲正')").count() == 0
    assert page.goto(live.url + "/office/sales/reversal").status == 403
    other = browser.new_context(locale="zh-CN").new_page()
    try:
        live.login(other, "supervisor")
        other.goto(live.url + f"/office/sales/sell?meter={A}")
        assert "冲正" in other.locator("nav.office-menu").inner_text()
        assert other.locator("#trip").inner_text() == "拉闸"
        other.goto(live.url + "/office/sales/records?kind=sale&status=applied")
        assert other.locator("#records tbody a:has-text('冲正')").count() > 0
    finally:
        other.context.close()


def test_the_filtered_records_export_opens_in_openpyxl_with_every_row_and_the_totals(
    page: Any, live: CashierPark, tmp_path: Path
) -> None:
    live.login(page, "cashier")
    page.goto(live.url + f"/office/sales/records?kind=sale&q={A}&per_page=10")
    total = int(re.sub(r"\D", "", page.locator("#list-total").inner_text()))
    book, path = download_xlsx(page, lambda: page.click("#export"), tmp_path)
    assert path.suffix == ".xlsx"
    sheet = book.worksheets[0]
    assert sheet.title == "售电记录"
    rows = list(sheet.iter_rows(values_only=True))
    assert "类型: 售电" in str(rows[0][0])
    header = list(rows[1])
    assert header[:3] == ["单据号", "类型", "时间"]
    body = rows[2:-1]
    assert len(body) == total
    with live.park.db.session() as s:
        sold = s.scalars(
            select(func.sum(Sale.amount_micro_yuan)).where(
                Sale.meter_id == A, Sale.status != "rejected"
            )
        ).one()
    assert rows[-1][header.index("售电（元）")] * Y == sold
    assert {r[header.index("表号")] for r in body} == {A}
    assert all(r[header.index("类型")] == "售电" for r in body)
    assert hasattr(body[0][header.index("时间")], "year")  # a real date-time
    live.meter(A)


def test_the_sell_page_has_no_serious_accessibility_violation(page: Any, live: CashierPark) -> None:
    live.login(page, "cashier")
    page.goto(live.url + "/office/sales/sell")
    assert axe_violations(page) == []
    page.goto(live.url + f"/office/sales/sell?meter={A}")
    page.fill("#f-amount", "12.5")
    assert axe_violations(page) == []
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm-sale")
    assert axe_violations(page) == []
