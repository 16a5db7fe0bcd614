"""Tariffs, worked by hand (the arithmetic is in the comments). Plain cases (CPython + MicroPython).

Zone: UTC+8 (casekit.CN). ``local(d, hh, mm, ss)`` is local time on 2026-01-(1 + d). Prices are
micro-yuan per kWh, energy Wh, so a piece costs wh * price / 1000 micro-yuan.
"""

from edge.core import engine
from edge.core.errors import TariffError
from tests.core.casekit import (
    TOU,
    check_ledger,
    ctx_with,
    local,
    of_type,
    opened,
    raises,
    reading,
    run,
)

BIG = 10**12  # a balance that never runs out


def _meter_at(ctx, ts, energy_wh, settings=None):
    state = opened(ctx, BIG, settings)
    run(state, ctx, [reading(ts, energy_wh)], ts)
    return state


def _charge_of(state, ctx, ts, energy_wh):
    actions = run(state, ctx, [reading(ts, energy_wh)], ts)
    check_ledger(state)
    charges = of_type(actions, "charge")
    assert len(charges) == 1, actions
    return charges[0]


def test_tou_delta_spanning_the_valley_to_peak_boundary_is_split_by_time():
    # valley (0.40 yuan) until 08:00, then peak (1.00 yuan).
    # Readings at 07:50 and 08:20: 30 min, 900 Wh. 10 min valley, 20 min peak:
    #   valley 900 * 10/30 = 300 Wh * 400,000 / 1000 = 120,000
    #   peak   900 * 20/30 = 600 Wh * 1,000,000 / 1000 = 600,000
    #   charge 720,000 micro-yuan (0.72 yuan)
    ctx = ctx_with()
    state = _meter_at(ctx, local(0, 7, 50), 10_000)
    charge = _charge_of(state, ctx, local(0, 8, 20), 10_900)
    assert charge["amount_micro_yuan"] == 720_000
    assert charge["energy_wh"] == 900
    assert charge["pieces"] == [
        {"band": "valley", "tier": None, "version": 1, "wh": 300, "price": 400_000},
        {"band": "peak", "tier": None, "version": 1, "wh": 600, "price": 1_000_000},
    ]
    assert state["balance_micro_yuan"] == BIG - 720_000


def test_tou_split_that_does_not_divide_evenly_uses_largest_remainder():
    # 07:59:00 -> 08:00:40: 100 s, 7 Wh. 60 s valley, 40 s peak.
    #   exact shares 4.2 and 2.8 Wh -> 4 and 2, the spare Wh to the larger remainder (.8): peak
    #   valley 4 Wh * 400,000 = 1,600,000; peak 3 Wh * 1,000,000 = 3,000,000
    #   (1,600,000 + 3,000,000) / 1000 = 4,600 micro-yuan, carry 0
    ctx = ctx_with()
    state = _meter_at(ctx, local(0, 7, 59), 50)
    charge = _charge_of(state, ctx, local(0, 8, 0, 40), 57)
    assert [(p["band"], p["wh"]) for p in charge["pieces"]] == [("valley", 4), ("peak", 3)]
    assert charge["amount_micro_yuan"] == 4_600
    assert state["carry"] == 0


def test_a_delta_across_a_whole_tou_day_merges_the_pieces_of_each_band():
    # 00:00 -> 24:00, 2400 Wh (100 Wh per hour): valley 0-8 and 22-24 = 10 h, peak 14 h
    #   valley 1000 Wh * 0.40 = 400,000; peak 1400 Wh * 1.00 = 1,400,000; total 1,800,000
    ctx = ctx_with()
    state = _meter_at(ctx, local(0, 0), 0)
    charge = _charge_of(state, ctx, local(1, 0), 2400)
    assert [(p["band"], p["wh"]) for p in charge["pieces"]] == [("valley", 1000), ("peak", 1400)]
    assert charge["amount_micro_yuan"] == 1_800_000


TIERED = {
    "version": 1,
    "effective_from": 0,
    "tiers": {"period": "month", "mode": "price", "steps": [[0, 500_000], [200, 800_000]]},
}


