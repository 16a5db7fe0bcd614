"""The REST API: every endpoint refuses a missing or wrong token (walked from the URL map, so a
new endpoint cannot escape), the OpenAPI document matches the URL map, permissions by role, the
error shape, and the main flows over HTTP."""

from __future__ import annotations

import re

from cloud.access import auth
from cloud.audit import Actor
from cloud.models import ApiToken
from cloud.web.api.openapi import openapi_path
from tests.cloud.support import FakeEdge, send, sync

Y = 1_000_000
PUBLIC = {"/api/v1/openapi.json"}  # the API's own description needs no token


def _api_routes(app):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.rule, method


def _concrete(rule: str) -> str:
    return re.sub(
        r"<(?:(\w+):)?\w+>", lambda m: "1" if m.group(1) in ("int", "digits") else "m-101", rule
    )


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_every_endpoint_refuses_a_missing_or_wrong_token(app, client, tokens):
    routes = [r for r in _api_routes(app) if r[0] not in PUBLIC]
    assert len(routes) >= 20
    bad_headers = [
        {},
        {"Authorization": "Bearer gv_not-a-real-token-at-all-000000"},
        {"Authorization": f"Basic {tokens['admin']}"},
        {"Authorization": "Bearer "},
    ]
    for rule, method in routes:
        for headers in bad_headers:
            resp = client.open(_concrete(rule), method=method, headers=headers, json={})
            assert resp.status_code == 401, (rule, method, headers, resp.json)
            error = resp.json["error"]
            assert error["code"] == "unauthorized"
            assert error["message"]


