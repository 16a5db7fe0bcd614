"""A simulated meter's physics: energy integrated from a load profile, a relay that drops the
load when open, a clock that may drift, a counter that may reset, and the faults it shows.

Energy is integrated exactly in integer millijoules over the profile's one-minute steps, so the
counters depend only on the seed, the simulated time and what was commanded, never on how often
someone polled. The protocol personalities (``modbus_slave``, ``dlt645_slave``) read this state.
"""

from __future__ import annotations

from typing import Any

from edge.sim.profile import BANDS, MINUTE_MS, StudioProfile, band_of, mix

MJ_PER_WH = 3_600_000
MJ_PER_FEN = 36_000_000  # the meter's own wallet: 1 yuan/kWh, 1 fen per 10 Wh

# Faults, their defaults, and their types (the control channel validates against this).
FAULTS: dict[str, Any] = {
    "dead": False,  # never answers
    "crc_error_rate": 0.0,  # probability a reply's CRC / checksum is corrupted
    "garbage_rate": 0.0,  # probability of junk bytes around a reply
    "slow_ms": 0,  # extra turnaround before replying
    "counter_reset_at": None,  # sim epoch seconds: the energy counters restart from 0
    "clock_drift_s_per_day": 0,  # the meter clock gains (or loses) this much per day
    "clock_offset_s": 0,  # the meter clock is off by this much
    "relay_stuck": False,  # acknowledges relay commands but does not move
    "refuse_relay": False,  # DL/T 645: refuses 1CH as unauthorised (ERR bit 2)
}
_FAULT_TYPES = {
    "dead": bool,
    "crc_error_rate": float,
    "garbage_rate": float,
    "slow_ms": int,
    "counter_reset_at": int,
    "clock_drift_s_per_day": int,
    "clock_offset_s": int,
    "relay_stuck": bool,
    "refuse_relay": bool,
}


