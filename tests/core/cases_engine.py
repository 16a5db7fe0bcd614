"""The engine as a whole: display states, alarms with hysteresis, runway, settings, contact,
errors, JSON round trip. Plain cases (CPython + MicroPython)."""

import json

from edge.core import engine
from edge.core.errors import EventError, SettingsError
from tests.core.casekit import (
    T0,
    canon,
    check_ledger,
    ctx_with,
    events,
    local,
    opened,
    raises,
    reading,
    run,
)

FLAT = {"t": [{"version": 1, "effective_from": 0, "price_micro_yuan_per_kwh": 1_000_000}]}


def _ctx(**defaults):
    d = {"tariff_id": "t"}
    for k in defaults:
        d[k] = defaults[k]
    return ctx_with(FLAT, d)


def test_display_states():
    ctx = _ctx(alarm1_micro_yuan=50_000, alarm2_micro_yuan=20_000, hysteresis_micro_yuan=0)
    state = engine.new_state("m1")
    assert engine.display_state(state) == "not_opened"
    run(
        state,
        ctx,
        [
            {"type": "open_account"},
            {"type": "credit", "purchase_no": 1, "amount_micro_yuan": 60_000},
        ],
        T0,
    )
    assert engine.display_state(state) == "opened"
    run(state, ctx, [reading(T0, 0), reading(T0 + 60, 10)], T0 + 60)  # balance 50,000
    assert engine.display_state(state) == "alarm1"
    run(state, ctx, [reading(T0 + 120, 40)], T0 + 120)  # 20,000
    assert engine.display_state(state) == "alarm2"
    run(state, ctx, [reading(T0 + 180, 60)], T0 + 180)  # 0
    assert engine.display_state(state) == "arrears"
    run(state, ctx, [{"type": "contact", "ok": False}], T0 + 200)
    assert engine.display_state(state) == "lost_contact"
    run(state, ctx, [{"type": "close_account"}], T0 + 300)
    assert engine.display_state(state) == "closed"


def test_alarm_hysteresis_stops_a_hovering_balance_from_flapping():
    # alarm 1 at 50,000 with 5,000 hysteresis: entered at <= 50,000, left only above 55,000
    ctx = _ctx(
        alarm1_micro_yuan=50_000,
        alarm2_micro_yuan=0,
        arrears_micro_yuan=0,
        hysteresis_micro_yuan=5_000,
    )
    state = opened(ctx, 60_000)
    assert state["alarm"] == "ok"
    run(state, ctx, [reading(T0, 0)], T0)
    actions = run(state, ctx, [reading(T0 + 10, 10)], T0 + 10)  # 50,000: alarm 1
    assert [e["kind"] for e in events(actions)] == ["alarm1"]
    flaps = []
    n = 2
    for amount in (1_000, 3_000, 1_000):  # balance 51,000, 54,000, 55,000: still alarm 1
        credit = {"type": "credit", "purchase_no": n, "amount_micro_yuan": amount}
        n += 1
        flaps.extend(events(run(state, ctx, [credit], T0 + 20)))
    assert flaps == []
    assert state["alarm"] == "alarm1"
    credit = {"type": "credit", "purchase_no": n, "amount_micro_yuan": 1}  # 55,001: clear
    assert [e["kind"] for e in events(run(state, ctx, [credit], T0 + 30))] == ["alarm_clear"]
    check_ledger(state)


def test_contact_lost_and_restored_are_reported_once():
    ctx = _ctx()
    state = opened(ctx, 10**6)
    actions = run(
        state, ctx, [{"type": "contact", "ok": False}, {"type": "contact", "ok": False}], T0
    )
    assert [e["kind"] for e in events(actions)] == ["lost_contact"]
    actions = run(state, ctx, [reading(T0 + 5, 0)], T0 + 5)  # a reading proves contact
    assert [e["kind"] for e in events(actions)] == ["contact_restored"]


def test_runway_days_from_the_recent_daily_charge():
    ctx = _ctx(alarm1_micro_yuan=0, alarm2_micro_yuan=0)
    state = opened(ctx, 100_000_000)  # 100 yuan
    assert engine.runway_days(state, T0, ctx) == -1  # no history yet
    # day 0 (partial, ignored): 1 kWh; days 1-4: 5 kWh a day (5 yuan)
    energy = 0
    run(state, ctx, [reading(local(0, 12), energy)], local(0, 12))
    energy += 1000
    run(state, ctx, [reading(local(0, 23), energy)], local(0, 23))
    for day in range(1, 5):
        energy += 5000
        run(state, ctx, [reading(local(day, 23), energy)], local(day, 23))
    # balance 100 - 1 - 20 = 79 yuan; 4 complete days at 5 yuan -> 79 * 4 // 20 = 15 days
    assert state["balance_micro_yuan"] == 79_000_000
    assert engine.runway_days(state, local(5, 8), ctx) == 15
    # deterministic: same state, same day, same answer
    assert engine.runway_days(state, local(5, 20), ctx) == 15
    # a new price from tomorrow (2.00 yuan/kWh): a day now costs 10 yuan -> 79 // 10 = 7 days
    ctx.add_tariff_version(
        "t", {"version": 2, "effective_from": local(6, 0), "price_micro_yuan_per_kwh": 2_000_000}
    )
    assert engine.runway_days(state, local(5, 20), ctx) == 7


