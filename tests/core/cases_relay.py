"""Relay policy (modes x conditions), friendly windows, overload latch, reconciliation.
Plain cases (CPython + MicroPython). Flat tariff 1.00 yuan/kWh: 1 Wh costs 1,000 micro-yuan."""

from edge.core import engine
from edge.core.errors import EventError, SettingsError
from tests.core.casekit import (
    check_ledger,
    ctx_with,
    events,
    local,
    opened,
    raises,
    reading,
    relays,
    run,
)

FLAT = {"t": [{"version": 1, "effective_from": 0, "price_micro_yuan_per_kwh": 1_000_000}]}


def _ctx(**defaults):
    d = {"tariff_id": "t"}
    for k in defaults:
        d[k] = defaults[k]
    return ctx_with(FLAT, d)


def _metered(ctx, balance, settings=None, at=None):
    """An opened meter with ``balance``, its relay closed and a first reading of 0 Wh."""
    at = local(0, 12) if at is None else at
    state = opened(ctx, balance, settings, now=at)
    run(state, ctx, [reading(at, 0, relay="closed")], at)
    return state


def test_prepaid_trips_at_the_floor_and_recloses_only_above_the_reclose_amount():
    ctx = _ctx(reclose_micro_yuan=5_000)
    state = _metered(ctx, 10_000)
    assert state["relay_desired"] == "closed"
    # 9 Wh: balance 1,000 > 0, still closed; 1 Wh more: balance 0 -> trip for credit
    assert relays(run(state, ctx, [reading(local(0, 12, 1), 9)], local(0, 12, 1))) == []
    actions = run(state, ctx, [reading(local(0, 12, 2), 10)], local(0, 12, 2))
    assert relays(actions) == [("trip", "credit")]
    # a credit to 3,000: above the floor but not above the re-close amount -> stays open
    credit = {"type": "credit", "purchase_no": 2, "amount_micro_yuan": 3_000}
    assert relays(run(state, ctx, [credit], local(0, 13))) == []
    credit = {"type": "credit", "purchase_no": 3, "amount_micro_yuan": 2_001}
    assert relays(run(state, ctx, [credit], local(0, 13))) == [("close", "restore")]
    check_ledger(state)


def test_keep_power_never_trips_for_credit_and_the_debt_is_kept():
    ctx = _ctx()
    state = _metered(ctx, 1_000)
    run(state, ctx, [{"type": "mode", "mode": "keep_power"}], local(0, 12))
    actions = run(state, ctx, [reading(local(0, 13), 500, relay="closed")], local(0, 13))
    assert relays(actions) == []
    assert state["balance_micro_yuan"] == 1_000 - 500_000
    assert state["relay_desired"] == "closed"
    # back to prepaid with a debt: trip for credit at once
    assert relays(run(state, ctx, [{"type": "mode", "mode": "prepaid"}], local(0, 13))) == [
        ("trip", "credit")
    ]
    check_ledger(state)


def test_keep_power_closes_a_relay_that_was_open_for_credit():
    ctx = _ctx()
    state = _metered(ctx, 1_000)
    run(state, ctx, [reading(local(0, 12, 1), 1)], local(0, 12, 1))
    assert state["relay_desired"] == "open"
    actions = run(state, ctx, [{"type": "mode", "mode": "keep_power"}], local(0, 12, 1))
    assert relays(actions) == [("close", "keep_power")]


def test_forced_off_trips_and_no_credit_closes_it():
    ctx = _ctx()
    state = _metered(ctx, 1_000)
    assert relays(run(state, ctx, [{"type": "mode", "mode": "forced_off"}], local(0, 12))) == [
        ("trip", "forced")
    ]
    credit = {"type": "credit", "purchase_no": 2, "amount_micro_yuan": 10**9}
    assert relays(run(state, ctx, [credit], local(0, 12))) == []
    assert state["relay_desired"] == "open"
    assert relays(run(state, ctx, [{"type": "mode", "mode": "prepaid"}], local(0, 12))) == [
        ("close", "restore")
    ]


def test_overload_latches_after_n_consecutive_readings_until_cleared():
    ctx = _ctx(overload_power_w=5_000, overload_readings=3)
    state = _metered(ctx, 10**9)
    t = local(0, 12)
    # over, over, under (count resets), over, over, over -> latch on the sixth
    powers = [6_000, 6_000, 4_000, 6_000, 6_000]
    for i in range(len(powers)):
        assert (
            relays(run(state, ctx, [reading(t + i + 1, 0, powers[i], "closed")], t + i + 1)) == []
        )
    actions = run(state, ctx, [reading(t + 6, 0, 7_000, "closed")], t + 6)
    assert relays(actions) == [("trip", "overload")]
    assert events(actions, "overload")[0]["detail"]["power_w"] == 7_000
    # the latch holds though the power is back to normal, even in keep-power mode
    run(state, ctx, [{"type": "mode", "mode": "keep_power"}], t + 7)
    assert relays(run(state, ctx, [reading(t + 8, 0, 100, "open")], t + 8)) == []
    assert state["relay_desired"] == "open"
    assert relays(run(state, ctx, [{"type": "clear_overload"}], t + 9)) == [("close", "keep_power")]


