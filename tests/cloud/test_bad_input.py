"""Bad input never reaches the ledger (issue 9): each finding of the review, over HTTP. Integers
beyond 64 bits or the domain's bounds, unknown enumeration values, text with control characters
or too long, a note sent as a number, unknown args: a 422 naming the field, never a 500, and
nothing stored. A request the document allows but a rule refuses (a site's per-sale limit, a
meter's cap, thresholds out of order) is a 409 naming the field, with the limit in the message."""

from __future__ import annotations

import pytest

from cloud.models import Command, Customer, Meter, SiteDefaults
from tests.cloud.support import FakeEdge, sync

Y = 1_000_000
BIG = 2**63  # one more than the largest signed 64-bit integer


def _auth(tokens, role="admin"):
    return {"Authorization": f"Bearer {tokens[role]}"}


def _error(resp, status, field):
    assert resp.status_code == status, (resp.status_code, resp.get_json())
    error = resp.get_json()["error"]
    assert error["field"] == field, error
    assert error["message"]
    return error


def _open(client, tokens, meter="m-101"):
    resp = client.post(
        "/api/v1/accounts",
        json={"customer": {"name": "Red Lantern"}, "meters": [meter]},
        headers=_auth(tokens),
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


@pytest.mark.parametrize(
    ("method", "url", "field"),
    [
        ("GET", f"/api/v1/sales/{BIG}", "sale_id"),
        ("GET", f"/api/v1/accounts/{BIG}", "account_id"),
        ("GET", f"/api/v1/commands/{BIG}", "command_id"),
        ("POST", f"/api/v1/sales/{BIG}/reversal", "sale_id"),
        ("GET", "/api/v1/sales/0", "sale_id"),
        ("GET", f"/api/v1/meters?offset={BIG}", "offset"),
        ("GET", f"/api/v1/meters?account={BIG}", "account"),
        ("GET", f"/api/v1/readings?meter=m-101&after={BIG}", "after"),
        ("GET", f"/api/v1/sales?from={BIG}", "from"),
        ("GET", "/api/v1/sales?account=", "account"),
        ("GET", "/api/v1/sales?limit=0", "limit"),
        ("GET", "/api/v1/accounts?limit=5001", "limit"),
    ],
)
def test_integers_out_of_range_in_paths_and_queries_are_a_422_naming_them(
    client, tokens, method, url, field
):
    _error(client.open(url, method=method, headers=_auth(tokens)), 422, field)


def test_integers_out_of_range_in_bodies_are_a_422_naming_them(client, tokens, db):
    h = _auth(tokens)
    cases = [
        ("/api/v1/accounts", {"customer": BIG, "meters": ["m-101"]}, "customer"),
        (
            "/api/v1/tariffs/t1/versions",
            {"version": {"version": 1, "effective_from": 0, "price_micro_yuan_per_kwh": BIG}},
            "version.price_micro_yuan_per_kwh",
        ),
        (
            "/api/v1/tariffs/t1/versions",
            {"version": {"version": 1, "effective_from": BIG, "price_micro_yuan_per_kwh": 1}},
            "version.effective_from",
        ),
        (
            "/api/v1/meters/m-101/commands",
            {"op": "dispatch_settings", "args": {"alarm1_micro_yuan": BIG}},
            "args.alarm1_micro_yuan",
        ),
        ("/api/v1/commands/batch", {"op": "trip", "all": True, "building": BIG}, "building"),
    ]
    for url, body, field in cases:
        _error(client.post(url, json=body, headers=h), 422, field)
    _error(
        client.put("/api/v1/sites/studio/defaults", json={"alarm1_micro_yuan": BIG}, headers=h),
        422,
        "alarm1_micro_yuan",
    )
    with db.session() as s:
        assert s.query(Command).count() == 0
        assert s.query(Customer).count() == 0


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/sales?status=weird", "status"),
        ("/api/v1/refunds?status=weird", "status"),
        ("/api/v1/accounts?status=x", "status"),
        ("/api/v1/reports/sales?period=", "period"),
        ("/api/v1/reports/sales?period=week", "period"),
        ("/api/v1/reports/lost-contact?kind=", "kind"),
        ("/api/v1/alarms?active=maybe", "active"),
        ("/api/v1/meters?state=happy", "state"),
    ],
)
def test_unknown_enumeration_values_are_a_422(client, tokens, url, field):
    _error(client.get(url, headers=_auth(tokens)), 422, field)