def test_runway_is_zero_at_the_floor():
    ctx = _ctx()
    state = opened(ctx, 1_000)
    run(
        state,
        ctx,
        [reading(local(0, 12), 0), reading(local(1, 12), 1), reading(local(2, 12), 1)],
        local(2, 12),
    )
    assert engine.runway_days(state, local(2, 13), ctx) == 0


def test_settings_merge_and_null_goes_back_to_the_site_default():
    ctx = _ctx(alarm1_micro_yuan=90_000_000)
    state = opened(ctx)
    run(state, ctx, [{"type": "settings", "settings": {"alarm1_micro_yuan": 70_000_000}}], T0)
    assert ctx.get(state, "alarm1_micro_yuan") == 70_000_000
    assert state["settings"] == {"alarm1_micro_yuan": 70_000_000}
    run(state, ctx, [{"type": "settings", "settings": {"alarm1_micro_yuan": None}}], T0)
    assert ctx.get(state, "alarm1_micro_yuan") == 90_000_000
    assert state["settings"] == {}
    assert ctx.settings(state)["relay_attempts"] == 3


def test_unknown_or_inconsistent_settings_are_refused_naming_the_key():
    ctx = _ctx()
    state = opened(ctx)
    before = repr(state)
    bad = {"type": "settings", "settings": {"alarm_3_micro_yuan": 1}}
    assert "unknown setting 'alarm_3_micro_yuan'" in str(
        raises(SettingsError, engine.step, state, bad, T0, ctx)
    )
    bad = {"type": "settings", "settings": {"alarm2_micro_yuan": 10**12}}
    assert "alarm1 >= alarm2 >= arrears" in str(
        raises(SettingsError, engine.step, state, bad, T0, ctx)
    )
    bad = {"type": "settings", "settings": {"relay_attempts": 0}}
    assert "relay_attempts must be >= 1" in str(
        raises(SettingsError, engine.step, state, bad, T0, ctx)
    )
    assert repr(state) == before
    assert "colour" in str(raises(SettingsError, engine.new_state, "m2", {"colour": 1}))
    assert "zone_rules" in str(raises(SettingsError, engine.Context, {}, None))
    assert "site defaults" in str(raises(SettingsError, engine.Context, {}, [[0, 0]], {"x": 1}))


def test_bad_events_raise_a_clear_error():
    ctx = _ctx()
    state = opened(ctx)
    assert "unknown event type 'explode'" in str(
        raises(EventError, engine.step, state, {"type": "explode"}, T0, ctx)
    )
    assert "must be an object" in str(raises(EventError, engine.step, state, "reading", T0, ctx))
    assert "now must be" in str(raises(EventError, engine.step, state, {"type": "tick"}, 1.5, ctx))
    bad = reading(T0, -1)
    assert "energy_wh" in str(raises(EventError, engine.step, state, bad, T0, ctx))
    bad = reading(T0, 5, relay="half")
    assert "relay" in str(raises(EventError, engine.step, state, bad, T0, ctx))
    bad = reading(T0, 5, power_w=1.5)
    assert "power_w" in str(raises(EventError, engine.step, state, bad, T0, ctx))
    assert "'ok'" in str(
        raises(EventError, engine.step, state, {"type": "contact", "ok": 1}, T0, ctx)
    )


def test_state_survives_a_json_round_trip_mid_stream():
    ctx = _ctx(friendly_windows=[{"days": "daily", "from": "22:00", "to": "07:00"}])
    a = opened(ctx, 5_000_000)
    events_in = [
        reading(local(0, 12), 0, 1_000, "closed"),
        {"type": "credit", "purchase_no": 3, "amount_micro_yuan": 7},
        reading(local(0, 13), 2_000, 2_000, "closed"),
        {"type": "credit", "purchase_no": 2, "amount_micro_yuan": 11},
        reading(local(0, 23), 9_000, 2_000, "closed"),
        {"type": "tick"},
    ]
    b = json.loads(json.dumps(a))
    for i in range(len(events_in)):
        now = local(1, 8) if i == len(events_in) - 1 else events_in[i].get("ts", local(0, 14))
        _, out_a = engine.step(a, events_in[i], now, ctx)
        b = json.loads(json.dumps(b))
        _, out_b = engine.step(b, events_in[i], now, ctx)
        assert out_a == out_b
    assert canon(a) == canon(b)
    check_ledger(b)
