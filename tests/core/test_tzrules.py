"""edge/tzrules.py: offset rules built from zoneinfo, checked against zoneinfo itself and used by
the engine for a zone with DST (the engine assumes no zone)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest

from edge import tzrules
from edge.core import engine
from edge.core.tz import ZoneRules, civil_from_days

Y2026 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


def test_shanghai_has_one_rule_at_plus_eight() -> None:
    assert tzrules.zone_rules("Asia/Shanghai", Y2026, Y2026 + 10 * tzrules.YEAR_S) == [
        [Y2026, 28800]
    ]


def test_new_york_transitions_are_exact_to_the_second() -> None:
    rules = tzrules.zone_rules("America/New_York", Y2026, Y2026 + tzrules.YEAR_S)
    # 2026: DST starts Mar 8 07:00 UTC, ends Nov 1 06:00 UTC
    march = int(datetime(2026, 3, 8, 7, tzinfo=UTC).timestamp())
    november = int(datetime(2026, 11, 1, 6, tzinfo=UTC).timestamp())
    assert rules == [[Y2026, -18000], [march, -14400], [november, -18000]]


@pytest.mark.parametrize("name", ["Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"])
def test_local_time_from_rules_matches_zoneinfo(name: str) -> None:
    rules = ZoneRules(tzrules.zone_rules(name, Y2026, Y2026 + 2 * tzrules.YEAR_S))
    zone = zoneinfo.ZoneInfo(name)
    for t in range(Y2026, Y2026 + 2 * tzrules.YEAR_S, 3 * 3600 + 17 * 60 + 13):
        local = datetime.fromtimestamp(t, UTC).astimezone(zone)
        days, sod = rules.local_fields(t)
        assert civil_from_days(days) == (local.year, local.month, local.day)
        assert sod == local.hour * 3600 + local.minute * 60 + local.second


def test_unknown_zone_and_bad_span_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        tzrules.zone_rules("Mars/Olympus", 0, 1)
    with pytest.raises(ValueError, match="before start"):
        tzrules.zone_rules("UTC", 10, 0)


def test_engine_rates_a_dst_day_by_local_time() -> None:
    # London, 2026-03-29: clocks go 01:00 GMT -> 02:00 BST. Peak from 08:00 local.
    rules = tzrules.rules_around("Europe/London", Y2026)
    tou = {
        "version": 1,
        "effective_from": 0,
        "bands": {"peak": 1_000_000, "valley": 0},
        "day": [["00:00", "valley"], ["08:00", "peak"]],
    }
    ctx = engine.Context({"t": [tou]}, rules, {"tariff_id": "t"})
    state = engine.new_state("m")
    engine.step(state, {"type": "open_account"}, Y2026, ctx)
    engine.step(state, {"type": "credit", "purchase_no": 1, "amount_micro_yuan": 10**9}, Y2026, ctx)
    t0 = int(datetime(2026, 3, 29, 6, 30, tzinfo=UTC).timestamp())  # 07:30 BST
    t1 = t0 + 3600  # 08:30 BST
    engine.step(state, {"type": "reading", "ts": t0, "energy_wh": 0}, t0, ctx)
    _, actions = engine.step(state, {"type": "reading", "ts": t1, "energy_wh": 600}, t1, ctx)
    charge = next(a for a in actions if a["type"] == "charge")
    # half an hour valley (free), half an hour peak: 300 Wh * 1.00 yuan
    assert [(p["band"], p["wh"]) for p in charge["pieces"]] == [("valley", 300), ("peak", 300)]
    assert charge["amount_micro_yuan"] == 300_000
