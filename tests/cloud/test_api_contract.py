"""The API as the review of issue 9 found it wanting: the OpenAPI document states the bounds, the
closed bodies and every status the server answers; report defaults come from the site's local
calendar; a reversed sale shows its reversal and reversals can be listed; tokens expire, are
listed and revoked over the API and the command line."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from cloud.access import auth
from cloud.audit import Actor
from cloud.cli import main as cloud_cli
from cloud.models import ApiToken, Sale
from cloud.reporting import reports
from cloud.web.api import ENDPOINTS, VALIDATOR
from tests.cloud.support import FakeEdge, sync

Y = 1_000_000
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def _op(doc, path, method):
    return doc["paths"]["/api/v1" + path][method]


def test_the_document_states_bounds_closed_bodies_and_the_batch_selection(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    limit = next(p for p in _op(doc, "/sales", "get")["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 5000)
    sale_id = _op(doc, "/sales/{sale_id}", "get")["parameters"][0]
    assert (sale_id["in"], sale_id["schema"]["maximum"]) == ("path", 2**63 - 1)
    body = _op(doc, "/accounts", "post")["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False
    assert body["properties"]["meters"]["minItems"] == 1
    batch = _op(doc, "/commands/batch", "post")["requestBody"]["content"]["application/json"]
    required = {tuple(b["required"]) for b in batch["schema"]["oneOf"]}
    assert ("op", "meters") in required
    assert ("op", "all") in required
    assert all(b["additionalProperties"] is False for b in batch["schema"]["oneOf"])
    reversal = _op(doc, "/sales/{sale_id}/reversal", "post")["responses"]
    assert {"200", "201", "400", "401", "403", "404", "409", "422"} <= set(reversal)


def test_every_request_schema_is_one_the_server_enforces():
    # A keyword the validator does not understand would be promised and not checked.
    for ep in ENDPOINTS:
        for p in ep.path_params() + ep.other_params():
            VALIDATOR.lint(p.schema)
        if ep.body is not None:
            VALIDATOR.lint(ep.body)


def test_a_method_not_allowed_says_which_are(client, tokens):
    resp = client.delete("/api/v1/sales", headers=_auth(tokens["admin"]))
    assert resp.status_code == 405
    assert set(resp.headers["Allow"].split(", ")) >= {"GET"}
    resp = client.get("/api/v1/commands/batch", headers=_auth(tokens["admin"]))
    assert resp.status_code == 405
    assert "POST" in resp.headers["Allow"]


def test_report_defaults_come_from_the_sites_local_calendar(db, park):
    # 2026-01-01 23:30 UTC is 07:30 on 2 January in Shanghai: the day report ends on the 2nd.
    morning = int(dt.datetime(2026, 1, 1, 23, 30, tzinfo=dt.UTC).timestamp())
    with db.session() as s:
        assert reports.default_dates(s, None, "day", None, None, now=morning) == (
            dt.date(2025, 12, 3),
            dt.date(2026, 1, 2),
        )
        assert reports.default_dates(s, None, "month", None, None, now=morning) == (
            dt.date(2025, 2, 1),
            dt.date(2026, 1, 2),
        )
        assert reports.default_dates(s, None, "year", None, None, now=morning) == (
            dt.date(2026, 1, 1),
            dt.date(2026, 1, 2),
        )


def test_the_default_reports_over_http_end_today_at_the_site(client, tokens):
    h = _auth(tokens["viewer"])
    today = dt.datetime.now(SHANGHAI).date()
    day = client.get("/api/v1/reports/sales", headers=h).get_json()
    assert day["to"] == today.isoformat()
    year = client.get("/api/v1/reports/sales?period=year", headers=h).get_json()
    assert year["from"] == dt.date(today.year, 1, 1).isoformat()
    energy = client.get("/api/v1/reports/energy", headers=h).get_json()
    assert energy["to"] == today.isoformat()


def test_a_reversed_sale_shows_its_reversal_and_reversals_are_listed(client, tokens, db):
    h = _auth(tokens["admin"])
    client.post(
        "/api/v1/accounts", json={"customer": {"name": "A"}, "meters": ["m-101"]}, headers=h
    )
    sale = client.post(
        "/api/v1/meters/m-101/sales",
        json={"amount_micro_yuan": 20 * Y},
        headers={**h, "Idempotency-Key": "rv-1"},
    ).get_json()
    assert (sale["reversed"], sale["reversal"]) == (False, None)
    edges = {"gw-1": FakeEdge("gw-1")}
    sync(db, edges)
    made = client.post(f"/api/v1/sales/{sale['id']}/reversal", json={"note": "typo"}, headers=h)
    assert made.status_code == 201
    again = client.post(f"/api/v1/sales/{sale['id']}/reversal", headers=h)
    assert again.status_code == 200
    assert again.get_json()["id"] == made.get_json()["id"]
    pending = client.get(f"/api/v1/sales/{sale['id']}", headers=h).get_json()
    assert pending["status"] == "applied"
    assert pending["reversed"] is False
    assert pending["reversal"]["status"] == "pending"
    sync(db, edges)
    done = client.get(f"/api/v1/sales/{sale['id']}", headers=h).get_json()
    assert done["reversed"] is True
    assert done["reversal"]["id"] == made.get_json()["id"]
    listed = client.get("/api/v1/sales?meter=m-101", headers=h).get_json()["sales"]
    assert listed[0]["reversed"] is True
    reversals = client.get("/api/v1/reversals?meter=m-101", headers=h).get_json()["reversals"]
    assert [(r["sale"], r["status"], r["note"]) for r in reversals] == [
        (sale["id"], "applied", "typo")
    ]
    assert client.get(
        f"/api/v1/reversals?sale={sale['id']}&status=pending", headers=h
    ).get_json() == {"reversals": []}
    one = client.get(f"/api/v1/reversals/{reversals[0]['id']}", headers=h).get_json()
    assert one["amount_micro_yuan"] == 20 * Y
    with db.session() as s:
        assert s.get(Sale, sale["id"]).status == "applied"


def test_tokens_over_the_api_expire_list_and_revoke(client, tokens, db):
    admin = _auth(tokens["admin"])
    assert client.get("/api/v1/tokens", headers=_auth(tokens["supervisor"])).status_code == 403
    made = client.post(
        "/api/v1/tokens",
        json={"operator": "viewer-1", "name": "kiosk", "expires_in_s": 3600},
        headers=admin,
    )
    assert made.status_code == 201, made.get_json()
    token = made.get_json()
    assert token["state"] == "active"
    assert token["secret"].startswith("gv_")
    assert client.get("/api/v1/meters", headers=_auth(token["secret"])).status_code == 200
    listed = client.get("/api/v1/tokens?operator=viewer-1", headers=admin).get_json()["tokens"]
    assert "secret" not in listed[0]
    assert [t["name"] for t in listed] == ["kiosk", ""]
    mine = next(
        t for t in client.get("/api/v1/tokens?operator=admin-1", headers=admin).get_json()["tokens"]
    )
    refused = client.post(f"/api/v1/tokens/{mine['id']}/revoke", headers=admin)
    assert refused.status_code == 409  # not the token this very request uses
    revoked = client.post(f"/api/v1/tokens/{token['id']}/revoke", headers=admin)
    assert revoked.get_json()["state"] == "revoked"
    assert client.get("/api/v1/meters", headers=_auth(token["secret"])).status_code == 401
    assert client.post(f"/api/v1/tokens/{token['id']}/revoke", headers=admin).status_code == 200
    with db.session() as s:  # an expired token is refused too
        row, secret = auth.create_token(s, "viewer-1", Actor("test"), expires_ts=1)
    assert client.get("/api/v1/meters", headers=_auth(secret)).status_code == 401
    expired = client.get("/api/v1/tokens?state=expired", headers=admin).get_json()["tokens"]
    assert [t["id"] for t in expired] == [row.id]
    bad = client.post(
        "/api/v1/tokens", json={"operator": "viewer-1", "expires_in_s": 5}, headers=admin
    )
    assert bad.status_code == 422
    assert bad.get_json()["error"]["field"] == "expires_in_s"


def test_tokens_on_the_command_line(db, tokens, capsys):
    url = ["--database", str(db.url)]
    assert cloud_cli(["create-token", "viewer-1", "--name", "till", "--expires", "30d", *url]) == 0
    secret = capsys.readouterr().out.strip()
    with db.session() as s:
        row = s.query(ApiToken).filter(ApiToken.name == "till").one()
        assert row.expires_ts is not None
        assert 29 * 86_400 < row.expires_ts - row.created_ts <= 30 * 86_400
        token_id = row.id
    assert secret.startswith(row.prefix)
    assert cloud_cli(["list-tokens", "--operator", "viewer-1", *url]) == 0
    listing = capsys.readouterr().out
    assert "till" in listing
    assert "active" in listing
    assert cloud_cli(["revoke-token", row.prefix, *url]) == 0
    assert "revoked" in capsys.readouterr().out
    with db.session() as s:
        assert s.get(ApiToken, token_id).revoked_ts is not None
    assert cloud_cli(["create-token", "viewer-1", "--expires", "yesterday", *url]) == 1
    assert "--expires" in capsys.readouterr().err
