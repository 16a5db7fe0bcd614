"""Readings: deltas, counter wrap and reset, implausible jumps held (B06). Plain cases."""

from edge.core import engine, readings
from edge.core.errors import EventError, TransitionError
from tests.core.casekit import (
    check_ledger,
    ctx_with,
    events,
    local,
    of_type,
    opened,
    raises,
    reading,
    run,
)

FLAT = {"t": [{"version": 1, "effective_from": 0, "price_micro_yuan_per_kwh": 1_000_000}]}
WRAP = 2**32 * 10  # u32 at 0.01 kWh, in Wh: 42,949,672,960


def _ctx(defaults=None):
    d = {"tariff_id": "t"}
    for k in defaults or {}:
        d[k] = defaults[k]
    return ctx_with(FLAT, d)


def test_first_reading_sets_the_baseline_without_charging():
    ctx = _ctx()
    state = opened(ctx, 10**9)
    actions = run(state, ctx, [reading(local(0, 9), 123_456)], local(0, 9))
    assert of_type(actions, "charge") == []
    assert state["last_energy_wh"] == 123_456


def test_u32_register_wrap_is_recognised_and_billed_across_it():
    # 20 Wh below the top, then 30 Wh after the wrap: 50 Wh at 1.00 yuan = 50,000
    ctx = _ctx()
    state = opened(ctx, 10**9)
    run(state, ctx, [reading(local(0, 9), WRAP - 20)], local(0, 9))
    actions = run(state, ctx, [reading(local(0, 9, 1), 30)], local(0, 9, 1))
    assert events(actions, "counter_wrap")[0]["detail"]["delta_wh"] == 50
    assert of_type(actions, "charge")[0]["amount_micro_yuan"] == 50_000
    check_ledger(state)


def test_counter_reset_rebases_and_reports_both_values():
    ctx = _ctx()
    state = opened(ctx, 10**9)
    run(state, ctx, [reading(local(0, 9), 5_000_000)], local(0, 9))
    actions = run(state, ctx, [reading(local(0, 9, 1), 40)], local(0, 9, 1))
    detail = events(actions, "counter_reset")[0]["detail"]
    assert (detail["from_wh"], detail["to_wh"]) == (5_000_000, 40)
    assert of_type(actions, "charge") == []
    # counting goes on from the new value
    actions = run(state, ctx, [reading(local(0, 9, 2), 140)], local(0, 9, 2))
    assert of_type(actions, "charge")[0]["energy_wh"] == 100


def test_max_plausible_energy_allows_rated_power_with_slack():
    # 100 kW for 30 s is 833.3 Wh; slack 60 s and one register step: 100000*90/3600 + 10
    assert readings.max_plausible_wh(100_000, 30) == 2_510
    assert readings.max_plausible_wh(None, 30) is None
    assert readings.classify(0, 0, 2_510, 30, 100_000, WRAP) == ("normal", 2_510)
    assert readings.classify(0, 0, 2_511, 30, 100_000, WRAP) == ("jump", 2_511)
    assert readings.classify(100, 50, 0, 40, 100_000, WRAP) == ("stale", 0)


def _held(ctx):
    state = opened(ctx, 10**10)
    run(state, ctx, [reading(local(0, 9), 1_000)], local(0, 9))
    # 30 s later the register is 500 kWh higher: far beyond 10 kW rated
    actions = run(state, ctx, [reading(local(0, 9, 0, 30), 501_000)], local(0, 9, 0, 30))
    assert events(actions, "jump_held")[0]["detail"]["delta_wh"] == 500_000
    assert of_type(actions, "charge") == []
    return state


def test_implausible_jump_is_held_not_billed_until_resolved_as_bill():
    ctx = _ctx({"rated_power_w": 10_000})
    state = _held(ctx)
    # while held, readings are not billed; the hold follows the register
    actions = run(state, ctx, [reading(local(0, 10), 501_100)], local(0, 10))
    assert of_type(actions, "charge") == []
    assert state["anomaly"]["seen_wh"] == 501_100
    # the office says the jump was real: bill everything since the last good value
    actions = run(state, ctx, [{"type": "resolve_anomaly", "action": "bill"}], local(0, 10))
    assert of_type(actions, "charge")[0]["energy_wh"] == 500_100
    assert events(actions, "anomaly_resolved")[0]["detail"]["how"] == "bill"
    assert state["anomaly"] is None
    assert state["last_energy_wh"] == 501_100
    check_ledger(state)


