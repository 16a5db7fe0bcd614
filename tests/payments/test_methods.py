"""Payment methods: a cashier chooses among the counter's methods; "sandbox" (and any method
only a payment provider records) is refused from the till and the REST API, and recorded only by
a provider's own verified payment (through the same sale service, on SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from cloud.access import auth
from cloud.db import Database
from cloud.errors import InvalidError
from cloud.models import Sale
from cloud.money import accounts, checks, sales
from cloud.web import create_app
from cloud.web.office.receipts import COUNTER_METHODS
from tests.cloud.support import ACTOR, T0, FakeEdge, Park, sync


def test_the_counter_offers_exactly_the_cashiers_methods() -> None:
    assert set(COUNTER_METHODS) == set(checks.CASHIER_METHODS)
    assert "sandbox" not in checks.CASHIER_METHODS
    assert "sandbox" in checks.PROVIDER_METHODS
    assert set(checks.METHODS) == set(checks.CASHIER_METHODS) | set(checks.PROVIDER_METHODS)


def test_a_cashier_cannot_record_a_providers_method(db: Database, park: Park) -> None:
    with db.session() as s:
        accounts.open_account(s, {"name": "Tenant"}, ["m-101"], ACTOR, now=T0)
    with db.session() as s, pytest.raises(InvalidError) as caught:
        sales.sell(s, "m-101", 1_000_000, "sandbox", ACTOR, idempotency_key="k-1", now=T0)
    assert caught.value.field == "method"
    with db.session() as s:
        sale, _ = sales.sell(
            s, "m-101", 1_000_000, "sandbox", ACTOR, idempotency_key="k-2", now=T0,
            methods=checks.PROVIDER_METHODS,
        )  # fmt: skip
        assert sale.method == "sandbox"
    with db.session() as s, pytest.raises(InvalidError):
        sales.sell(s, "m-101", 1_000_000, "cash", ACTOR, now=T0, methods=checks.PROVIDER_METHODS)


def test_the_api_refuses_method_sandbox(db: Database, park: Park, tmp_path: Path) -> None:
    with db.session() as s:
        accounts.open_account(s, {"name": "Tenant"}, ["m-101"], ACTOR, now=T0)
        auth.create_operator(s, "till", "till-secret-1", "cashier", ACTOR)
        _, token = auth.create_token(s, "till", ACTOR)
    sync(db, {"gw-1": FakeEdge("gw-1")})
    app = create_app({"TESTING": True, "DATABASE": db, "SECRET_KEY": "test",
                      "PAYMENTS": {"sandbox": {"directory": str(tmp_path / "sb")}}})  # fmt: skip
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "api-sandbox-1"}
    resp = client.post(
        "/api/v1/meters/m-101/sales",
        json={"amount_micro_yuan": 1_000_000, "method": "sandbox"},
        headers=headers,
    )
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["field"] == "method"
    spec = client.get("/api/v1/openapi.json", headers=headers).get_json()
    assert "sandbox" not in str(spec["paths"]["/api/v1/meters/{meter_id}/sales"]["post"])
    ok = client.post(
        "/api/v1/meters/m-101/sales",
        json={"amount_micro_yuan": 1_000_000, "method": "wechat"},
        headers={**headers, "Idempotency-Key": "api-wechat-1"},
    )
    assert ok.status_code == 201
    with db.session(readonly=True) as s:
        assert list(s.scalars(select(Sale.method))) == ["wechat"]
