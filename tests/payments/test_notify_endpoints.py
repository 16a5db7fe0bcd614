"""The notify endpoints over HTTP (Flask's test client, real SQLite/PostgreSQL): no session, no
CSRF token, only a verified signature; replies exactly as each provider expects."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from cloud.db import Database
from cloud.models import Sale
from cloud.money import accounts
from cloud.payments import lifecycle as lc
from cloud.payments.orders import Payments, create_order
from cloud.web import create_app
from tests.cloud.support import ACTOR, T0, FakeEdge, Park, sync
from tests.payments.players import (
    alipay_fields,
    alipay_notification,
    alipay_settings,
    alipay_sign,
    wechat_callback,
    wechat_settings,
    wechat_transaction,
)


@pytest.fixture
def app(db: Database, park: Park, tmp_path: Path):

    with db.session() as s:
        accounts.open_account(s, {"name": "Tenant"}, ["m-101"], ACTOR, now=T0)
    sync(db, {"gw-1": FakeEdge("gw-1")})
    return create_app(
        {
            "TESTING": True,
            "DATABASE": db,
            "WTF_CSRF_ENABLED": True,  # on, as in production: the notify URLs must not need it
            "SECRET_KEY": "test",
            "PAYMENTS": {
                "sandbox": {"directory": str(tmp_path / "sandbox")},
                "alipay": alipay_settings(),
                "wechat": wechat_settings(),
            },
        }
    )


def payments_of(app) -> Payments:
    return app.extensions["gridvend.payments"]


def order_of(db: Database, provider: str, fen: int) -> str:
    with db.session() as s:
        return create_order(s, provider, "m-101", fen).out_trade_no


def sale_count(db: Database) -> int:
    with db.session(readonly=True) as s:
        return len(list(s.scalars(select(Sale.id))))


def test_alipay_notify_replies_success_and_credits_once(app, db: Database) -> None:
    no = order_of(db, "alipay", 5000)
    note = alipay_notification(alipay_sign(alipay_fields(out_trade_no=no, amount="50.00")))
    client = app.test_client()
    for _ in range(3):
        reply = client.post(
            "/pay/notify/alipay", data=note.body, content_type="application/x-www-form-urlencoded"
        )
        assert (reply.status_code, reply.data) == (200, b"success")
    assert sale_count(db) == 1
    assert payments_of(app).status(no).state == lc.CREDITING


def test_alipay_notify_with_a_tampered_amount_is_refused(app, db: Database) -> None:
    no = order_of(db, "alipay", 5000)
    fields = alipay_sign(alipay_fields(out_trade_no=no, amount="50.00"))
    fields["total_amount"] = "0.01"
    body = alipay_notification(fields).body
    reply = app.test_client().post(
        "/pay/notify/alipay", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert reply.status_code == 400
    assert reply.data != b"success"
    assert sale_count(db) == 0


def test_wechat_callback_replies_204_with_the_raw_body_verified(app, db: Database) -> None:
    no = order_of(db, "wechat", 1230)
    note = wechat_callback(wechat_transaction(no, 1230), timestamp=int(time.time()))
    reply = app.test_client().post("/pay/notify/wechat", data=note.body, headers=dict(note.headers))
    assert (reply.status_code, reply.data) == (204, b"")
    assert sale_count(db) == 1
    stale = wechat_callback(wechat_transaction(no, 1230), timestamp=int(time.time()) - 600)
    reply = app.test_client().post(
        "/pay/notify/wechat", data=stale.body, headers=dict(stale.headers)
    )
    assert reply.status_code == 401
    assert reply.get_json()["code"] == "FAIL"


def test_an_unknown_provider_is_404(app) -> None:
    assert app.test_client().post("/pay/notify/unionpay", data=b"x").status_code == 404


def test_the_sandbox_pay_page_pays_and_delivers_through_the_same_notify(app, db: Database) -> None:
    order, action = payments_of(app).start(
        "sandbox",
        "m-101",
        2000,
        notify_url="http://127.0.0.1/pay/notify/sandbox",
        return_url="/t/result/{out_trade_no}",
    )
    reply = app.test_client().post(action.url)
    assert reply.status_code == 303
    assert reply.headers["Location"] == f"/t/result/{order.out_trade_no}"
    assert payments_of(app).status(order.out_trade_no).state == lc.CREDITING
    assert app.test_client().post("/pay/sandbox/GV-NOPE").status_code == 404
