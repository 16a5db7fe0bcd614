"""Hypothesis properties of the engine's arithmetic and wallet (CPython only).

- charge exactness: any split of the same energy costs exactly the same, to the micro-yuan
  (with the carry), for a flat price and across tier thresholds;
- rating splits: the pieces of any delta over any span sum exactly to the delta;
- the ledger identity ``balance == credits - refunds - charges`` after any sequence of
  operations, and the totals agree with the actions emitted;
- credits are idempotent and applied in purchase order whatever order they arrive in.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.core import engine, money
from edge.core.errors import TransitionError
from edge.core.rating import Timeline
from edge.core.tariff import compile_tariff
from edge.core.tz import ZoneRules
from tests.core.casekit import CN, T0, TOU, check_ledger, of_type

PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TIERED_FLAT = {
    "version": 1,
    "effective_from": 0,
    "tiers": {
        "period": "month",
        "mode": "price",
        "steps": [[0, 486_300], [5, 536_300], [12, 786_300]],
    },
}


def _opened(ctx: engine.Context, balance: int = 10**15) -> dict[str, Any]:
    state = engine.new_state("m")
    engine.step(state, {"type": "open_account"}, T0, ctx)
    engine.step(state, {"type": "credit", "purchase_no": 1, "amount_micro_yuan": balance}, T0, ctx)
    return state


def _feed_energy(ctx: engine.Context, chunks: list[int], start_wh: int) -> tuple[int, int, int]:
    """Feed readings 1 s apart (all within one band window), returns (charged, carry, energy)."""
    state = _opened(ctx)
    ts = T0 + 2 * 3600  # 02:00 local, valley
    engine.step(state, {"type": "reading", "ts": ts, "energy_wh": start_wh}, ts, ctx)
    total = 0
    energy = start_wh
    for chunk in chunks:
        ts += 1
        energy += chunk
        _, actions = engine.step(state, {"type": "reading", "ts": ts, "energy_wh": energy}, ts, ctx)
        total += sum(a["amount_micro_yuan"] for a in of_type(actions, "charge"))
    check_ledger(state)
    assert state["charges_micro_yuan"] == total
    return total, state["carry"], energy - start_wh


@PROFILE
@given(
    price=st.integers(0, 5_000_000),
    chunks=st.lists(st.integers(0, 3_000), min_size=1, max_size=40),
)
def test_charge_is_exact_under_any_split_of_the_same_energy_at_a_flat_price(
    price: int, chunks: list[int]
) -> None:
    flat = {"t": [{"version": 1, "effective_from": 0, "price_micro_yuan_per_kwh": price}]}
    ctx = engine.Context(flat, CN, {"tariff_id": "t", "rated_power_w": None})
    charged, carry, energy = _feed_energy(ctx, chunks, 0)
    assert charged * 1000 + carry == energy * price
    one_shot, one_carry, _ = _feed_energy(ctx, [energy], 0)
    assert (charged, carry) == (one_shot, one_carry)


@PROFILE
@given(chunks=st.lists(st.integers(0, 4_000), min_size=1, max_size=30))
def test_charge_across_tier_thresholds_does_not_depend_on_how_the_energy_was_split(
    chunks: list[int],
) -> None:
    ctx = engine.Context({"t": [TIERED_FLAT]}, CN, {"tariff_id": "t", "rated_power_w": None})
    charged, carry, energy = _feed_energy(ctx, chunks, 7)
    one_shot, one_carry, _ = _feed_energy(ctx, [energy], 7)
    assert (charged, carry) == (one_shot, one_carry)
    # and both equal the tiered price of the whole, worked out independently
    exact = 0
    for k in range(energy):  # Wh number k (0-based) of the month
        exact += 486_300 if k < 5_000 else 536_300 if k < 12_000 else 786_300
    assert charged * 1000 + carry == exact


@PROFILE
@given(
    pieces=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**7)), max_size=30),
    cut=st.lists(st.integers(0, 30), max_size=5),
)
def test_money_charge_with_carry_is_exact_however_pieces_are_grouped(
    pieces: list[tuple[int, int]], cut: list[int]
) -> None:
    bounds = sorted({0, len(pieces), *[min(c, len(pieces)) for c in cut]})
    carry = 0
    total = 0
    for a, b in itertools.pairwise(bounds):
        amount, carry = money.charge([{"wh": w, "price": p} for w, p in pieces[a:b]], carry)
        total += amount
    assert total * 1000 + carry == sum(w * p for w, p in pieces)
    assert 0 <= carry < 1000


@PROFILE
@given(
    t0=st.integers(T0 - 400 * 86400, T0 + 400 * 86400),
    span=st.integers(0, 5 * 86400),
    delta=st.integers(0, 10**9),
)
def test_rating_spread_sums_exactly_to_the_delta(t0: int, span: int, delta: int) -> None:
    version = dict(TOU)
    version["weekend"] = [["00:00", "valley"], ["12:00", "peak"]]
    version["seasons"] = [{"months": [6, 8], "day": [["00:00", "peak"], ["23:00", "valley"]]}]
    zone = ZoneRules([[0, 3600], [T0, 7200], [T0 + 100 * 86400, 3600]])
    timeline = Timeline(compile_tariff("t", [version]), zone)
    spread = timeline.spread(t0, t0 + span, delta)
    assert sum(wh for wh, _ in spread) == delta
    for wh, window in spread:
        assert wh > 0 or len(spread) == 1
        assert window[0] < t0 + span or span == 0
        assert window[1] > t0


def _op_event(op: tuple[Any, ...], clock: dict[str, int]) -> dict[str, Any]:
    """The engine event of one generated operation; ``clock`` carries ``now`` and the counter."""
    kind = op[0]
    if kind == "credit":
        return {"type": "credit", "purchase_no": op[1], "amount_micro_yuan": op[2]}
    if kind in ("refund", "transfer_in"):
        return {"type": kind, "amount_micro_yuan": op[1]}
    if kind == "reversal":
        return {"type": "reversal", "purchase_no": op[1]}
    if kind == "use":
        clock["now"] += op[2]
        clock["energy"] += op[1]
        return {
            "type": "reading",
            "ts": clock["now"],
            "energy_wh": clock["energy"],
            "power_w": None,
            "relay": None,
        }
    if kind == "reset":
        clock["now"] += 10
        clock["energy"] = op[1]
        return {"type": "reading", "ts": clock["now"], "energy_wh": clock["energy"]}
    if kind == "mode":
        return {"type": "mode", "mode": op[1]}
    if kind == "cap":
        return {"type": "settings", "settings": {"hoarding_cap_micro_yuan": op[1]}}
    if kind == "account":
        return {"type": op[1]}
    return {"type": "resolve_anomaly", "action": op[1]}


@PROFILE
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("credit"), st.integers(1, 12), st.integers(1, 10**8)),
            st.tuples(st.just("refund"), st.integers(1, 10**8)),
            st.tuples(st.just("reversal"), st.integers(1, 12)),
            st.tuples(st.just("transfer_in"), st.integers(1, 10**8)),
            st.tuples(st.just("use"), st.integers(0, 50_000), st.integers(1, 7200)),
            st.tuples(st.just("reset"), st.integers(0, 1000)),
            st.tuples(st.just("mode"), st.sampled_from(["prepaid", "keep_power", "forced_off"])),
            st.tuples(st.just("cap"), st.one_of(st.none(), st.integers(0, 3 * 10**8))),
            st.tuples(st.just("account"), st.sampled_from(["open_account", "close_account"])),
            st.tuples(st.just("resolve"), st.sampled_from(["bill", "rebase"])),
        ),
        max_size=40,
    )
)
def test_ledger_identity_holds_after_any_sequence_of_operations(ops: list[tuple[Any, ...]]) -> None:
    ctx = engine.Context({"tou": [TOU]}, CN, {"tariff_id": "tou", "rated_power_w": 20_000})
    state = engine.new_state("m")
    engine.step(state, {"type": "open_account"}, T0, ctx)
    clock = {"now": T0, "energy": 0}
    sums = {"credits": 0, "refunds": 0, "charges": 0}
    for op in ops:
        event = _op_event(op, clock)
        try:
            _, actions = engine.step(state, event, clock["now"], ctx)
        except TransitionError:
            continue  # an illegal transition changes nothing
        for a in actions:
            if a["type"] == "charge":
                sums["charges"] += a["amount_micro_yuan"]
                assert sum(p["wh"] for p in a["pieces"]) == a["energy_wh"]
            elif a["type"] == "ledger":
                if a["kind"] in ("credit", "transfer_in", "settlement_credit"):
                    sums["credits"] += a["amount_micro_yuan"]
                else:
                    sums["refunds"] += a["amount_micro_yuan"]
        check_ledger(state)
        assert state["credits_micro_yuan"] == sums["credits"]
        assert state["refunds_micro_yuan"] == sums["refunds"]
        assert state["charges_micro_yuan"] == sums["charges"]


@st.composite
def _arrivals(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    amounts = draw(st.lists(st.integers(1, 10**7), min_size=1, max_size=25))
    order = draw(st.permutations(list(range(1, len(amounts) + 1))))
    dups = draw(st.lists(st.integers(0, len(amounts) - 1), max_size=15))
    arrivals = list(order)
    for i, d in enumerate(dups):
        arrivals.insert(draw(st.integers(0, len(arrivals))), order[d] if i % 2 else order[-1 - d])
    return amounts, arrivals


@settings(max_examples=300, deadline=None)
@given(_arrivals())
def test_credits_are_idempotent_and_applied_in_purchase_order_whatever_the_arrival_order(
    case: tuple[list[int], list[int]],
) -> None:
    amounts, arrivals = case
    ctx = engine.Context({"tou": [TOU]}, CN, {"tariff_id": "tou"})
    state = engine.new_state("m")
    engine.step(state, {"type": "open_account"}, T0, ctx)
    applied: list[int] = []
    for n in arrivals:
        event = {"type": "credit", "purchase_no": n, "amount_micro_yuan": amounts[n - 1]}
        _, actions = engine.step(state, event, T0, ctx)
        applied.extend(a["purchase_no"] for a in of_type(actions, "ledger"))
        check_ledger(state)
    assert applied == list(range(1, len(amounts) + 1))
    assert state["balance_micro_yuan"] == sum(amounts)
    assert state["held"] == []
    # every one of them again, in any order: nothing changes, each answers duplicate
    before = dict(state)
    for n in arrivals:
        event = {"type": "credit", "purchase_no": n, "amount_micro_yuan": amounts[n - 1]}
        _, actions = engine.step(state, event, T0, ctx)
        assert [a["status"] for a in of_type(actions, "result")] == ["duplicate"]
        assert of_type(actions, "ledger") == []
    assert state["balance_micro_yuan"] == before["balance_micro_yuan"]