FRIENDLY_NIGHT = [{"days": "daily", "from": "22:00", "to": "07:00"}]


def test_friendly_window_defers_the_trip_until_it_ends():
    ctx = _ctx(friendly_windows=FRIENDLY_NIGHT)
    state = _metered(ctx, 10_000, at=local(0, 21))
    # 23:00: the credit runs out inside the window: no trip, the debt grows
    actions = run(state, ctx, [reading(local(0, 23), 30, relay="closed")], local(0, 23))
    assert relays(actions) == []
    assert state["balance_micro_yuan"] == -20_000
    assert state["trip_deferred"] is True
    assert relays(run(state, ctx, [{"type": "tick"}], local(1, 6, 59))) == []
    # 07:00 the window is over and the balance is still below the floor: trip
    assert relays(run(state, ctx, [{"type": "tick"}], local(1, 7))) == [("trip", "credit")]
    assert state["trip_deferred"] is False
    check_ledger(state)


def test_debt_run_up_in_a_friendly_window_is_recovered_from_the_next_credit():
    ctx = _ctx(friendly_windows=FRIENDLY_NIGHT)
    state = _metered(ctx, 10_000, at=local(0, 21))
    run(state, ctx, [reading(local(0, 23), 30, relay="closed")], local(0, 23))
    credit = {"type": "credit", "purchase_no": 2, "amount_micro_yuan": 50_000}
    run(state, ctx, [credit], local(1, 1))
    assert state["balance_micro_yuan"] == 30_000  # 50,000 - the 20,000 debt
    assert relays(run(state, ctx, [{"type": "tick"}], local(1, 7))) == []
    check_ledger(state)


def test_holiday_and_weekend_windows():
    windows = [
        {"days": "holidays", "from": "00:00", "to": "24:00"},
        {"days": "weekend", "from": "00:00", "to": "24:00"},
    ]
    ctx = _ctx(friendly_windows=windows, holidays=["2026-01-05"])
    # 2026-01-05 (Monday, a holiday): no trip; 2026-01-06 (Tuesday): trip at midnight's tick
    state = _metered(ctx, 1_000, at=local(4, 10))
    assert relays(run(state, ctx, [reading(local(4, 11), 5)], local(4, 11))) == []
    assert relays(run(state, ctx, [{"type": "tick"}], local(5, 0))) == [("trip", "credit")]
    # 2026-01-03 is a Saturday
    state = _metered(ctx, 1_000, at=local(2, 10))
    assert relays(run(state, ctx, [reading(local(2, 11), 5)], local(2, 11))) == []


def test_a_relay_that_does_not_follow_yields_one_relay_fault_after_k_attempts():
    ctx = _ctx(relay_attempts=3)
    state = _metered(ctx, 1_000)
    t = local(0, 12)
    assert relays(run(state, ctx, [reading(t + 1, 1, relay="closed")], t + 1)) == [
        ("trip", "credit")
    ]
    # the relay still reports closed: two more commands (3 in all), then one fault event
    assert relays(run(state, ctx, [reading(t + 2, 1, relay="closed")], t + 2)) == [
        ("trip", "credit")
    ]
    assert relays(run(state, ctx, [reading(t + 3, 1, relay="closed")], t + 3)) == [
        ("trip", "credit")
    ]
    actions = run(state, ctx, [reading(t + 4, 1, relay="closed")], t + 4)
    assert relays(actions) == []
    assert len(events(actions, "relay_fault")) == 1
    assert events(run(state, ctx, [reading(t + 5, 1, relay="closed")], t + 5), "relay_fault") == []
    # the relay finally opens: the fault clears
    run(state, ctx, [reading(t + 6, 1, relay="open")], t + 6)
    assert state["relay_fault"] is False
    assert state["relay_attempts"] == 0


def test_a_meter_without_an_account_is_not_driven():
    ctx = _ctx()
    state = engine.new_state("m1")
    actions = run(
        state, ctx, [reading(local(0, 1), 0, relay="open"), {"type": "tick"}], local(0, 1)
    )
    assert relays(actions) == []
    assert state["relay_desired"] is None


def test_bad_mode_and_bad_windows_are_refused():
    ctx = _ctx()
    state = _metered(ctx, 1_000)
    assert "mode" in str(
        raises(EventError, engine.step, state, {"type": "mode", "mode": "off"}, 0, ctx)
    )
    bad = {
        "type": "settings",
        "settings": {"friendly_windows": [{"days": "sundays", "from": "22:00", "to": "07:00"}]},
    }
    assert "friendly_windows[0]" in str(raises(SettingsError, engine.step, state, bad, 0, ctx))
    bad = {
        "type": "settings",
        "settings": {"friendly_windows": [{"days": "daily", "from": "07:00", "to": "07:00"}]},
    }
    assert "whole day" in str(raises(SettingsError, engine.step, state, bad, 0, ctx))
