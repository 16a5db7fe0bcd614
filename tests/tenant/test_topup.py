"""Top-up, records, receipts and "request power on" through the tenant site (Flask's client,
real SQLite, the sandbox provider, collectors played by FakeEdge): a preset amount is paid and
credited exactly once; the form's own bad input (out of range, not an amount, an unknown
provider) marks the field in the page's language and creates nothing; the limits follow the
site's per-sale limit and the hoarding cap; in-app browsers get the open-in-browser hint."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select, update

from cloud.models import Command, Meter, PaymentOrder, Sale, SiteDefaults
from cloud.payments import config as payment_config
from cloud.payments import lifecycle as lc
from cloud.web import create_app
from tests.payments.players import alipay_settings, wechat_settings
from tests.support.services import free_port
from tests.tenant.support import TENANT_A, TENANT_B, Site, csrf

METER = TENANT_A["meters"][1]  # m-102: this module's top-ups


def _orders(site: Site) -> int:
    with site.db.session(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(PaymentOrder)) or 0)


def _post_topup(site: Site, client: Any, **data: str) -> Any:
    token = csrf(client, f"/t/m/{METER}/topup")
    return client.post(f"/t/m/{METER}/topup", data={"csrf_token": token, **data})


def _meter(site: Site) -> Any:
    """The meter's mirror as it is now (a plain namespace: the session is gone after)."""
    with site.db.session(readonly=True) as s:
        meter = s.get(Meter, METER)
        assert meter is not None
        return SimpleNamespace(
            balance_micro_yuan=meter.balance_micro_yuan,
            credits_micro_yuan=meter.credits_micro_yuan,
            refunds_micro_yuan=meter.refunds_micro_yuan,
            charges_micro_yuan=meter.charges_micro_yuan,
        )


def test_a_preset_top_up_is_paid_credited_once_and_receipted(site: Site) -> None:
    client = site.client(TENANT_A)
    before = _meter(site).balance_micro_yuan
    resp = _post_topup(site, client, preset="50", provider="sandbox")
    assert resp.status_code == 303
    pay_page = resp.headers["Location"]
    page = client.get(pay_page).get_data(as_text=True)
    assert "¥50.00" in page
    paid = client.post(pay_page)
    result = paid.headers["Location"]
    assert "/t/orders/" in result
    path = result.split("localhost", 1)[-1]
    first = client.get(path + "/status").get_json()
    assert first["paid"] is True
    assert first["credited"] is False
    client.post(pay_page)  # paying again at the bank resends the same notification
    site.sync()
    done = client.get(path + "/status").get_json()
    assert done["state"] == lc.CREDITED
    assert done["credited"] is True
    meter = _meter(site)
    assert meter.balance_micro_yuan == before + 50_000_000  # once
    assert meter.balance_micro_yuan == (
        meter.credits_micro_yuan - meter.refunds_micro_yuan - meter.charges_micro_yuan
    )
    records = client.get(f"/t/m/{METER}/records").get_data(as_text=True)
    sale_id = re.search(r"/t/receipts/(\d+)", records).group(1)  # type: ignore[union-attr]
    receipt = client.get(f"/t/receipts/{sale_id}").get_data(as_text=True)
    assert "人民币伍拾元整" in receipt
    assert "售电小票" in receipt
    assert METER in receipt
    with site.db.session(readonly=True) as s:
        sale = s.get(Sale, int(sale_id))
        assert sale is not None
        assert sale.method == "sandbox"
        assert sale.receipt_no is not None
        assert sale.receipt_no in receipt


def test_an_amount_out_of_range_is_marked_in_the_pages_language(site: Site) -> None:
    client = site.app.test_client()
    client.set_cookie(
        "gridvend_session", site.client(TENANT_A).get_cookie("gridvend_session").value
    )
    before = _orders(site)
    resp = _post_topup(site, client, preset="other", amount="20000", provider="sandbox")
    assert resp.status_code == 422
    text = resp.get_data(as_text=True)
    assert 'id="e-amount"' in text
    assert 'aria-invalid="true"' in text
    assert "请输入 0.01 至 10000.00 元之间的金额。" in text
    token = csrf(client, f"/t/m/{METER}/topup")
    client.post("/office/language", data={"csrf_token": token, "lang": "en", "next": "/t/"})
    resp = _post_topup(site, client, preset="other", amount="0", provider="sandbox")
    assert resp.status_code == 422
    assert "Enter an amount from 0.01 to 10000.00 yuan." in resp.get_data(as_text=True)
    for bad in ("abc", "12.345", "-5", "1e3", ""):
        resp = _post_topup(site, client, preset="other", amount=bad, provider="sandbox")
        assert resp.status_code == 422, bad
        assert 'id="e-amount"' in resp.get_data(as_text=True), bad
    resp = _post_topup(site, client, preset="50", provider="paypal")
    assert resp.status_code == 422
    assert 'id="e-provider"' in resp.get_data(as_text=True)
    resp = _post_topup(site, client, preset="51", provider="sandbox")  # not one of the presets
    assert resp.status_code == 422
    assert 'id="e-preset"' in resp.get_data(as_text=True)
    client.post("/office/language", data={"csrf_token": token, "lang": "zh_CN", "next": "/t/"})
    assert _orders(site) == before  # nothing was created