def test_tier_crossing_is_split_by_energy():
    # Monthly tiers: 0.50 yuan up to 200 kWh, 0.80 above.
    # 199,500 Wh used this month, then a reading of 1,200 Wh more:
    #   500 Wh at 0.50 = 250,000; 700 Wh at 0.80 = 560,000; charge 810,000
    ctx = ctx_with({"t": [TIERED]}, {"tariff_id": "t"})
    state = _meter_at(ctx, local(0, 1), 0)
    _charge_of(state, ctx, local(2, 1), 199_500)  # 2 days, all in tier 1: 99,750,000
    assert state["tier_energy_wh"] == 199_500
    charge = _charge_of(state, ctx, local(2, 2), 200_700)
    assert charge["pieces"] == [
        {"band": None, "tier": 1, "version": 1, "wh": 500, "price": 500_000},
        {"band": None, "tier": 2, "version": 1, "wh": 700, "price": 800_000},
    ]
    assert charge["amount_micro_yuan"] == 810_000
    assert state["tier_energy_wh"] == 200_700


def test_tiers_as_adders_combine_with_time_of_use():
    # TOU + adder tiers: tier 2 (from 1 kWh) adds 0.10 yuan to the band price.
    # 07:00 -> 09:00, 2000 Wh, fresh month: valley 1000 Wh, peak 1000 Wh (in time order).
    #   valley 1000 Wh, tier 1: 0.40       -> 400,000 (tier energy reaches 1000 Wh)
    #   peak   1000 Wh, tier 2: 1.00 + 0.10 -> 1,100,000
    version = dict(TOU)
    version["tiers"] = {"period": "month", "mode": "adder", "steps": [[0, 0], [1, 100_000]]}
    ctx = ctx_with({"t": [version]}, {"tariff_id": "t"})
    state = _meter_at(ctx, local(0, 7), 0)
    charge = _charge_of(state, ctx, local(0, 9), 2000)
    assert [(p["band"], p["tier"], p["wh"], p["price"]) for p in charge["pieces"]] == [
        ("valley", 1, 1000, 400_000),
        ("peak", 2, 1000, 1_100_000),
    ]
    assert charge["amount_micro_yuan"] == 1_500_000


def test_version_change_at_local_midnight_splits_by_time():
    # Version 1: flat 0.60 yuan; version 2: flat 0.70 yuan from 2026-02-01 00:00 local.
    # Readings at 23:30 on Jan 31 and 00:30 on Feb 1: 1000 Wh over 60 min, 30 min each:
    #   500 Wh * 600,000 = 300,000; 500 Wh * 700,000 = 350,000; charge 650,000
    feb1 = local(31, 0)
    versions = [
        {"version": 1, "effective_from": 0, "price_micro_yuan_per_kwh": 600_000},
        {"version": 2, "effective_from": feb1, "price_micro_yuan_per_kwh": 700_000},
    ]
    ctx = ctx_with({"t": versions}, {"tariff_id": "t"})
    state = _meter_at(ctx, feb1 - 1800, 5_000)
    charge = _charge_of(state, ctx, feb1 + 1800, 6_000)
    assert charge["pieces"] == [
        {"band": None, "tier": None, "version": 1, "wh": 500, "price": 600_000},
        {"band": None, "tier": None, "version": 2, "wh": 500, "price": 700_000},
    ]
    assert charge["amount_micro_yuan"] == 650_000


def test_monthly_tiers_reset_at_the_local_month_start():
    # Tiers 0.50 up to 200 kWh, 0.80 above; January used 250 kWh (tier 2).
    # 23:00 Jan 31 -> 01:00 Feb 1, 2000 Wh: 1000 Wh in January at tier 2 = 800,000,
    # 1000 Wh in February, the tier count restarts at 0: tier 1 = 500,000. Total 1,300,000.
    ctx = ctx_with({"t": [TIERED]}, {"tariff_id": "t"})
    state = _meter_at(ctx, local(0, 1), 0)
    _charge_of(state, ctx, local(30, 23), 250_000)
    charge = _charge_of(state, ctx, local(31, 1), 252_000)
    assert [(p["tier"], p["wh"]) for p in charge["pieces"]] == [(2, 1000), (1, 1000)]
    assert charge["amount_micro_yuan"] == 1_300_000
    assert state["tier_period"] == "2026-02"
    assert state["tier_energy_wh"] == 1000


