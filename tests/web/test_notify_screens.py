"""The office's notify screens (issue 13) in Debian's Chromium against a live office on a real
database: the outbox with its filters, counts and a resend (a sign-in code's digits never
shown), its export opened with openpyxl, the channels' health with the down alarm, a site's
template wording (a wrong placeholder marked on its field, nothing saved), and a tenant's
notification numbers (added, paused, removed; audited). Permissions: who may resend, edit
templates and numbers, checked through the test client's real sign-in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from cloud.audit import Actor
from cloud.models import (
    Account,
    Alarm,
    AuditEntry,
    NotifyChannel,
    NotifyRecipient,
    OutboxMessage,
    now_ts,
)
from cloud.money import accounts
from cloud.notify import outbox, results, sources
from cloud.notify.channels.base import Receipt
from cloud.notify.errors import Rejected
from tests.support.browser import axe_violations, download_xlsx
from tests.web.support import PASSWORDS, Office, start_office

PARAMS = {"sign": "园区电费", "unit": "A-101", "balance": "12.34"}
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Office]:
    live = start_office(tmp_path_factory.mktemp("notify-office"))
    db = live.db
    with db.session() as s:
        account = accounts.open_account(
            s, {"name": "一号影棚", "phone": "13800138000"}, ["m-101"], Actor("test")
        )
        live.extra["customer"] = account.customer_id
        policy = outbox.Policy(route=("modem",), quiet_start_min=None, quiet_end_min=None)
        now = now_ts()
        ids = {}
        for key, kind in (("sent", "alarm1"), ("failed", "alarm2"), ("queued", "arrears")):
            ids[key] = outbox.enqueue(
                s, key=f"screen:{key}", kind=kind, recipient="13800138000", params=PARAMS,
                meter_id="m-101", site_id="studio", customer_id=account.customer_id,
            )  # fmt: skip
        ids["code"] = sources.send_login_code(s, "13900139000", "246810", site_id="studio")
        claimed = outbox.claim(s, "modem", policy, now, 10)
        assert len(claimed) == 4
        results.sent(s, ids["sent"], Receipt("17", refs=("17",)), now)
        results.failed_attempt(s, ids["failed"], Rejected("CMS 1 unassigned number"), policy, now)
        results.sent(s, ids["code"], Receipt("18", refs=("18",)), now)
        outbox.release(s, [ids["queued"]], now)
        s.add(NotifyChannel(name="modem", kind="modem", state="down",
                            health={"state": "down", "reason": "no answer after every recovery step",
                                    "signal_rssi": 12, "registered": True}))  # fmt: skip
        s.add(Alarm(kind="sms_down:modem", detail={"channel": "modem"}, active=True))
        live.extra["ids"] = ids
    try:
        yield live
    finally:
        assert live.server is not None
        live.server.close()
        db.dispose()


def _client(office: Office, role: str) -> tuple[Any, str]:
    client = office.app.test_client()
    page = client.get("/office/login").get_data(as_text=True)
    token = _TOKEN.search(page).group(1)  # type: ignore[union-attr]
    resp = client.post(
        "/office/login", data={"username": role, "password": PASSWORDS[role], "csrf_token": token}
    )
    assert resp.status_code == 302
    token = _TOKEN.search(client.get("/office/password").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    return client, token


def test_the_outbox_lists_states_filters_and_never_shows_a_sign_in_code(
    page: Any, office: Office
) -> None:
    office.login(page, "supervisor")
    page.goto(office.url + "/office/notify/outbox")
    rows = page.locator("#outbox tbody tr")
    expect(rows).to_have_count(4)
    assert "246810" not in page.content()  # masked: •••••• in the text
    assert "••••••" in page.locator("#outbox").inner_text()
    counts = page.locator("#state-counts")
    expect(counts.locator('[data-state="sent"]')).to_have_text("已发出: 2")
    expect(counts.locator('[data-state="failed"]')).to_have_text("失败: 1")
    failed = page.locator('#outbox tr[data-state="failed"]')
    assert "CMS 1 unassigned number" in failed.inner_text()
    page.select_option("#state", "failed")  # data-autosubmit: the filter is in the URL
    page.wait_for_url(re.compile(r"state=failed"))
    expect(rows).to_have_count(1)
    assert axe_violations(page) == []
    # Resend the failed one: confirm, it is queued again, and the operation log says who.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f'[data-resend="{office.extra["ids"]["failed"]}"]')
    expect(page.locator(".alert-success")).to_contain_text("已重新排队发送")
    with office.db.session() as s:
        row = s.get(OutboxMessage, office.extra["ids"]["failed"])
        assert (row.state, row.resends) == ("queued", 1)
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "notify.resend")).one()
        assert entry.target_id == str(row.id)


def test_the_outbox_export_is_the_filtered_set(page: Any, office: Office, tmp_path: Path) -> None:
    office.login(page, "viewer")
    page.goto(office.url + "/office/notify/outbox?kind=alarm1")
    book, _path = download_xlsx(page, lambda: page.click("#export"), tmp_path)
    values = [list(row) for row in book.active.iter_rows(values_only=True)]
    text = "\n".join(" ".join(str(c) for c in row if c is not None) for row in values)
    assert "一级报警" in text
    assert "二级报警" not in text
    assert "【园区电费】您好，单元A-101电表余额12.34元" in text
    # A viewer may look but not resend: no button.
    assert page.locator("[data-resend]").count() == 0


def test_channel_health_shows_the_down_modem_and_its_alarm(page: Any, office: Office) -> None:
    office.login(page, "viewer")
    page.goto(office.url + "/office/notify/channels")
    row = page.locator('#channels tr[data-channel="modem"]')
    expect(row).to_contain_text("故障")
    expect(row).to_contain_text("no answer after every recovery step")
    expect(row).to_contain_text("信号 12/31")
    expect(row.locator("[data-alarm]")).to_be_visible()
    assert axe_violations(page) == []


def test_a_site_wording_with_a_wrong_placeholder_is_marked_and_a_good_one_is_used(
    page: Any, office: Office
) -> None:
    office.login(page, "admin")
    page.goto(office.url + "/office/notify/templates?site=studio")
    box = page.locator("#t-alarm1-zh_CN")
    box.fill("【{sign}】{unit} 余额 {money} 元")
    box.locator("xpath=ancestor::form").locator("button").click()
    expect(page.locator("#e-alarm1-zh_CN")).to_contain_text("money")
    expect(page.locator("#form-errors")).to_be_visible()
    page.locator("#t-alarm1-zh_CN").fill("【{sign}】单元{unit}余额仅剩{balance}元，请充值。")
    page.locator("#t-alarm1-zh_CN").locator("xpath=ancestor::form").locator("button").click()
    expect(page.locator(".alert-success")).to_be_visible()
    expect(
        page.locator('#templates tr[data-kind="alarm1"][data-lang="zh_CN"] [data-own]')
    ).to_be_visible()
    with office.db.session() as s:
        mid = outbox.enqueue(s, key="screen:wording", kind="alarm1", recipient="13800138000",
                             params=PARAMS, site_id="studio")  # fmt: skip
        assert s.get(OutboxMessage, mid).text == "【园区电费】单元A-101余额仅剩12.34元，请充值。"
    assert axe_violations(page) == []


def test_a_tenants_numbers_are_added_paused_and_removed(page: Any, office: Office) -> None:
    customer = office.extra["customer"]
    office.login(page, "cashier")
    page.goto(office.url + "/office/notify/numbers")
    page.click(f'#customers tr[data-customer="{customer}"] a')
    expect(page.locator("#numbers")).to_contain_text("13800138000")  # the phone on file
    expect(page.locator("#numbers")).to_contain_text("登记的手机号")
    expect(page.locator("#numbers")).to_contain_text("使用中")
    page.fill("#f-phone", "not a phone")
    page.click("#add-number-submit")
    expect(page.locator("#f-phone")).to_have_attribute("aria-invalid", "true")
    page.fill("#f-phone", "+8613700137000")
    page.select_option("#f-lang", "en")
    page.check("#k-arrears")
    page.check("#k-topup")
    page.click("#add-number-submit")
    expect(page.locator(".alert-success")).to_be_visible()
    row = page.locator('#numbers tr[data-number="+8613700137000"]')
    expect(row).to_contain_text("英文")
    expect(row).to_contain_text("欠费")
    assert page.locator('#numbers tr[data-number="13800138000"]').count() == 0  # own numbers now
    row.get_by_role("button", name="暂停").click()
    expect(row).to_contain_text("已暂停")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('[data-remove="+8613700137000"]')
    expect(page.locator("#numbers")).to_contain_text("13800138000")
    assert axe_violations(page) == []
    with office.db.session() as s:
        assert s.scalars(select(NotifyRecipient)).all() == []
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        assert {"notify.number_add", "notify.number_pause", "notify.number_remove"} <= set(actions)


def test_who_may_resend_edit_templates_and_numbers(office: Office) -> None:
    ids, customer = office.extra["ids"], office.extra["customer"]
    viewer, vtoken = _client(office, "viewer")
    cashier, ctoken = _client(office, "cashier")
    assert viewer.get("/office/notify/outbox").status_code == 200
    assert viewer.post(f"/office/notify/outbox/{ids['sent']}/resend",
                       data={"csrf_token": vtoken}).status_code == 403  # fmt: skip
    assert cashier.get("/office/notify/templates").status_code == 403
    assert viewer.post(f"/office/notify/numbers?customer={customer}",
                       data={"csrf_token": vtoken, "action": "add", "phone": "13600136000",
                             "lang": "zh_CN"}).status_code == 403  # fmt: skip
    # A sign-in code is never resent from the office, and an unknown message is a 404.
    supervisor, stoken = _client(office, "supervisor")
    resp = supervisor.post(f"/office/notify/outbox/{ids['code']}/resend",
                           data={"csrf_token": stoken})  # fmt: skip
    assert resp.status_code == 302
    with office.db.session() as s:
        assert s.get(OutboxMessage, ids["code"]).state == "sent"
    assert supervisor.post("/office/notify/outbox/999999/resend",
                           data={"csrf_token": stoken}).status_code == 404  # fmt: skip
    # A duplicate number is refused on its field, nothing written.
    for _ in range(2):
        resp = cashier.post(f"/office/notify/numbers?customer={customer}",
                            data={"csrf_token": ctoken, "action": "add",
                                  "phone": "13600136000", "lang": "zh_CN"})  # fmt: skip
    assert resp.status_code == 422
    with office.db.session() as s:
        assert len(s.scalars(select(NotifyRecipient)).all()) == 1


def test_the_customer_page_links_to_the_tenants_numbers(page: Any, office: Office) -> None:
    office.login(page, "viewer")
    with office.db.session() as s:
        account = s.scalars(select(Account)).first()
        assert account is not None
    page.goto(office.url + f"/office/customers/accounts/{account.id}")
    page.click("#manage-sms-numbers")
    expect(page.locator("h1")).to_contain_text("通知号码")