def test_the_limits_follow_the_sites_limit_and_the_hoarding_cap(site: Site) -> None:
    client = site.client(TENANT_A)
    balance = _meter(site).balance_micro_yuan
    with site.db.session() as s:
        s.execute(
            update(Meter)
            .where(Meter.id == METER)
            .values(hoarding_cap_micro_yuan=balance + 30_000_000)
        )
    try:
        page = client.get(f"/t/m/{METER}/topup").get_data(as_text=True)
        assert 'id="preset-20"' in page
        assert 'id="preset-50"' not in page  # over the cap's room: not offered
        assert "0.01 至 30.00 元" in page
        before = _orders(site)
        resp = _post_topup(site, client, preset="other", amount="30.01", provider="sandbox")
        assert resp.status_code == 422
        assert "请输入 0.01 至 30.00 元之间的金额。" in resp.get_data(as_text=True)
        assert _orders(site) == before
        with site.db.session() as s:
            s.execute(update(SiteDefaults).values(max_sale_micro_yuan=25_000_000))
        assert "0.01 至 25.00 元" in client.get(f"/t/m/{METER}/topup").get_data(as_text=True)
    finally:
        with site.db.session() as s:
            s.execute(update(Meter).where(Meter.id == METER).values(hoarding_cap_micro_yuan=None))
            s.execute(update(SiteDefaults).values(max_sale_micro_yuan=10_000_000_000))


def test_in_app_browsers_get_the_open_in_browser_hint(site: Site) -> None:
    app = create_app(
        {
            **{k: site.app.config[k] for k in ("DATABASE", "SECRET_KEY", "TENANT_CODE_SENDER")},
            "PAYMENTS": {
                "sandbox": {"directory": str(site.folder / "sandbox")},
                "alipay": alipay_settings(),
            },
        }
    )
    client = app.test_client()
    client.set_cookie(
        "gridvend_session", site.client(TENANT_A).get_cookie("gridvend_session").value
    )
    wechat = {"User-Agent": "Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0.50 NetType/WIFI"}
    page = client.get(f"/t/m/{METER}/topup", headers=wechat).get_data(as_text=True)
    assert 'id="inapp-hint"' in page
    assert 'id="provider-alipay"' in page
    token = csrf(client, f"/t/m/{METER}/topup")
    resp = client.post(
        f"/t/m/{METER}/topup",
        data={"csrf_token": token, "preset": "20", "provider": "alipay"},
        headers=wechat,
    )
    assert resp.status_code == 200  # no redirect into a blocked alipays:// page
    text = resp.get_data(as_text=True)
    assert 'id="open-in-browser"' in text
    assert "openapi.alipay.com" in text  # the link to open in the phone's browser
    assert "window.open" not in text
    plain = client.post(
        f"/t/m/{METER}/topup", data={"csrf_token": token, "preset": "20", "provider": "alipay"}
    )
    assert plain.status_code == 303
    assert plain.headers["Location"].startswith("https://openapi.alipay.com/gateway.do?")


def test_power_on_is_offered_only_when_it_can_work(site: Site) -> None:
    client = site.client(TENANT_A)
    with site.db.session() as s:  # tripped (an overload, say) with money on the meter
        s.execute(update(Meter).where(Meter.id == METER).values(relay="open", mode="prepaid"))
    page = client.get(f"/t/m/{METER}/").get_data(as_text=True)
    assert 'id="power-on"' in page
    assert "已断电" in page
    token = csrf(client, f"/t/m/{METER}/")
    client.post(f"/t/m/{METER}/power", data={"csrf_token": token})
    client.post(f"/t/m/{METER}/power", data={"csrf_token": token})  # twice: one request
    with site.db.session(readonly=True) as s:
        sent = list(s.scalars(select(Command).where(Command.meter_id == METER,
                                                     Command.action == "clear_overload")))  # fmt: skip
    assert len(sent) == 1
    page = client.get(f"/t/m/{METER}/").get_data(as_text=True)
    assert 'id="power-request"' in page
    assert "待下发" in page
    site.sync()
    assert "已完成" in client.get(f"/t/m/{METER}/").get_data(as_text=True)
    with site.db.session() as s:  # the office switched it off: only the office lifts that
        s.execute(update(Meter).where(Meter.id == METER).values(mode="forced_off"))
    page = client.get(f"/t/m/{METER}/").get_data(as_text=True)
    assert 'id="power-on"' not in page
    assert "物业已对此表拉闸" in page
    resp = client.post(f"/t/m/{METER}/power", data={"csrf_token": token})
    assert resp.status_code == 302
    with site.db.session() as s:
        count = s.scalar(select(func.count()).select_from(Command).where(
            Command.meter_id == METER, Command.action == "clear_overload"))  # fmt: skip
        assert count == 1
        s.execute(update(Meter).where(Meter.id == METER).values(mode="prepaid", relay="closed"))
    assert 'id="power-on"' not in client.get(f"/t/m/{METER}/").get_data(as_text=True)


