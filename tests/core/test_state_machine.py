"""A Hypothesis state machine over wallet + relay policy (CPython only).

Rules drive one opened meter through credits (in order, duplicated, with gaps), refunds,
consumption, time passing, mode commands, overload, friendly windows, floor and re-close
changes. Invariants after every step:

- the ledger identity, to the micro-yuan;
- keep power: never tripped for credit (no ``trip``/``credit`` action, desired never open for
  credit);
- forced off: never closed (no ``close`` action, desired open);
- prepaid: the relay is desired closed only when allowed: with the balance at or below the
  overdraft floor only inside a friendly window (a deferred trip); open for credit only while
  the balance is not above the re-close amount; a ``close`` command only above the floor.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from edge.core import engine
from edge.core.windows import compile_windows, in_window
from tests.core.casekit import CN, T0, check_ledger

FLAT = {"t": [{"version": 1, "effective_from": 0, "price_micro_yuan_per_kwh": 1_000_000}]}
# a long window (18 h a day, wrapping midnight) so that deferred trips are common
NIGHT = [{"days": "daily", "from": "18:00", "to": "12:00"}]


class WalletAndRelay(RuleBasedStateMachine):
    @initialize(friendly=st.booleans())
    def start(self, friendly: bool) -> None:
        defaults = {
            "tariff_id": "t",
            "rated_power_w": None,
            "overload_power_w": 9_000,
            "overload_readings": 2,
            "friendly_windows": NIGHT if friendly else [],
        }
        self.ctx = engine.Context(FLAT, CN, defaults)
        self.state = engine.new_state("m")
        self.now = T0 + 20 * 3600  # 20:00 local: inside the window when there is one
        self.energy = 0
        self.next_no = 2
        self.actions: list[dict[str, Any]] = []
        self.step({"type": "open_account"})
        self.step({"type": "credit", "purchase_no": 1, "amount_micro_yuan": 50_000})
        self.step({"type": "reading", "ts": self.now, "energy_wh": 0, "relay": "closed"})

    def step(self, event: dict[str, Any]) -> None:
        self.mode_before = self.state["mode"]
        _, self.actions = engine.step(self.state, event, self.now, self.ctx)

    @rule(amount=st.integers(1, 30_000))
    def credit_next(self, amount: int) -> None:
        self.step({"type": "credit", "purchase_no": self.next_no, "amount_micro_yuan": amount})
        self.next_no += 1

    @rule(ahead=st.integers(1, 3), amount=st.integers(1, 30_000))
    def credit_with_gap(self, ahead: int, amount: int) -> None:
        n = self.state["last_purchase_no"] + 1 + ahead
        self.step({"type": "credit", "purchase_no": n, "amount_micro_yuan": amount})
        self.next_no = max(self.next_no, self.state["last_purchase_no"] + 1)

    @rule(back=st.integers(0, 3))
    def credit_duplicate(self, back: int) -> None:
        n = max(1, self.state["last_purchase_no"] - back)
        self.step({"type": "credit", "purchase_no": n, "amount_micro_yuan": 1})

    @rule(amount=st.integers(1, 20_000))
    def refund(self, amount: int) -> None:
        self.step({"type": "refund", "amount_micro_yuan": amount})

    @rule(wh=st.integers(0, 40), seconds=st.integers(1, 4 * 3600), relay=st.booleans())
    def use_energy(self, wh: int, seconds: int, relay: bool) -> None:
        self.now += seconds
        self.energy += wh
        # the meter reports the relay where the engine wants it (or nothing)
        reported = self.state["relay_desired"] if relay else None
        self.step({"type": "reading", "ts": self.now, "energy_wh": self.energy, "relay": reported})

    @rule(power=st.integers(0, 20_000))
    def power_reading(self, power: int) -> None:
        self.now += 30
        self.step({"type": "reading", "ts": self.now, "energy_wh": self.energy, "power_w": power})

    @rule()
    def clear_overload(self) -> None:
        self.step({"type": "clear_overload"})

    @rule(seconds=st.integers(1, 6 * 3600))
    def tick(self, seconds: int) -> None:
        self.now += seconds
        self.step({"type": "tick"})

    @rule(mode=st.sampled_from(["prepaid", "keep_power", "forced_off"]))
    def mode(self, mode: str) -> None:
        self.step({"type": "mode", "mode": mode})

    @rule(
        floor=st.integers(-20_000, 5_000),
        reclose=st.integers(-20_000, 20_000),
        friendly=st.booleans(),
    )
    def settings(self, floor: int, reclose: int, friendly: bool) -> None:
        partial = {
            "overdraft_floor_micro_yuan": floor,
            "reclose_micro_yuan": reclose,
            "friendly_windows": NIGHT if friendly else [],
        }
        self.step({"type": "settings", "settings": partial})

    @invariant()
    def ledger_identity(self) -> None:
        check_ledger(self.state)

    @invariant()
    def relay_policy(self) -> None:
        state = self.state
        ops = [(a["op"], a["reason"]) for a in self.actions if a["type"] == "relay"]
        mode = state["mode"]
        if mode == "keep_power" and self.mode_before == "keep_power":
            assert ("trip", "credit") not in ops
        if mode == "keep_power":
            assert state["relay_reason"] != "credit"
            if not state["overload_latched"]:
                assert state["relay_desired"] == "closed"
        if mode == "forced_off":
            assert state["relay_desired"] == "open"
            assert [op for op, _ in ops if op == "close"] == []
        if mode == "prepaid" and state["relay_desired"] == "closed":
            assert not state["overload_latched"]
            floor = self.ctx.get(state, "overdraft_floor_micro_yuan")
            if state["balance_micro_yuan"] <= floor:
                windows = compile_windows(self.ctx.get(state, "friendly_windows"), "w")
                days, sod = self.ctx.zone.local_fields(self.now)
                assert in_window(windows, {}, days, sod), "closed below the floor outside a window"
        if (
            mode == "prepaid"
            and state["relay_desired"] == "open"
            and state["relay_reason"] == "credit"
        ):
            floor = self.ctx.get(state, "overdraft_floor_micro_yuan")
            reclose = max(floor, self.ctx.get(state, "reclose_micro_yuan"))
            assert state["balance_micro_yuan"] <= reclose
        if state["trip_deferred"]:
            assert mode == "prepaid"
            assert state["relay_desired"] == "closed"
            floor = self.ctx.get(state, "overdraft_floor_micro_yuan")
            assert state["balance_micro_yuan"] <= floor
        for op, _ in ops:
            if op == "close" and mode == "prepaid":
                assert state["balance_micro_yuan"] > self.ctx.get(
                    state, "overdraft_floor_micro_yuan"
                )


WalletAndRelay.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_wallet_and_relay_state_machine = WalletAndRelay.TestCase