def test_openapi_document_describes_exactly_the_url_map(app, client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    routed = {(openapi_path(rule[len("/api/v1") :]), method) for rule, method in _api_routes(app)}
    assert documented == routed
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"]
            assert op["responses"]
            if path not in PUBLIC:
                assert op["x-permission"], (path, method)


def test_roles_grant_named_permissions(client, tokens):
    body = {"amount_micro_yuan": Y, "method": "cash"}
    resp = client.post(
        "/api/v1/meters/m-101/sales",
        json=body,
        headers={**_auth(tokens["viewer"]), "Idempotency-Key": "x"},
    )
    assert resp.status_code == 403
    assert "sales.sell" in resp.json["error"]["message"]
    assert client.get("/api/v1/meters", headers=_auth(tokens["viewer"])).status_code == 200
    resp = client.post(
        "/api/v1/commands/batch", json={"op": "trip", "all": True}, headers=_auth(tokens["cashier"])
    )
    assert resp.status_code == 403


def test_errors_say_what_to_fix(client, tokens):
    h = _auth(tokens["admin"])
    resp = client.get("/api/v1/nothing-here", headers=h)
    assert resp.status_code == 404
    assert resp.json["error"]["code"] == "not_found"
    resp = client.delete("/api/v1/meters", headers=h)
    assert resp.status_code == 405
    assert resp.json["error"]["code"] == "method_not_allowed"
    resp = client.get("/api/v1/meters/zzz", headers=h)
    assert resp.status_code == 404
    assert "zzz" in resp.json["error"]["message"]
    resp = client.post(
        "/api/v1/accounts", data="{not json", headers={**h, "Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert "JSON" in resp.json["error"]["message"]
    resp = client.post(
        "/api/v1/accounts",
        json={"customer": {"name": "A"}, "meters": ["m-101"], "colour": "red"},
        headers=h,
    )
    assert resp.status_code == 422
    assert resp.json["error"]["field"] == "colour"
    resp = client.get("/api/v1/meters?state=happy", headers=h)
    assert resp.status_code == 422
    assert resp.json["error"]["field"] == "state"
    resp = client.get("/api/v1/readings", headers=h)
    assert resp.status_code == 422
    assert resp.json["error"]["field"] == "meter"


def test_sale_over_http_with_idempotency_key(client, tokens, db):
    h = _auth(tokens["cashier"])
    resp = client.post(
        "/api/v1/accounts",
        json={
            "customer": {"name": "Red Lantern Films"},
            "meters": [{"meter": "m-101", "transfer_in_micro_yuan": 2 * Y}],
        },
        headers=h,
    )
    assert resp.status_code == 201, resp.json
    account = resp.json
    assert account["meters"] == ["m-101"]
    assert account["status"] == "open"
    body = {"amount_micro_yuan": 100 * Y, "method": "wechat"}
    resp = client.post("/api/v1/meters/m-101/sales", json=body, headers=h)
    assert resp.status_code == 422
    assert resp.json["error"]["field"] == "Idempotency-Key"
    first = client.post(
        "/api/v1/meters/m-101/sales", json=body, headers={**h, "Idempotency-Key": "order-1"}
    )
    assert first.status_code == 201
    sale = first.json
    assert sale["status"] == "pending"
    assert sale["purchase_no"] == 1
    assert sale["receipt_no"]
    again = client.post(
        "/api/v1/meters/m-101/sales", json=body, headers={**h, "Idempotency-Key": "order-1"}
    )
    assert again.status_code == 200
    assert again.json == sale
    other = client.post(
        "/api/v1/meters/m-101/sales",
        json={**body, "amount_micro_yuan": 5},
        headers={**h, "Idempotency-Key": "order-1"},
    )
    assert other.status_code == 409
    assert other.json["error"]["code"] == "idempotency_conflict"
    edges = {"gw-1": FakeEdge("gw-1")}
    sync(db, edges)
    sale = client.get(f"/api/v1/sales/{sale['id']}", headers=h).json
    assert sale["status"] == "applied"
    meter = client.get("/api/v1/meters/m-101", headers=h).json
    assert meter["balance_micro_yuan"] == 102 * Y
    assert meter["credits_micro_yuan"] == 102 * Y
    assert meter["purchase_count"] == 1
    assert meter["refunds_micro_yuan"] == 0
    assert meter["charges_micro_yuan"] == 0
    assert meter["state"] == "opened"
    assert meter["identity_holds"] is True
    listed = client.get("/api/v1/sales?meter=m-101", headers=h).json["sales"]
    assert [s["id"] for s in listed] == [sale["id"]]


def test_meter_list_shape_and_filters(client, tokens, db):
    h = _auth(tokens["viewer"])
    meters = client.get("/api/v1/meters", headers=h).json["meters"]
    assert len(meters) == 7
    m = next(x for x in meters if x["id"] == "m-101")
    for key in (
        "id",
        "name",
        "unit",
        "gateway",
        "address",
        "model",
        "state",
        "relay",
        "mode",
        "balance_micro_yuan",
        "energy_wh",
        "power_w",
        "last_seen",
    ):
        assert key in m
    assert (m["unit"], m["gateway"], m["state"], m["relay"], m["mode"]) == (
        "A-101",
        "gw-1",
        "not_opened",
        "unknown",
        "prepaid",
    )
    gw2 = client.get("/api/v1/meters?gateway=gw-2", headers=h).json["meters"]
    assert [x["id"] for x in gw2] == ["m-201", "m-202", "m-203"]
    edge = FakeEdge("gw-1")
    send(db, edge, [edge.event("m-102", "lost_contact")])
    lost = client.get("/api/v1/meters?state=lost_contact", headers=h).json["meters"]
    assert [x["id"] for x in lost] == ["m-102"]


def test_commands_over_http(client, tokens, db):
    h = _auth(tokens["operator"])
    resp = client.post("/api/v1/meters/m-101/commands", json={"op": "trip"}, headers=h)
    assert resp.status_code == 202
    (cmd,) = resp.json["commands"]
    assert (cmd["op"], cmd["args"], cmd["status"]) == ("mode", {"mode": "forced_off"}, "pending")
    resp = client.post("/api/v1/meters/m-101/commands", json={"op": "fly"}, headers=h)
    assert resp.status_code == 422
    assert resp.json["error"]["field"] == "op"
    sync(db, {"gw-1": FakeEdge("gw-1")})
    got = client.get(f"/api/v1/commands/{cmd['id']}", headers=h).json
    assert got["status"] == "applied"
    assert got["sent_ts"]
    assert got["result_ts"]
    resp = client.post(
        "/api/v1/commands/batch", json={"op": "read_now", "all": True, "gateway": "gw-2"}, headers=h
    )
    assert resp.status_code == 202
    assert resp.json["count"] == 3


def test_refund_reversal_and_close_over_http(client, tokens, db):
    h = _auth(tokens["admin"])
    account = client.post(
        "/api/v1/accounts", json={"customer": {"name": "A"}, "meters": ["m-101"]}, headers=h
    ).json
    sale = client.post(
        "/api/v1/meters/m-101/sales",
        json={"amount_micro_yuan": 50 * Y},
        headers={**h, "Idempotency-Key": "s1"},
    ).json
    edges = {"gw-1": FakeEdge("gw-1")}
    sync(db, edges)
    refund = client.post(
        "/api/v1/meters/m-101/refunds", json={"amount_micro_yuan": 10 * Y}, headers=h
    )
    assert refund.status_code == 201
    assert refund.json["status"] == "pending"
    too_much = client.post(
        "/api/v1/meters/m-101/refunds", json={"amount_micro_yuan": 45 * Y}, headers=h
    )
    # Well-formed, refused by the meter's balance: 409 naming the field.
    assert too_much.status_code == 409
    assert too_much.json["error"]["field"] == "amount_micro_yuan"
    sync(db, edges)
    reversal = client.post(f"/api/v1/sales/{sale['id']}/reversal", json={}, headers=h)
    assert reversal.status_code == 409  # 40 left cannot cover reversing 50
    closed = client.post(f"/api/v1/accounts/{account['id']}/close", headers=h)
    assert closed.status_code == 202
    assert closed.json["status"] == "closing"
    sync(db, edges)
    final = client.get(f"/api/v1/accounts/{account['id']}", headers=h).json
    assert final["status"] == "closed"
    (settlement,) = final["settlements"]
    assert settlement["refund_due_micro_yuan"] == 40 * Y
    refunds = client.get("/api/v1/refunds?status=applied", headers=h).json["refunds"]
    assert [r["amount_micro_yuan"] for r in refunds] == [10 * Y]


def test_readings_alarms_and_lost_contact_reports(client, tokens, db):
    h = _auth(tokens["admin"])
    edge = FakeEdge("gw-1")
    send(db, edge, [edge.reading("m-101", 100, ts=1_767_225_600 + i) for i in range(5)])
    send(db, edge, [edge.event("m-101", "overload", detail={"power_w": 99_000})])
    page = client.get("/api/v1/readings?meter=m-101&limit=3", headers=h).json
    assert len(page["readings"]) == 3
    assert page["next_after"]
    rest = client.get(f"/api/v1/readings?meter=m-101&after={page['next_after']}", headers=h).json
    assert len(rest["readings"]) == 2
    assert rest["next_after"] is None
    window = client.get(
        "/api/v1/readings?meter=m-101&from=2026-01-01T00:00:02Z&to=1767225604", headers=h
    ).json["readings"]
    assert [r["ts"] - 1_767_225_600 for r in window] == [2, 3]
    (alarm,) = client.get("/api/v1/alarms?active=true", headers=h).json["alarms"]
    assert alarm["kind"] == "overload"
    assert alarm["detail"]["detail"] == {"power_w": 99_000}
    cleared = client.post(
        f"/api/v1/alarms/{alarm['id']}/clear", json={"note": "checked"}, headers=h
    )
    assert cleared.status_code == 200
    assert cleared.json["active"] is False
    assert client.get("/api/v1/alarms?active=true", headers=h).json["alarms"] == []
    send(db, edge, [edge.event("m-102", "lost_contact")])
    report = client.get("/api/v1/reports/lost-contact?kind=meter", headers=h).json
    assert [i["id"] for i in report["items"]] == ["m-102"]
    assert client.get("/api/v1/reports/lost-contact?kind=x", headers=h).status_code == 422


def test_revoked_and_expired_tokens_are_refused(app, client, db):
    with db.session() as s:
        auth.create_operator(s, "temp", "password-123", "viewer", Actor("test"))
        row, token = auth.create_token(s, "temp", Actor("test"))
        old, expired = auth.create_token(s, "temp", Actor("test"), expires_ts=1)
    assert client.get("/api/v1/meters", headers=_auth(token)).status_code == 200
    with db.session() as s:
        auth.revoke_token(s, row.id, Actor("test"), cache=app.extensions["gridvend.principals"])
    resp = client.get("/api/v1/meters", headers=_auth(token))
    assert resp.status_code == 401
    assert "revoked" in resp.json["error"]["message"]
    resp = client.get("/api/v1/meters", headers=_auth(expired))
    assert resp.status_code == 401
    assert "expired" in resp.json["error"]["message"]
    with db.session() as s:
        assert s.get(ApiToken, old.id).token_hash != expired  # only the hash is stored
