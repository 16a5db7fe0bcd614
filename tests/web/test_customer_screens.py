"""客户管理 in Debian's Chromium against a live park (``tests/web/customers_park.py``: ``gridvend
cloud serve``, ``gridvend cloud bridge``, a private Mosquitto and the simulated collector
``gw1``; one park for this module): an account opened through the wizard (unit → meters →
tenant → thresholds from the site's defaults → transfer-in and first purchase → recap) whose
result page follows every command to applied; a bad value marked on its step with nothing
written; an account closed with its settlement followed to the A5 slip; a meter swapped with
its balance moved to the new meter; the tenant's page; reading history and the account lists
exported and opened with openpyxl; axe-core on the wizard, the tenant page and the close
result. Every money test checks the ledger identity on each meter it touched."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from cloud.models import Account, Customer, Meter, MeterSwap, Sale, Settlement
from tests.e2e.park import wait_for
from tests.support.browser import axe_violations, download_xlsx
from tests.web import customers_park
from tests.web.customers_park import LivePark, M, Y


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePark]:
    with customers_park.running(tmp_path_factory.mktemp("customers")) as running:
        yield running


def _accounts_named(live: LivePark, name: str) -> list[Account]:
    with live.park.db.session() as s:
        rows = list(s.scalars(select(Account).join(Customer).where(Customer.name == name)))
        for r in rows:
            s.expunge(r)
        return rows


def test_an_account_opened_through_the_wizard_reaches_its_collector(
    page: Any, live: LivePark
) -> None:
    live.login(page, "cashier")
    page.goto(live.url + "/office/customers/open")
    assert axe_violations(page) == []
    page.locator('#units tr[data-unit="U1"] a').click()
    expect(page.locator(f"#meter-{M[1]}")).to_be_checked()  # the unit's free meter
    page.click("#wizard-next")
    # The tenant: a bad phone is marked on its field and nothing is written.
    page.fill("#f-name", "郑七")
    page.fill("#f-phone", "not-a-phone")
    page.click("#wizard-next")
    expect(page.locator("#f-phone")).to_have_attribute("aria-invalid", "true")
    assert "手机号" in page.locator("#e-phone").inner_text()
    assert _accounts_named(live, "郑七") == []
    page.fill("#f-phone", "13900001111")
    page.click("#wizard-next")
    # Tariff and thresholds: the site's defaults are filled in.
    assert page.locator("#f-hoarding_cap").input_value() == "30000.00"
    assert axe_violations(page) == []
    page.fill("#f-alarm1", "20")
    page.fill("#f-alarm2", "10")
    page.click("#wizard-next")
    page.fill(f"#f-transfer_{M[1]}", "15")
    page.fill("#f-transfer_source", "旧表 OLD-1")
    page.fill(f"#f-purchase_{M[1]}", "50")
    page.click("#wizard-next")
    recap = page.locator("#recap").inner_text()
    assert "郑七" in recap
    assert M[1] in recap
    assert page.locator("#recap-purchase").inner_text().startswith("¥50.00")
    assert page.locator("#recap-transfer").inner_text() == "¥15.00"
    page.on("dialog", lambda d: d.accept())
    page.click("#wizard-next")
    page.wait_for_url(re.compile(r".*/office/customers/open/result/\d+$"))
    assert axe_violations(page) == []
    page.evaluate("window.__same_page = true")
    expect(page.locator("#open-progress")).to_have_attribute("data-open", "no", timeout=90_000)
    assert page.evaluate("window.__same_page") is True
    ops = page.locator("#open-commands tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.op, r.dataset.status])"
    )
    assert [op for op, _ in ops] == ["settings", "open_account", "transfer_in", "credit"]
    assert all(status in ("applied", "verified") for _, status in ops), ops
    expect(page.locator(f'#open-meters tr[data-meter="{M[1]}"]')).to_have_attribute(
        "data-state", "opened", timeout=30_000
    )
    (account,) = _accounts_named(live, "郑七")
    with live.park.db.session() as s:
        meter = s.get(Meter, M[1])
        assert meter is not None
        assert meter.account_id == account.id
        assert meter.alarm1_micro_yuan == 20 * Y  # changed from the default: its own
        assert meter.hoarding_cap_micro_yuan is None  # left at the default: still the site's
        sale = s.scalars(select(Sale).where(Sale.meter_id == M[1])).one()
        assert sale.amount_micro_yuan == 50 * Y
        assert sale.status == "applied"
    m = live.meter(M[1])
    assert m["balance_micro_yuan"] == 65 * Y
    # The first purchase's receipt, from the result page.
    page.locator("#open-receipts a").first.click()
    assert "人民币伍拾元整" in page.locator("#receipt-preview").inner_text()


def test_the_tenant_page_shows_meters_documents_usage_and_numbers(
    page: Any, live: LivePark
) -> None:
    live.login(page, "viewer")
    with live.park.db.session() as s:
        account_id = s.scalars(select(Meter.account_id).where(Meter.id == M[2])).one()
    page.goto(live.url + f"/office/customers/accounts/{account_id}")
    assert "赵一" in page.locator("h1").inner_text()
    assert M[2] in page.locator("#account-meters").inner_text()
    assert "13800000000" in page.locator("#sms-numbers").inner_text()
    assert "转入" in page.locator("#account-documents").inner_text()
    expect(page.locator("#chart-usage svg")).to_have_count(1)  # ECharts drew the sparkline
    expect(page.locator("#close-account")).to_have_count(0)  # a viewer closes nothing
    assert axe_violations(page) == []


def test_closing_an_account_settles_its_meter_and_prints_the_settlement_slip(
    page: Any, live: LivePark
) -> None:
    live.login(page, "cashier")
    with live.park.db.session() as s:
        account_id = s.scalars(select(Meter.account_id).where(Meter.id == M[4])).one()
    page.goto(live.url + f"/office/customers/accounts/{account_id}")
    page.click("#close-account")
    row = page.locator(f'#close-review tr[data-meter="{M[4]}"]')
    assert row.get_attribute("data-outcome") == "refund"
    assert "退款 ¥60.00" in row.inner_text()
    page.on("dialog", lambda d: d.accept())
    page.click("#close-submit")
    page.wait_for_url(re.compile(r".*/close/result$"))
    expect(page.locator("#settlements")).to_have_attribute("data-open", "no", timeout=90_000)
    settled = page.locator(f'#settlement-rows tr[data-meter="{M[4]}"]')
    assert settled.get_attribute("data-outcome") == "refund"
    assert "¥60.00" in settled.inner_text()
    expect(page.locator("#settlement-done")).to_be_visible()
    assert axe_violations(page) == []
    with live.park.db.session() as s:
        item = s.scalars(select(Settlement).where(Settlement.meter_id == M[4])).one()
        assert item.refund_due_micro_yuan == 60 * Y
        assert s.get(Account, account_id).status == "closed"
    m = live.meter(M[4])
    assert m["balance_micro_yuan"] == 0
    assert m["state"] == "closed"
    # The A5 settlement slip, printed from the cashier's printout.
    page.click(f"#slip-{item.id}")
    page.click("#print-receipt")
    page.wait_for_url(re.compile(r".*/printout\?auto=1.*"))
    slip = page.locator("article.receipt").first.inner_text()
    assert "孙三" in slip
    assert M[4] in slip
    assert "陆拾元整" in slip
    # The closed account is in 销户记录 with its refund.
    page.goto(live.url + "/office/customers/closed")
    assert "孙三" in page.locator("#closed-accounts").inner_text()
    assert page.locator("#refund-total").inner_text() == "60.00"


def test_a_meter_swap_moves_the_balance_to_the_new_meter(page: Any, live: LivePark) -> None:
    live.login(page, "supervisor")
    with live.park.db.session() as s:
        account_id = s.scalars(select(Meter.account_id).where(Meter.id == M[5])).one()
    page.goto(live.url + f"/office/customers/accounts/{account_id}/swap?old={M[5]}")
    assert page.locator("#old-balance").inner_text() == "¥80.00"
    assert axe_violations(page) == []
    page.on("dialog", lambda d: d.accept())
    page.select_option("#f-new", M[6])
    page.fill("#f-final_kwh", "abc")
    page.click("#swap-submit")
    expect(page.locator("#f-final_kwh")).to_have_attribute("aria-invalid", "true")
    with live.park.db.session() as s:
        assert s.scalars(select(MeterSwap)).first() is None  # nothing written
    page.fill("#f-final_kwh", "")
    page.click("#swap-submit")
    page.wait_for_url(re.compile(r".*/office/customers/swaps/\d+$"))
    expect(page.locator("#swap-progress")).to_have_attribute("data-state", "done", timeout=120_000)
    assert page.locator("#swap-moved").inner_text().startswith("¥80.00")
    old, new = live.meter(M[5]), live.meter(M[6])
    assert old["balance_micro_yuan"] == 0
    assert old["state"] == "closed"
    assert new["balance_micro_yuan"] == 80 * Y
    assert new["account"] == account_id
    wait_for("the new meter open", lambda: live.meter(M[6])["state"] == "opened", 30)


def test_reading_history_and_the_account_lists_export_to_excel(
    page: Any, live: LivePark, tmp_path: Path
) -> None:
    live.login(page, "viewer")
    page.goto(live.url + f"/office/customers/meters/{M[7]}/readings")
    expect(page.locator("#readings tbody tr[data-reading]").first).to_be_visible()
    book, _path = download_xlsx(page, lambda: page.click("#export"), tmp_path)
    sheet = book.worksheets[0]
    assert sheet.title == "抄表历史"
    rows = list(sheet.iter_rows(values_only=True))
    header = next(i for i, r in enumerate(rows) if r and r[0] == "抄表时间")
    body = [r for r in rows[header + 1 :] if r and r[2]]
    assert body
    assert {r[2] for r in body} == {M[7]}
    assert hasattr(body[0][0], "year")  # a real date-time
    page.goto(live.url + "/office/customers/accounts?q=周五")
    assert page.locator("#list-total").inner_text() == "共 1 条"
    book, _path = download_xlsx(page, lambda: page.click("#export"), tmp_path)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    header = next(i for i, r in enumerate(rows) if r and r[0] == "账户号")
    (row,) = [r for r in rows[header + 1 :] if r and r[0] and r[0] != "合计"]
    assert row[2] == "周五"
    balance = rows[header].index("剩余金额（元）")
    assert row[balance] == live.meter(M[7])["balance_micro_yuan"] / Y