def test_weekend_and_holiday_schedule_and_seasons():
    # Weekdays: day schedule (valley/peak). Weekends and holidays: valley all day.
    # July-August: peak all day. 2026-01-03 is a Saturday; 2026-01-05 a holiday (Monday).
    version = dict(TOU)
    version["weekend"] = [["00:00", "valley"]]
    version["holidays"] = ["2026-01-05"]
    version["seasons"] = [{"months": [7, 8], "day": [["00:00", "peak"]]}]
    ctx = ctx_with({"t": [version]}, {"tariff_id": "t"})
    # at noon: Jan 2 (Friday) peak; Jan 3 (Saturday) and Jan 5 (the holiday) valley; Jan 6
    # peak; July 11 (a Saturday in the summer season: the weekend schedule wins) valley
    for day, band in ((1, "peak"), (2, "valley"), (4, "valley"), (5, "peak"), (191, "valley")):
        state = _meter_at(ctx, local(day, 12), 0)
        charge = _charge_of(state, ctx, local(day, 13), 100)
        assert charge["pieces"][0]["band"] == band, (day, charge)
    # July 13 2026 is a Monday: the summer season's all-day peak applies at 03:00
    state = _meter_at(ctx, local(193, 3), 0)
    assert _charge_of(state, ctx, local(193, 4), 100)["pieces"][0]["band"] == "peak"


def test_per_meter_price_override_replaces_the_tariff():
    # one meter, one price: 0.55 yuan flat for 1000 Wh in peak time = 550,000
    ctx = ctx_with()
    state = _meter_at(ctx, local(0, 9), 0, {"price_override_micro_yuan_per_kwh": 550_000})
    charge = _charge_of(state, ctx, local(0, 10), 1000)
    assert charge["pieces"] == [
        {"band": None, "tier": None, "version": None, "wh": 1000, "price": 550_000}
    ]
    assert charge["amount_micro_yuan"] == 550_000


def test_energy_before_the_first_version_is_unrated_not_guessed():
    versions = [{"version": 1, "effective_from": local(0, 12), "price_micro_yuan_per_kwh": 600_000}]
    ctx = ctx_with({"t": versions}, {"tariff_id": "t"})
    state = _meter_at(ctx, local(0, 11), 0)
    # 11:00 -> 13:00, 2000 Wh: 1000 Wh before the tariff exists (unrated), 1000 Wh at 0.60
    actions = run(state, ctx, [reading(local(0, 13), 2000)], local(0, 13))
    assert of_type(actions, "charge")[0]["amount_micro_yuan"] == 600_000
    unrated = [a for a in actions if a["type"] == "event" and a["kind"] == "unrated"]
    assert unrated[0]["detail"]["energy_wh"] == 1000
    assert state["unrated_wh"] == 1000


def test_a_meter_without_a_tariff_reports_unrated_energy_once_not_per_reading():
    ctx = ctx_with({}, {"tariff_id": "missing"})
    state = _meter_at(ctx, local(0, 1), 0)
    kinds = []
    for i in range(1, 4):
        actions = run(state, ctx, [reading(local(0, 1, i), 10 * i)], local(0, 1, i))
        kinds.extend(a["kind"] for a in actions if a["type"] == "event")
    assert kinds == ["unrated"]
    assert state["unrated_wh"] == 30
    assert state["charges_micro_yuan"] == 0


