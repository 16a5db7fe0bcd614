"""Helpers for the field-bus tests: run a coroutine with a ceiling, poll for a condition, and
open a simulator plus a client over TCP, Modbus TCP or a socat pty pair (all in one loop)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from edge import drivers
from edge.sim import Simulator, running
from tests.support.services import PtyPair

MODELS = ("acrel-ddsy1352", "acrel-adl400", "dlt645")
# Every (model, transport) pair that exists: DL/T 645 has no Modbus TCP.
LINES = [
    (model, transport)
    for model in MODELS
    for transport in ("tcp", "pty", "modbus-tcp")
    if not (model == "dlt645" and transport == "modbus-tcp")
]
FAST_BAUD = 115200  # keeps wire-time based timeouts short; timing is the benchmark's business


def run(coro: Awaitable[Any], timeout_s: float = 90) -> Any:
    """Run ``coro`` in a fresh loop with a generous ceiling (a hung test fails, not hangs)."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


async def until(cond: Callable[[], Any], timeout_s: float = 30, what: str = "condition") -> Any:
    """Poll ``cond`` until it is truthy; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def address(model: str, n: int) -> Any:
    """The simulator's address of meter ``n`` for ``model``."""
    return f"{n:012d}" if model == "dlt645" else n


@contextlib.asynccontextmanager
async def line(
    model: str, transport: str = "tcp", count: int = 3, **sim_options: Any
) -> AsyncIterator[tuple[Simulator, Any]]:
    """A simulator of ``count`` meters and a client for it over ``transport``."""
    sim_options.setdefault("baud", FAST_BAUD)
    pair = PtyPair().start() if transport == "pty" else None
    try:
        if pair is not None:
            ctx = running(model, count, listen=(), serial=pair.b, **sim_options)
        else:
            ctx = running(model, count, listen=[f"{transport}://127.0.0.1:0"], **sim_options)
        async with ctx as sim:
            url = pair.a if pair is not None else sim.url
            client = drivers.open_transport(url, model=model, baud=sim_options["baud"])
            try:
                yield sim, client
            finally:
                await client.close()
    finally:
        if pair is not None:
            pair.close()


def true_state(sim: Simulator, addr: Any) -> dict[str, Any]:
    """The simulated meter's true state now."""
    meter = sim.bus.meter(addr)
    now = sim.bus.clock.now_ms()
    faults = sim.bus.faults_for(meter)
    meter.advance(now, faults)
    return meter.state(now, faults)