def check_faults(values: dict[str, Any]) -> dict[str, Any]:
    """Validated fault settings; ValueError naming an unknown key or a bad value."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in FAULTS:
            raise ValueError(f"unknown fault {key!r} (known: {', '.join(sorted(FAULTS))})")
        kind = _FAULT_TYPES[key]
        if value is None and key == "counter_reset_at":
            out[key] = None
            continue
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"fault {key} must be true or false (got {value!r})")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"fault {key} must be an integer (got {value!r})")
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"fault {key} must be a number (got {value!r})")
            if not 0 <= value <= 1:
                raise ValueError(f"fault {key} is a probability 0..1 (got {value!r})")
            value = float(value)
        out[key] = value
    return out


class SimMeter:
    """One simulated meter's state. Times are simulated epoch milliseconds."""

    def __init__(
        self,
        index: int,
        address: Any,
        profile: StudioProfile,
        start_ms: int,
        seed: int,
        utc_offset_s: int = 8 * 3600,
        speed: float = 1.0,
    ) -> None:
        self.index = index
        # ``--speed`` accelerates consumption (energy, load profile), not the meter's own clock:
        # the collector talks to meters in real time (DL/T 645 relay commands carry an expiry in
        # the collector's time), as in the field.
        self.speed = speed
        self.address = address
        self.profile = profile
        self.utc_offset_s = utc_offset_s
        start_wh = 1_000 + mix(seed, index, 6) % 5_000_000
        # Split the starting counter over the bands so they add up to the total.
        shares = (10, 30, 35, 25)
        self.band_mj = [start_wh * s // 100 * MJ_PER_WH for s in shares]
        self.band_mj[3] += start_wh * MJ_PER_WH - sum(self.band_mj)
        self.energy_mj = start_wh * MJ_PER_WH
        self.last_ms = start_ms
        self.start_ms = start_ms
        self.load_override_w: int | None = None
        self.relay_closed = True
        self.faults: dict[str, Any] = {}
        self.reset_done = False
        self.clock_set: tuple[int, int] | None = None  # (sim ms when set, meter ms then)
        # Acrel prepaid personality
        self.run_state = 0
        self.force = [0, 0]
        self.remaining_fen = 50_000
        self.purchase_count = 1
        self._wallet_mj = 0
        # DL/T 645 personality
        self.keep_power = False
        self.commanded_open = False
        self.written: dict[int, bytes] = {}

    # --- physics ------------------------------------------------------------------------------

    def load_w(self, minute: int) -> int:
        if self.load_override_w is not None:
            return self.load_override_w
        return self.profile.load_w(self.index, minute)

    def power_w(self, now_ms: int) -> int:
        """The power drawn now (0 with the relay open)."""
        return self.load_w(now_ms // MINUTE_MS) if self.relay_closed else 0

    def advance(self, now_ms: int, faults: dict[str, Any]) -> None:
        """Integrate energy up to ``now_ms``; apply a counter reset that falls inside."""
        stuck = bool(faults.get("relay_stuck"))
        reset_at = faults.get("counter_reset_at")
        if reset_at is not None and not self.reset_done and reset_at * 1000 <= now_ms:
            self._integrate(max(self.last_ms, reset_at * 1000), stuck)
            self.energy_mj = 0
            self.band_mj = [0, 0, 0, 0]
            self.reset_done = True
        self._integrate(now_ms, stuck)
        self.update_relay(stuck)

    def _integrate(self, now_ms: int, stuck: bool) -> None:
        t = self.last_ms
        if now_ms <= t:
            return
        while t < now_ms:
            minute = t // MINUTE_MS
            end = min(now_ms, (minute + 1) * MINUTE_MS)
            if self.relay_closed:
                mj = self.load_w(minute) * (end - t)
                self.energy_mj += mj
                self.band_mj[band_of(minute, self.utc_offset_s)] += mj
                self._wallet_mj += mj
            t = end
        self.last_ms = now_ms
        if self._wallet_mj >= MJ_PER_FEN:
            self.remaining_fen -= self._wallet_mj // MJ_PER_FEN
            self._wallet_mj %= MJ_PER_FEN
        # The wallet may have run dry: an internally controlled meter trips itself.
        self.update_relay(stuck)

    def energy_wh(self) -> int:
        return self.energy_mj // MJ_PER_WH

    def band_energy_wh(self) -> dict[str, int]:
        return {band: mj // MJ_PER_WH for band, mj in zip(BANDS, self.band_mj, strict=True)}

    # --- relay ----------------------------------------------------------------------------

    def update_relay(self, stuck: bool) -> None:
        """Set the relay from the control state: Acrel force control first, then DL/T 645
        keep-power / commands, then the Acrel meter's own wallet in internal mode."""
        if stuck:
            return
        if self.force[0]:
            closed = not self.force[1]
        elif self.keep_power:
            closed = True
        elif self.commanded_open:
            closed = False
        elif self.run_state & 0x08:
            closed = True  # external control, not forced: power stays on
        else:
            closed = self.remaining_fen > 0
        self.relay_closed = closed

    # --- clock --------------------------------------------------------------------------------

    def clock_ms(self, now_ms: int, faults: dict[str, Any]) -> int:
        """The meter's own clock (epoch ms) with offset and drift; it runs at the real rate
        whatever the simulation speed (``now_ms`` is simulated time)."""
        since, base = self.clock_set or (self.start_ms, self.start_ms)
        elapsed = int((now_ms - since) / self.speed)
        drift_ms = elapsed * int(faults.get("clock_drift_s_per_day") or 0) // 86_400
        return base + elapsed + drift_ms + int(faults.get("clock_offset_s") or 0) * 1000

    def set_clock(self, now_ms: int, meter_ms: int) -> None:
        self.clock_set = (now_ms, meter_ms)

    def state(self, now_ms: int, faults: dict[str, Any]) -> dict[str, Any]:
        """The true state, for the control channel (and tests)."""
        return {
            "address": self.address,
            "energy_wh": self.energy_wh(),
            "band_energy_wh": self.band_energy_wh(),
            "power_w": self.power_w(now_ms),
            "load_w": self.load_w(now_ms // MINUTE_MS),
            "relay": "closed" if self.relay_closed else "open",
            "clock": self.clock_ms(now_ms, faults) // 1000,
            "sim_ts": now_ms // 1000,
            "remaining_fen": self.remaining_fen,
            "external_control": bool(self.run_state & 0x08),
            "force": list(self.force),
            "keep_power": self.keep_power,
            "load_override_w": self.load_override_w,
            "faults": {k: v for k, v in faults.items() if v != FAULTS[k]},
        }
