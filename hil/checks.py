"""The driver catalogue as checks: each takes a :class:`Target` and raises AssertionError (or any
bus/codec error) to fail. The same checks run against a real meter and against the simulator;
the ``sim_only`` ones inject faults through the simulator's control channel. The reading, clock
and relay checks are ``edge.fieldcheck``'s, the ones ``gridvend provision selftest`` runs on
site (its ``CheckFailed`` is an AssertionError)."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from edge import drivers, fieldcheck
from edge.errors import NoAnswerError, UnsupportedError


class Target:
    """What the checks run against: one line, one model, one meter (and maybe a simulator)."""

    def __init__(
        self,
        url: str,
        model: str,
        address: Any,
        absent: Any,
        baud: int | None = None,
        parity: str | None = None,
        relay_allowed: bool = False,
        control: Any = None,
    ) -> None:
        self.driver = drivers.get(model)
        self.model = model
        self.url = url
        self.address = self.driver.parse_address(address)
        self.absent = self.driver.parse_address(absent)
        self.client = drivers.open_transport(url, model=self.driver, baud=baud, parity=parity)
        self.relay_allowed = relay_allowed
        self.control = control  # a ControlClient when the target is the simulator

    async def read(self, address: Any = None, retries: int = 1) -> dict[str, Any]:
        return await self.driver.read(
            self.client, self.address if address is None else address,
            now=int(time.time()), retries=retries,
        )  # fmt: skip


Check = Callable[[Target], Awaitable[str]]


async def answers(t: Target) -> str:
    reading = await t.read()
    return f"energy {reading['energy_wh']} Wh, power {reading['power_w']} W"


async def reading_shape(t: Target) -> str:
    """All keys, integer units, plausible values: the site self-test's own check."""
    return fieldcheck.plausible(await t.read(), t.driver)


async def energy_monotonic(t: Target) -> str:
    first = (await t.read())["energy_wh"]
    second = (await t.read())["energy_wh"]
    assert second >= first, f"energy went back from {first} to {second} Wh"
    return f"{first} → {second} Wh"


async def bands_add_up(t: Target) -> str:
    reading = await t.read()
    bands = reading["band_energy_wh"]
    if bands is None:
        return "model has no bands"
    gap = abs(sum(bands.values()) - reading["energy_wh"])
    # Each register is truncated to its resolution (10 Wh × PT × CT on secondary-side meters,
    # the gcd of the values); the five truncations may add up to four steps.
    step = math.gcd(reading["energy_wh"], *bands.values()) or 10
    assert gap <= 4 * max(step, 10), f"bands differ from the total by {gap} Wh"
    return f"bands within {gap} Wh of the total"


async def absent_meter_times_out(t: Target) -> str:
    try:
        await t.read(t.absent, retries=0)
    except NoAnswerError as exc:
        return str(exc)
    raise AssertionError(f"address {t.absent} answered; pick an unused one (GRIDVEND_HIL_ABSENT)")


async def relay_cycle(t: Target) -> str:
    if not t.driver.ops:
        try:
            await t.driver.command(t.client, t.address, "trip", now=int(time.time()))
        except UnsupportedError:
            return "no relay (refused as unsupported)"
        raise AssertionError("a meter without relay control accepted a trip")
    if not t.relay_allowed:
        return "skipped: set GRIDVEND_HIL_RELAY=1 to switch the relay"
    return await fieldcheck.relay_cycle(t.driver, t.client, t.address, t.read)


async def clock_close(t: Target) -> str:
    return fieldcheck.clock_drift(await t.read(), int(time.time()))


async def survives_crc_errors(t: Target) -> str:
    t.control.call("fault", address=t.address, crc_error_rate=0.5, garbage_rate=0.3)
    try:
        for _ in range(5):
            await t.read(retries=8)
    finally:
        t.control.call("clear_faults", address=t.address)
    return f"5 reads through 50 % CRC errors ({t.client.stats['crc_errors']} seen)"


async def dead_meter_is_silent(t: Target) -> str:
    t.control.call("fault", address=t.address, dead=True)
    try:
        await t.read(retries=0)
    except NoAnswerError:
        return "silent, as configured"
    finally:
        t.control.call("clear_faults", address=t.address)
    raise AssertionError("a dead simulated meter answered")


CHECKS: list[tuple[str, Check, bool]] = [
    ("answers", answers, False),
    ("reading shape", reading_shape, False),
    ("energy monotonic", energy_monotonic, False),
    ("bands add up", bands_add_up, False),
    ("absent address times out", absent_meter_times_out, False),
    ("relay cycle", relay_cycle, False),
    ("clock", clock_close, False),
    ("survives CRC errors and garbage", survives_crc_errors, True),
    ("dead meter is silent", dead_meter_is_silent, True),
]
