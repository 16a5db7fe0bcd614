"""A tenant's session reaches only that tenant's data: every tenant URL (``security.ROUTES``,
filled by the page decorator) is tried with tenant A's meter, order and receipt under tenant
B's session (404, nothing changed), under no session (to the login page), and under A's own
(it works: the URLs are real)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from cloud.models import Command, PaymentOrder, Sale
from cloud.web.tenant import security
from tests.tenant.support import TENANT_A, TENANT_B, Site, csrf


def _objects(site: Site, a_client: Any) -> dict[str, Any]:
    """A's meter, an order of A's (paid and credited) and its sale."""
    meter = TENANT_A["meters"][0]
    token = csrf(a_client, f"/t/m/{meter}/topup")
    resp = a_client.post(
        f"/t/m/{meter}/topup", data={"csrf_token": token, "preset": "20", "provider": "sandbox"}
    )
    assert resp.status_code == 303
    pay_page = resp.headers["Location"]
    paid = a_client.post(pay_page)
    assert paid.status_code == 303
    no = re.search(r"/t/orders/(\w+)", paid.headers["Location"]).group(1)  # type: ignore[union-attr]
    site.sync()
    with site.db.session(readonly=True) as s:
        sale_id = s.scalar(select(PaymentOrder.sale_id).where(PaymentOrder.out_trade_no == no))
    assert sale_id is not None
    return {"meter_id": meter, "out_trade_no": no, "sale_id": sale_id}


def _tenant_rules(app: Any) -> list[Any]:
    return [r for r in app.url_map.iter_rules() if r.endpoint.startswith("tenant.")]


def _url(rule: Any, ids: dict[str, Any]) -> str:
    return rule.build({arg: ids[arg] for arg in rule.arguments}, append_unknown=False)[1]


def _counts(site: Site) -> tuple[int, int, int]:
    with site.db.session(readonly=True) as s:
        return (
            int(s.scalar(select(func.count()).select_from(PaymentOrder)) or 0),
            int(s.scalar(select(func.count()).select_from(Sale)) or 0),
            int(s.scalar(select(func.count()).select_from(Command)) or 0),
        )


def test_every_tenant_url_is_declared(site: Site) -> None:
    rules = _tenant_rules(site.app)
    assert len(rules) >= 10
    assert {r.endpoint for r in rules} <= set(security.ROUTES)
    assert set(security.ROUTES.values()) <= set(security.KINDS)


def test_another_tenants_session_reaches_none_of_a_tenants_urls(site: Site) -> None:
    a_client = site.client(TENANT_A)
    b_client = site.client(TENANT_B)
    ids = _objects(site, a_client)
    b_token = csrf(b_client, f"/t/m/{TENANT_B['meters'][0]}/")
    before = _counts(site)
    wrong, tried = [], 0
    for rule in _tenant_rules(site.app):
        kind = security.ROUTES[rule.endpoint]
        if kind in ("public", "tenant"):
            continue  # names nothing of anyone's
        url = _url(rule, ids)
        for method in sorted(rule.methods & {"GET", "POST"}):
            tried += 1
            data = {"csrf_token": b_token, "preset": "20", "provider": "sandbox"}
            resp = b_client.get(url) if method == "GET" else b_client.post(url, data=data)
            body = resp.get_data(as_text=True)
            if resp.status_code != 404:
                wrong.append(f"B {method} {url}: {resp.status_code}")
            # (the URL B typed is echoed in the language switch; nothing of A's may show)
            if "Studio A" in body or 'id="order-live"' in body or 'class="receipt' in body:
                wrong.append(f"B {method} {url}: shows A's data")
    assert tried >= 8
    assert wrong == []
    assert _counts(site) == before  # nothing was created or sent for B's tries


def test_no_session_goes_to_the_login_and_the_owner_gets_in(site: Site) -> None:
    a_client = site.client(TENANT_A)
    ids = _objects(site, a_client)
    nobody = site.app.test_client()
    for rule in _tenant_rules(site.app):
        kind = security.ROUTES[rule.endpoint]
        if "GET" not in rule.methods:
            continue
        url = _url(rule, ids)
        anon = nobody.get(url)
        if kind == "public":
            assert anon.status_code == 200, url
            continue
        assert anon.status_code == 302, url
        assert "/t/login" in anon.headers["Location"]
        own = a_client.get(url)
        assert own.status_code in (200, 302), f"A GET {url}: {own.status_code}"