def test_tenant_b_sees_only_their_own_meter_in_the_picker(site: Site) -> None:
    client = site.client(TENANT_B)
    page = client.get(f"/t/m/{TENANT_B['meters'][0]}/").get_data(as_text=True)
    assert 'id="meter-picker"' not in page  # one meter: no picker
    a_page = site.client(TENANT_A).get(f"/t/m/{TENANT_A['meters'][0]}/").get_data(as_text=True)
    assert 'id="meter-picker"' in a_page
    assert TENANT_A["meters"][1] in a_page
    assert TENANT_B["meters"][0] not in a_page


def _picker(page: str) -> str:
    found = re.search(r'<details class="picker card" id="meter-picker">(.*?)</details>', page, re.S)
    assert found is not None, "no picker"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()


def test_the_picker_names_a_meter_without_a_name_of_its_own_by_its_id_once(site: Site) -> None:
    client = site.client(TENANT_A)
    first, second = TENANT_A["meters"]
    url = f"/t/m/{first}/"
    with site.db.session() as s:
        s.execute(update(Meter).where(Meter.id == first).values(name=""))
        s.execute(update(Meter).where(Meter.id == second).values(name=second))  # name = id
    try:
        text = _picker(client.get(url).get_data(as_text=True))
        assert text.startswith(f"电表: {first} ")  # the summary: the id, not "m-101 (m-101)"
        assert f"({first})" not in text
        assert text.count(first) == 2  # the summary and the list
        assert text.count(second) == 1  # the list
        with site.db.session() as s:
            s.execute(update(Meter).where(Meter.id == first).values(name="Kitchen"))
        text = _picker(client.get(url).get_data(as_text=True))
        assert text.startswith(f"电表: Kitchen ({first}) ")
        assert f"Kitchen {TENANT_A['unit']} · {first}" in text  # a name: the id beside it
    finally:
        with site.db.session() as s:
            s.execute(update(Meter).where(Meter.id.in_([first, second])).values(name=""))


def test_a_cloud_without_payments_json_has_no_sandbox_to_pay_for_free(site: Site) -> None:
    """The sandbox's pay page credits a meter for nothing. A cloud run as the deployment runs it
    (``gridvend cloud serve --instance DIR``, no ``DIR/payments.json``), or an app made from its
    instance folder's config.py, must not offer it: the tenant's sandbox top-up is refused,
    nothing is ordered and no sandbox pay page exists."""
    instance = site.folder / "production-instance"
    instance.mkdir()
    keep = {k: site.app.config[k] for k in ("DATABASE", "SECRET_KEY", "TENANT_CODE_SENDER")}
    served = create_app({**keep, "PAYMENTS": payment_config.settings(instance)})  # as serve does
    bare = create_app(keep)  # no PAYMENTS at all: its instance folder decides, as for serve
    assert not (Path(bare.instance_path) / payment_config.FILE).exists()
    for app in (served, bare):
        assert "sandbox" not in app.extensions["gridvend.payments"].providers
        client = app.test_client()
        client.set_cookie(
            "gridvend_session", site.client(TENANT_A).get_cookie("gridvend_session").value
        )
        before = _orders(site)
        resp = _post_topup(site, client, preset="50", provider="sandbox")
        assert resp.status_code == 422, resp.headers.get("Location")
        assert _orders(site) == before
        assert client.post("/pay/sandbox/GV2026010100000000000001").status_code == 404
    # Asked for by name, the sandbox is still there (the demo writes its payments.json).
    (instance / payment_config.FILE).write_text(
        '{"sandbox": {"directory": "%s"}}' % (instance / "sandbox-pay"), encoding="utf-8"
    )
    assert list(payment_config.settings(instance)) == ["sandbox"]


def test_a_provider_that_cannot_be_reached_is_a_message_not_a_crash(site: Site) -> None:
    """WeChat Pay's H5 order is a call to WeChat: when it fails (here nothing listens where its
    API is configured) the tenant sees the form again with why, and no order is left behind."""
    app = create_app(
        {
            **{k: site.app.config[k] for k in ("DATABASE", "SECRET_KEY", "TENANT_CODE_SENDER")},
            "PAYMENTS": {"wechat": wechat_settings(api=f"http://127.0.0.1:{free_port()}")},
            "PROPAGATE_EXCEPTIONS": True,
        }
    )
    client = app.test_client()
    client.set_cookie(
        "gridvend_session", site.client(TENANT_A).get_cookie("gridvend_session").value
    )
    before = _orders(site)
    resp = _post_topup(site, client, preset="20", provider="wechat")
    assert resp.status_code == 502
    assert 'id="e-amount"' in resp.get_data(as_text=True)
    assert _orders(site) == before
