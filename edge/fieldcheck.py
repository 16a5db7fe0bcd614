"""Checks of one meter on its line, shared by the site self-test (``gridvend provision selftest``)
and the hardware-in-the-loop catalogue (``hil/``): is a reading plausible, is the meter's clock
close enough, does the relay follow a trip and a close.

Each check returns a short detail for a PASS line and raises :class:`CheckFailed` with what was
wrong (and what to do) for a FAIL line. Bus and codec errors (no answer, CRC, a refusal) pass
through unchanged: their messages already name the meter and the line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge.drivers.base import READING_KEYS, Driver

# What a low-voltage meter can plausibly report (integers, units in the names).
VOLTAGE_DV = (1000, 5000)  # 100.0 .. 500.0 V per phase
FREQUENCY_CHZ = (4500, 6500)  # 45 .. 65 Hz
POWER_W_MAX = 5_000_000  # |P| beyond 5 MW on one meter is a decoding error, not a load
DEFAULT_MAX_DRIFT_S = 300


class CheckFailed(AssertionError):
    """A check found the meter wrong; the message says how and what to do."""


def plausible(reading: dict[str, Any], driver: Driver) -> str:
    """Every field of a reading present, integer, and within what a meter can report."""
    if set(reading) != set(READING_KEYS):
        raise CheckFailed(f"reading has keys {sorted(reading)}, not {sorted(READING_KEYS)}")
    energy = reading["energy_wh"]
    if not isinstance(energy, int) or isinstance(energy, bool) or energy < 0:
        raise CheckFailed(f"energy_wh {energy!r} is not a whole number ≥ 0")
    for key in ("power_w", "frequency_chz", "clock"):
        if reading[key] is not None and not isinstance(reading[key], int):
            raise CheckFailed(f"{key} {reading[key]!r} is not an integer")
    for key in ("voltages_dv", "currents_ma"):
        values = reading[key]
        if values is not None and not all(isinstance(v, int) for v in values):
            raise CheckFailed(f"{key} {values!r} are not all integers")
    low, high = VOLTAGE_DV
    bad = [v for v in reading["voltages_dv"] or [] if v and not low <= v <= high]
    if bad:
        raise CheckFailed(f"voltages {bad} dV outside {low}..{high} (wrong map or wiring?)")
    freq = reading["frequency_chz"]
    if freq is not None and not FREQUENCY_CHZ[0] <= freq <= FREQUENCY_CHZ[1]:
        raise CheckFailed(f"frequency {freq} cHz outside {FREQUENCY_CHZ[0]}..{FREQUENCY_CHZ[1]}")
    power = reading["power_w"]
    if power is not None and abs(power) > POWER_W_MAX:
        raise CheckFailed(f"power {power} W is beyond {POWER_W_MAX} W (wrong register map?)")
    has_relay = bool(driver.ops)
    if (reading["relay"] is not None) != has_relay or reading["relay"] not in (
        None,
        "open",
        "closed",
    ):
        raise CheckFailed(f"relay {reading['relay']!r} for a model with{'' if has_relay else 'out'} "
                          "relay control")  # fmt: skip
    return f"energy {energy} Wh, power {power} W, relay {reading['relay']}"


def clock_drift(reading: dict[str, Any], now: int, max_drift_s: int = DEFAULT_MAX_DRIFT_S) -> str:
    """The meter's clock within ``max_drift_s`` of ``now`` (time-of-use bands depend on it)."""
    clock = reading["clock"]
    if clock is None:
        return "model reports no clock"
    drift = clock - now
    if abs(drift) > max_drift_s:
        raise CheckFailed(
            f"meter clock is {drift:+d} s off (limit {max_drift_s} s): set it with "
            "`gridvend bus clock` or on the meter"
        )
    return f"clock {drift:+d} s"


async def relay_cycle(
    driver: Driver,
    client: Any,
    address: Any,
    read: Callable[[], Any],
    clock: Callable[[], float] = time.time,
) -> str:
    """Trip, check open, close, check closed, release external control; ``read()`` is an
    awaitable giving a fresh reading. Switches the meter's power: only when asked."""
    await driver.setup(client, address, retries=1)
    seen = []
    for op, want in (("trip", "open"), ("close", "closed"), ("release", None)):
        await driver.command(client, address, op, now=int(clock()), retries=1)
        relay = (await read())["relay"]
        seen.append(f"{op}→{relay}")
        if want is not None and relay != want:
            raise CheckFailed(f"after {op} the relay is {relay} ({', '.join(seen)})")
    return ", ".join(seen)
