"""A site's default parameters (F13): set by import or over the API, sent to the collectors that
bill by them, and a meter's own value always wins."""

from __future__ import annotations

from cloud.control import settings as site_defaults
from cloud.models import Command, Meter, SiteDefaults
from cloud.money import accounts
from cloud.park.imports import importer
from tests.cloud.support import ACTOR

Y = 1_000_000  # micro-yuan per yuan


def _settings_sent(s, meter_id):
    return [
        c.args
        for c in s.query(Command)
        .filter(Command.meter_id == meter_id, Command.op == "settings")
        .order_by(Command.id)
    ]


def test_a_changed_default_reaches_the_open_meters_that_use_it_and_no_other(db, park):
    with db.session() as s:
        accounts.open_account(s, {"name": "A"}, ["m-101", "m-102"], ACTOR)
        s.get(Meter, "m-102").price_override_micro_yuan_per_kwh = 900_000  # its own price
    with db.session() as s:
        before = {m: len(_settings_sent(s, m)) for m in ("m-101", "m-102", "m-103")}
        _, sent = site_defaults.change(
            s, park.site, {"price_micro_yuan_per_kwh": 1_500_000, "alarm2_micro_yuan": 5 * Y}, ACTOR
        )
        assert sent == 2  # m-101 and m-102 (alarm 2 only); m-103 has no open account
    with db.session() as s:
        assert _settings_sent(s, "m-101")[before["m-101"] :] == [
            {"price_override_micro_yuan_per_kwh": 1_500_000, "alarm2_micro_yuan": 5 * Y}
        ]
        assert _settings_sent(s, "m-102")[before["m-102"] :] == [{"alarm2_micro_yuan": 5 * Y}]
        assert len(_settings_sent(s, "m-103")) == before["m-103"] == 0
        assert s.get(SiteDefaults, park.site).price_micro_yuan_per_kwh == 1_500_000


def test_defaults_over_the_api_need_the_permission_and_say_what_is_wrong(client, tokens, park):
    url = f"/api/v1/sites/{park.site}/defaults"

    def call(method, role, body=None):
        return client.open(
            url, method=method, json=body, headers={"Authorization": f"Bearer {tokens[role]}"}
        )

    assert call("GET", "viewer").get_json()["price_micro_yuan_per_kwh"] is None
    refused = call("PUT", "cashier", {"price_micro_yuan_per_kwh": 1_000_000})
    assert refused.status_code == 403
    bad = call("PUT", "admin", {"colour": "red"})
    assert bad.status_code == 422
    assert bad.get_json()["error"]["field"] == "colour"
    negative = call("PUT", "admin", {"alarm1_micro_yuan": "lots"})
    assert negative.status_code == 422
    assert negative.get_json()["error"]["field"] == "alarm1_micro_yuan"
    ok = call("PUT", "admin", {"price_micro_yuan_per_kwh": 1_000_000, "dispatch": False})
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json() == {
        "defaults": {**ok.get_json()["defaults"], "price_micro_yuan_per_kwh": 1_000_000},
        "commands_sent": 0,
    }
    assert call("GET", "viewer").get_json()["price_micro_yuan_per_kwh"] == 1_000_000
    assert client.get(url).status_code == 401


def test_a_sites_sheet_sets_the_defaults_in_yuan(db, tmp_path):
    path = tmp_path / "sites.csv"
    path.write_text(
        "site_id,name,price_yuan_per_kwh,alarm1_yuan,hoarding_cap_yuan,overload_power_w\n"
        "park,Film Park,1.2345,50,5000.5,80000\n"
    )
    with db.session() as s:
        importer.import_files(s, [path], ACTOR)
    with db.session() as s:
        d = s.get(SiteDefaults, "park")
        assert (d.price_micro_yuan_per_kwh, d.alarm1_micro_yuan, d.hoarding_cap_micro_yuan) == (
            1_234_500,
            50 * Y,
            5_000_500_000,
        )
        assert d.overload_power_w == 80_000