@pytest.mark.parametrize(
    ("customer", "field"),
    [
        ({"name": "Red\x00Lantern"}, "customer.name"),
        ({"name": "x" * 10_000}, "customer.name"),
        ({"name": "Red", "phone": "139\x00"}, "customer.phone"),
        ({"name": "Red", "phone": "1" * 10_000}, "customer.phone"),
        ({"name": "Red", "note": "a\x07b"}, "customer.note"),
        ({"name": "Red", "note": 5}, "customer.note"),
        ({"name": " Red"}, "customer.name"),
    ],
)
def test_text_with_control_characters_or_too_long_is_refused_naming_the_field(
    client, tokens, db, customer, field
):
    resp = client.post(
        "/api/v1/accounts", json={"customer": customer, "meters": ["m-101"]}, headers=_auth(tokens)
    )
    _error(resp, 422, field)
    with db.session() as s:
        assert s.query(Customer).count() == 0
        assert s.get(Meter, "m-101").account_id is None


def test_a_note_sent_as_a_number_is_refused_not_stored_as_text(client, tokens):
    account = _open(client, tokens)
    h = _auth(tokens)
    _error(
        client.post(
            "/api/v1/accounts",
            json={"customer": account["customer"]["id"], "meters": ["m-102"], "note": 5},
            headers=h,
        ),
        422,
        "note",
    )
    sale = client.post(
        "/api/v1/meters/m-101/sales",
        json={"amount_micro_yuan": Y},
        headers={**h, "Idempotency-Key": "k-note"},
    ).get_json()
    _error(
        client.post(f"/api/v1/sales/{sale['id']}/reversal", json={"note": 5}, headers=h),
        422,
        "note",
    )
    _error(client.post("/api/v1/alarms/1/clear", json={"note": 5}, headers=h), 422, "note")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"op": "read_now", "args": {"fast": True}}, "args"),
        ({"op": "trip", "args": {"reason": "x"}}, "args"),
        ({"op": "resolve_anomaly", "args": {"action": "bill", "why": 1}}, "args.why"),
        ({"op": "dispatch_settings", "args": {"alarm_one": 5}}, "args.alarm_one"),
        ({"op": "dispatch_settings", "args": {}}, "args"),
        ({"op": "explode"}, "op"),
    ],
)
def test_unknown_args_are_refused_not_dropped(client, tokens, db, body, field):
    resp = client.post("/api/v1/meters/m-101/commands", json=body, headers=_auth(tokens))
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["error"]["field"].startswith(field)
    with db.session() as s:
        assert s.query(Command).count() == 0


def test_settings_a_collector_would_refuse_are_refused_before_anything_is_stored(
    client, tokens, db
):
    h = _auth(tokens)
    resp = client.post(
        "/api/v1/meters/m-101/commands",
        json={"op": "dispatch_settings", "args": {"alarm1_micro_yuan": -5}},
        headers=h,
    )
    error = _error(resp, 409, "args.alarm1_micro_yuan")
    assert "alarm1 >= alarm2" in error["message"]
    with db.session() as s:
        meter = s.get(Meter, "m-101")
        assert meter.alarm1_micro_yuan is None
        assert meter.settings == {}
        assert s.query(Command).count() == 0
    detail = client.get("/api/v1/meters/m-101", headers=h).get_json()
    assert "alarm1_micro_yuan" not in detail["settings"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"price_micro_yuan_per_kwh": 0}, 422, "price_micro_yuan_per_kwh"),
        ({"price_micro_yuan_per_kwh": -5}, 422, "price_micro_yuan_per_kwh"),
        ({"report_interval_s": 0}, 422, "report_interval_s"),
        ({"report_interval_s": -1}, 422, "report_interval_s"),
        ({"meter_lost_after_s": -1}, 422, "meter_lost_after_s"),
        ({"archive_after_days": 0}, 422, "archive_after_days"),
        ({"alarm_sms_number": "1380\x00"}, 422, "alarm_sms_number"),
        ({"max_sale_micro_yuan": 0}, 422, "max_sale_micro_yuan"),
        ({"alarm1_micro_yuan": 10 * Y, "alarm2_micro_yuan": 30 * Y}, 409, "alarm2_micro_yuan"),
        ({"alarm2_micro_yuan": 60 * Y}, 409, "alarm2_micro_yuan"),  # above alarm 1's 50 yuan
        ({"colour": "red"}, 422, "colour"),
    ],
)
def test_site_defaults_are_checked_before_anything_is_stored_or_sent(
    client, tokens, db, body, status, field
):
    _open(client, tokens)
    with db.session() as s:
        before = s.query(Command).count()
    resp = client.put("/api/v1/sites/studio/defaults", json=body, headers=_auth(tokens))
    _error(resp, status, field)
    with db.session() as s:
        d = s.get(SiteDefaults, "studio")
        assert (d.price_micro_yuan_per_kwh, d.alarm1_micro_yuan, d.alarm2_micro_yuan) == (
            None,
            None,
            None,
        )
        assert (d.report_interval_s, d.meter_lost_after_s, d.archive_after_days) == (30, 900, 90)
        assert s.query(Command).count() == before  # nothing sent


