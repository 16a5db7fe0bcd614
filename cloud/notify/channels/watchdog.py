"""The modem's watchdog: notices a wedged or vanished modem and brings it back, or says it is
dead.

Every ``health_interval_s`` (and at once when a send times out or the port goes away) it runs
``AT``, ``AT+CSQ`` and ``AT+CREG?``, each with the command timeout, as Gammu's SMSD does its
signal and network checks. ``health_failures`` failed checks in a row start the recovery
ladder, each rung ending in a fresh init (``ATE0``, ``AT+CMEE=1``, ``AT+CMGF=0``, ``AT+CNMI``):

1. reopen the port (a USB modem that re-enumerated, a driver that lost its state);
2. the reset command (``AT+CFUN=1,1`` by default; vendor-specific), ``reset_wait_s``, reopen;
3. the power-cycle command when one is configured (a switchable USB hub port or a relay:
   field reports say only a power cycle recovers some wedged modules), then reopen.

When every rung fails the modem is ``down`` (dead): sends raise ``ChannelDown`` so the outbox
falls back at once, the state callback tells the notifier (an alarm on the office board), and
the ladder is tried again every ``dead_retry_s``. Not registered on the network is
``degraded``: the modem answers, sends are retried, and the board shows why.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from cloud.notify.channels.base import DEGRADED, DOWN, OK, RECOVERING
from cloud.notify.sms import at

if TYPE_CHECKING:
    from cloud.notify.channels.modem import GsmModem

REGISTERED = (1, 5)  # +CREG stat: home network, roaming


class Watchdog:
    def __init__(self, modem: GsmModem) -> None:
        self.modem = modem
        self.settings = modem.settings
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        self.counters = dict.fromkeys(
            ("checks", "check_failures", "recoveries", "reopens", "resets", "power_cycles",
             "dead"),
            0,
        )  # fmt: skip
        self.last_rung = ""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"watchdog-{self.modem.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def kick(self) -> None:
        """Check now (a send timed out, the port went away, a fault code came back)."""
        self._kick.set()

    def health(self) -> dict[str, Any]:
        return {"failures": self.failures, "last_rung": self.last_rung, **self.counters}

    async def _wait(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # races with the event being set, and stop() would wait forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._kick.wait()
        self._kick.clear()

    async def _run(self) -> None:
        while True:
            modem = self.modem
            if modem.state in (OK, DEGRADED):
                await self._wait(self.settings["health_interval_s"])
                if await self.check():
                    self.failures = 0
                    continue
                self.failures += 1
                if self.failures < self.settings["health_failures"] and modem.link_up:
                    continue
            if await self.recover():
                self.failures = 0
                continue
            if modem.state != DOWN:
                self.counters["dead"] += 1
                modem.set_state(DOWN, f"no answer after every recovery step ({self.last_rung})")
            await self._wait(self.settings["dead_retry_s"])

    async def check(self) -> bool:
        """One health check; True when the modem answered all three commands."""
        modem = self.modem
        self.counters["checks"] += 1
        timeout = self.settings["command_timeout_ms"]
        async with modem._lock:
            try:
                await modem.command("AT", timeout)
                csq = await modem.command("AT+CSQ", timeout)
                creg = await modem.command("AT+CREG?", timeout)
            except Exception as exc:
                self.counters["check_failures"] += 1
                modem.reason = f"health check failed: {type(exc).__name__}"
                return False
        modem.signal = at.signal(csq)
        stat = at.registration(creg)
        if modem.signal is None or stat is None:  # OK without the line asked for: out of step
            self.counters["check_failures"] += 1
            modem.reason = "health check answers make no sense (garbled, or out of step)"
            return False
        modem.registered = stat in REGISTERED
        if modem.registered:
            modem.set_state(OK, "answering and registered")
        else:
            modem.set_state(DEGRADED, f"not registered on the network (+CREG stat {stat})")
        return True

    async def recover(self) -> bool:
        """Climb the ladder; True when the modem answers again."""
        modem = self.modem
        if modem.state != DOWN:
            modem.set_state(RECOVERING, modem.reason)
        self.counters["recoveries"] += 1
        rungs = [("reopen", None), ("reset", self._reset)]
        if self.settings["power_cycle"]:
            rungs.append(("power_cycle", self._power_cycle))
        for rung, before in rungs:
            self.last_rung = rung
            self.counters[rung + "s"] += 1
            try:
                async with modem._lock:
                    if before is not None:
                        await before()
                    await modem.open_and_init()
            except Exception as exc:
                modem.reason = f"{rung} failed: {type(exc).__name__}: {exc}"
                continue
            modem.set_state(OK, f"recovered by {rung}")
            await self.check()  # signal and registration, for the board
            return True
        await modem.close_port()
        return False

    async def _reset(self) -> None:
        modem = self.modem
        with contextlib.suppress(Exception):
            if not modem.link_up:
                await modem.open_port()
            # The modem may reboot before it answers: do not wait for OK beyond a short while.
            await modem.command(self.settings["reset_command"], self.settings["command_timeout_ms"])
        await modem.close_port()
        await asyncio.sleep(self.settings["reset_wait_s"])

    async def _power_cycle(self) -> None:
        await self.modem.close_port()
        argv = [str(a) for a in self.settings["power_cycle"]]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            async with asyncio.timeout(60):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await asyncio.sleep(self.settings["power_cycle_wait_s"])