def test_held_jump_resolved_as_rebase_bills_only_what_came_after_it():
    ctx = _ctx({"rated_power_w": 10_000})
    state = _held(ctx)
    run(state, ctx, [reading(local(0, 10), 501_100)], local(0, 10))
    actions = run(state, ctx, [{"type": "resolve_anomaly", "action": "rebase"}], local(0, 10))
    assert of_type(actions, "charge")[0]["energy_wh"] == 100  # 501,100 - 501,000
    check_ledger(state)


def test_a_single_garbage_read_clears_itself_when_the_register_comes_back():
    ctx = _ctx({"rated_power_w": 10_000})
    state = _held(ctx)
    # next reading is back near the old value: 1,000 -> 1,050 in 60 s is plausible
    actions = run(state, ctx, [reading(local(0, 9, 1), 1_050)], local(0, 9, 1))
    assert events(actions, "anomaly_resolved")[0]["detail"]["how"] == "auto"
    assert of_type(actions, "charge")[0]["energy_wh"] == 50
    assert state["anomaly"] is None


def test_a_real_jump_is_not_billed_blindly_however_long_it_waits():
    # hours later the register still sits above the jump: still held, never auto-billed
    ctx = _ctx({"rated_power_w": 10_000})
    state = _held(ctx)
    actions = run(state, ctx, [reading(local(3, 9), 501_200)], local(3, 9))
    assert of_type(actions, "charge") == []
    assert state["anomaly"] is not None


def test_resolving_without_a_held_anomaly_is_an_illegal_transition():
    ctx = _ctx()
    state = opened(ctx)
    exc = raises(
        TransitionError, engine.step, state, {"type": "resolve_anomaly", "action": "bill"}, 0, ctx
    )
    assert "no held reading anomaly" in str(exc)


def test_stale_reading_is_ignored_and_its_energy_counted_by_the_next():
    ctx = _ctx()
    state = opened(ctx, 10**9)
    run(state, ctx, [reading(local(0, 9), 1_000)], local(0, 9))
    actions = run(state, ctx, [reading(local(0, 8), 1_200)], local(0, 9))
    assert of_type(actions, "charge") == []
    actions = run(state, ctx, [reading(local(0, 9, 1), 1_300)], local(0, 9, 1))
    assert of_type(actions, "charge")[0]["energy_wh"] == 300


def test_energy_without_an_open_account_is_counted_as_unbilled():
    ctx = _ctx()
    state = engine.new_state("m1")
    run(state, ctx, [reading(local(0, 9), 1_000), reading(local(0, 9, 1), 1_500)], local(0, 9, 1))
    assert state["unbilled_wh"] == 500
    assert state["charges_micro_yuan"] == 0


def test_a_reading_from_the_future_is_refused_and_changes_nothing():
    ctx = _ctx()
    state = opened(ctx, 10**9)
    run(state, ctx, [reading(local(0, 9), 1_000)], local(0, 9))
    before = repr(state)
    exc = raises(EventError, engine.step, state, reading(local(0, 11), 1_100), local(0, 9), ctx)
    assert "ahead of now" in str(exc)
    assert repr(state) == before


def test_a_clock_that_went_back_a_long_way_restarts_time_instead_of_freezing_billing():
    ctx = _ctx()
    state = opened(ctx, 10**9)
    run(state, ctx, [reading(local(0, 12), 1_000)], local(0, 12))
    # the clock is stepped back three hours: a small delta is billed, time restarts
    actions = run(state, ctx, [reading(local(0, 9), 1_020)], local(0, 9))
    assert events(actions, "clock_back")[0]["detail"] == {
        "from_ts": local(0, 12),
        "to_ts": local(0, 9),
    }
    assert of_type(actions, "charge")[0]["energy_wh"] == 20
    actions = run(state, ctx, [reading(local(0, 9, 1), 1_050)], local(0, 9, 1))
    assert of_type(actions, "charge")[0]["energy_wh"] == 30
    check_ledger(state)