def test_a_meter_shows_its_desired_and_applied_settings_apart(client, tokens, db):
    h = _auth(tokens)
    _open(client, tokens)
    edge = FakeEdge("gw-1")
    sync(db, {"gw-1": edge})
    first = client.get("/api/v1/meters/m-101", headers=h).get_json()
    assert first["applied_settings"] == {"hoarding_cap_micro_yuan": 30_000 * Y}
    assert first["settings_pending"] == []
    sent = client.post(
        "/api/v1/meters/m-101/commands",
        json={"op": "dispatch_settings", "args": {"alarm1_micro_yuan": 80 * Y}},
        headers=h,
    )
    assert sent.status_code == 202, sent.get_json()
    pending = client.get("/api/v1/meters/m-101", headers=h).get_json()
    assert pending["settings"]["alarm1_micro_yuan"] == 80 * Y
    assert "alarm1_micro_yuan" not in pending["applied_settings"]
    assert pending["settings_pending"] == ["alarm1_micro_yuan"]
    # The collector refuses it (its own rules differ from the cloud's view): never applied.
    original = edge.handle

    def refuse(cmd):
        if cmd["op"] == "settings":
            return [{**edge._result(cmd, "rejected", "thresholds out of order")}]
        return original(cmd)

    edge.handle = refuse
    sync(db, {"gw-1": edge})
    refused = client.get("/api/v1/meters/m-101", headers=h).get_json()
    assert "alarm1_micro_yuan" not in refused["applied_settings"]
    assert refused["settings_pending"] == ["alarm1_micro_yuan"]
    assert refused["settings_refused"]["reason"] == "thresholds out of order"
    # Sent again and applied: now it shows as applied, and nothing is pending.
    edge.handle = original
    client.post(
        "/api/v1/meters/m-101/commands",
        json={"op": "dispatch_settings", "args": {"alarm1_micro_yuan": 80 * Y}},
        headers=h,
    )
    sync(db, {"gw-1": edge})
    applied = client.get("/api/v1/meters/m-101", headers=h).get_json()
    assert applied["applied_settings"]["alarm1_micro_yuan"] == 80 * Y
    assert applied["settings_pending"] == []
    assert applied["settings_refused"] is None


def test_a_sale_over_the_per_sale_limit_is_refused_with_the_limit(client, tokens, db):
    _open(client, tokens)
    h = _auth(tokens)
    with db.session() as s:
        d = s.get(SiteDefaults, "studio")
        assert d.max_sale_micro_yuan == 10_000 * Y  # out of the box
        assert d.hoarding_cap_micro_yuan == 30_000 * Y
    huge = client.post(
        "/api/v1/meters/m-101/sales",
        json={"amount_micro_yuan": 1_000_000 * Y},
        headers={**h, "Idempotency-Key": "huge"},
    )
    error = _error(huge, 409, "amount_micro_yuan")
    assert "10,000 yuan" in error["message"]
    over = client.post(
        "/api/v1/meters/m-101/sales",
        json={"amount_micro_yuan": 10_000 * Y + 1},
        headers={**h, "Idempotency-Key": "over"},
    )
    _error(over, 409, "amount_micro_yuan")
    ok = client.post(
        "/api/v1/meters/m-101/sales",
        json={"amount_micro_yuan": 10_000 * Y},
        headers={**h, "Idempotency-Key": "ok"},
    )
    assert ok.status_code == 201
    # Three sales of 10,000 reach the default cap of 30,000; a fourth is over it.
    for n in (2, 3):
        resp = client.post(
            "/api/v1/meters/m-101/sales",
            json={"amount_micro_yuan": 10_000 * Y},
            headers={**h, "Idempotency-Key": f"ok-{n}"},
        )
        assert resp.status_code == 201
    capped = client.post(
        "/api/v1/meters/m-101/sales",
        json={"amount_micro_yuan": Y},
        headers={**h, "Idempotency-Key": "capped"},
    )
    assert "hoarding cap of 30,000 yuan" in _error(capped, 409, "amount_micro_yuan")["message"]
    # A supervisor can raise the limit; it is the site's.
    raised = client.put(
        "/api/v1/sites/studio/defaults", json={"max_sale_micro_yuan": 20_000 * Y}, headers=h
    )
    assert raised.status_code == 200, raised.get_json()
    assert raised.get_json()["defaults"]["max_sale_micro_yuan"] == 20_000 * Y