def test_invalid_tariffs_are_refused_naming_the_field():
    def make(version):
        return engine.Context(tariffs={"t": [version]}, zone_rules=[[0, 0]])

    bad = dict(TOU)
    bad["bands"] = {"peak": 1, "midday": 2}
    assert "unknown band 'midday'" in str(raises(TariffError, make, bad))
    bad = dict(TOU)
    bad["day"] = [["00:00", "valley"], ["07:00", "peak"], ["06:00", "valley"]]
    assert "day[2]" in str(raises(TariffError, make, bad))
    bad = dict(TOU)
    bad["day"] = [[f"{h:02d}:00", "peak"] for h in range(15)]
    assert "at most 14" in str(raises(TariffError, make, bad))
    bad = dict(TOU)
    bad["colour"] = "red"
    assert "unknown key 'colour'" in str(raises(TariffError, make, bad))
    bad = {"version": 1, "effective_from": 0, "price_micro_yuan_per_kwh": 1, "bands": {"peak": 1}}
    assert "exactly one" in str(raises(TariffError, make, bad))
    bad = {"version": 1, "effective_from": 0, "price_micro_yuan_per_kwh": -5}
    assert "int >= 0" in str(raises(TariffError, make, bad))
    bad = dict(TIERED)
    bad["tiers"] = {"period": "week", "mode": "price", "steps": [[0, 1]]}
    assert "tiers.period" in str(raises(TariffError, make, bad))
    bad = dict(TOU)
    bad["seasons"] = [
        {"months": [11, 2], "day": [["00:00", "peak"]]},
        {"months": [1, 1], "day": [["00:00", "peak"]]},
    ]
    assert "month 1 is already" in str(raises(TariffError, make, bad))
    two = [dict(TOU), dict(TOU)]
    assert "same effective_from" in str(
        raises(TariffError, lambda: engine.Context({"t": two}, [[0, 0]]))
    )
    two[1]["effective_from"] = 5
    assert "appears twice" in str(raises(TariffError, lambda: engine.Context({"t": two}, [[0, 0]])))


def test_a_new_version_can_be_added_ahead_of_time():
    ctx = ctx_with(
        {"t": [{"version": 1, "effective_from": 0, "price_micro_yuan_per_kwh": 100_000}]},
        {"tariff_id": "t"},
    )
    state = _meter_at(ctx, local(0, 0), 0)
    ctx.add_tariff_version(
        "t", {"version": 2, "effective_from": local(0, 12), "price_micro_yuan_per_kwh": 300_000}
    )
    # 00:00 -> 24:00, 2400 Wh: 1200 Wh at 0.10 + 1200 Wh at 0.30 = 120,000 + 360,000
    charge = _charge_of(state, ctx, local(1, 0), 2400)
    assert charge["amount_micro_yuan"] == 480_000
    assert [v["version"] for v in ctx.tariffs["t"]] == [1, 2]


def test_yearly_tiers_reset_at_the_local_new_year_and_seasons_may_wrap_the_year():
    # Yearly tiers as adders: +0 up to 1 kWh a year, +0.40 above. A winter season (Nov-Feb)
    # is valley (0.40) all day. 2026 already used 5 kWh (tier 2).
    # 2026-12-31 23:00 -> 2027-01-01 01:00 local, 3000 Wh, 1500 Wh each side of midnight:
    #   2026: 1500 Wh tier 2 at 0.40 + 0.40             = 1,200,000
    #   2027: the year restarts: 1000 Wh tier 1 at 0.40 =   400,000
    #                            500 Wh tier 2 at 0.80  =   400,000
    #   total 2,000,000; the two tier-2 pieces merge (same band, tier, version, price)
    version = dict(TOU)
    version["seasons"] = [{"months": [11, 2], "day": [["00:00", "valley"]]}]
    version["tiers"] = {"period": "year", "mode": "adder", "steps": [[0, 0], [1, 400_000]]}
    ctx = ctx_with({"t": [version]}, {"tariff_id": "t"})
    state = _meter_at(ctx, local(300, 3), 0)  # 2026-10-28
    _charge_of(state, ctx, local(364, 23), 5_000)
    assert state["tier_period"] == "2026"
    assert state["tier_energy_wh"] == 5_000
    charge = _charge_of(state, ctx, local(365, 1), 8_000)
    assert [(p["band"], p["tier"], p["wh"], p["price"]) for p in charge["pieces"]] == [
        ("valley", 2, 2000, 800_000),
        ("valley", 1, 1000, 400_000),
    ]
    assert charge["amount_micro_yuan"] == 2_000_000
    assert state["tier_period"] == "2027"
    assert state["tier_energy_wh"] == 1_500
