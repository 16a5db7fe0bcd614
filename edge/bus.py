"""The bus scheduler: one task owns one line and its only client (docs/architecture.md, "The bus").

Theory of operation
-------------------
``run()`` loops over *jobs*, highest priority first:

1. **commands** (``await bus.command(address, op)``; also ``sync_clock``), FIFO;
2. **read-now** requests (``bus.read_now(address)``), FIFO, one per meter;
3. the **routine sweep**: every meter in address order, then the next sweep (at once, or after
   ``sweep_interval_ms`` from the previous sweep's start).

A command also jumps in *between the transactions* of a multi-request poll (the client calls
the bus before each frame it sends), so it waits for at most one transaction, never a whole
poll. The line's gap, timeouts and corrupted-reply detection live in the client.

Meters that fail are backed off: after the first failed poll a meter is tried again the next
sweep; after that it sits out 1, 2, 4 … up to ``backoff_max_sweeps`` sweeps between attempts, and
it gets no retries while failing, so a dead meter costs at most one timeout every few sweeps.
After ``lost_after`` consecutive failed polls the bus declares lost contact
(``on_contact(address, False)``); the first answer afterwards clears it
(``on_contact(address, True)``) and re-runs the driver's meter setup. A meter that answers with
an error reply (Modbus exception, DL/T 645 abnormal reply) is in contact: the poll counts as
failed but it is not backed off. A line that cannot be opened fails every meter of the current
sweep once and pauses the sweep for ``link_pause_ms``.

Callbacks: ``on_reading(address, reading)`` and ``on_contact(address, ok)`` may be plain
functions or coroutine functions (a returned awaitable is awaited). They run in the bus task, so
a slow callback holds the line: store and return. An exception in a callback is logged and
counted (``callback_errors``); it does not stop the bus.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from edge.drivers.base import Driver
from edge.errors import BusError, ConfigError, LinkError, NoAnswerError
from shared.codec.errors import ProtocolError, ReplyError

log = logging.getLogger("gridvend.bus")

DEFAULT_OPTIONS: dict[str, Any] = {
    "retries": 1,  # extra attempts per transaction for a meter in good standing
    "command_retries": 2,  # extra attempts per command transaction
    "lost_after": 3,  # consecutive failed polls before lost contact is declared
    "backoff_max_sweeps": 8,  # a failing meter is tried at least once every this many sweeps
    "sweep_interval_ms": 0,  # minimum time from one sweep's start to the next (0: continuous)
    "link_pause_ms": 1000,  # pause after the line itself failed
    "setup_meters": True,  # run the driver's setup (e.g. external relay control) on contact
}


def _options(options: dict[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown bus option {unknown[0]!r} (known: {', '.join(sorted(DEFAULT_OPTIONS))})"
        )
    merged = {**DEFAULT_OPTIONS, **options}
    for key, value in merged.items():
        if key == "setup_meters":
            if not isinstance(value, bool):
                raise ConfigError(f"bus option {key} must be true or false (got {value!r})")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"bus option {key} must be a non-negative integer (got {value!r})")
    if merged["lost_after"] < 1 or merged["backoff_max_sweeps"] < 1:
        raise ConfigError("bus options lost_after and backoff_max_sweeps must be at least 1")
    return merged


def _percentiles(values: Iterable[int], points: tuple[int, ...] = (50, 90, 99)) -> dict[str, int]:
    data = sorted(values)
    if not data:
        return {**{f"p{p}": 0 for p in points}, "max": 0}
    out = {f"p{p}": data[min(len(data) - 1, len(data) * p // 100)] for p in points}
    out["max"] = data[-1]
    return out


class _Meter:
    __slots__ = ("address", "due_sweep", "failures", "lost", "set_up")

    def __init__(self, address: Any) -> None:
        self.address = address
        self.failures = 0
        self.due_sweep = 0
        self.lost = False
        self.set_up = False


class Bus:
    """One line: ``Bus(name, transport, driver, addresses, on_reading, on_contact, options)``.

    ``transport`` is the line's client (``edge.drivers.open_transport``); ``driver`` a driver
    instance (``edge.drivers.get``); ``addresses`` the meters (ints for Modbus, 12-digit strings
    or ints for DL/T 645). ``clock`` gives epoch seconds (what meters are told and stamped
    with), ``timer`` the monotonic time the sweep schedule and the command waits run on; tests
    pass a fake clock (tests/fakes.py)."""

    def __init__(
        self,
        name: str,
        transport: Any,
        driver: Driver,
        addresses: Iterable[Any],
        on_reading: Callable[[Any, dict[str, Any]], Any],
        on_contact: Callable[[Any, bool], Any],
        options: dict[str, Any] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if transport.protocol != driver.protocol:
            raise ConfigError(
                f"bus {name}: model {driver.model} speaks {driver.protocol}, the line's client "
                f"speaks {transport.protocol}"
            )
        self.name = name
        self.client = transport
        self.driver = driver
        self.on_reading = on_reading
        self.on_contact = on_contact
        self.options = _options(options)
        self.clock = clock
        self.timer = timer
        self.meters: dict[Any, _Meter] = {}
        for address in addresses:
            canonical = driver.parse_address(address)
            if canonical in self.meters:
                raise ConfigError(f"bus {name}: meter address {address!r} is listed twice")
            self.meters[canonical] = _Meter(canonical)
        self._commands: deque[tuple[Any, str, asyncio.Future[None], float]] = deque()
        self._read_now: deque[Any] = deque()
        self._sweep: deque[_Meter] = deque()
        self._sweep_no = 0
        self._sweep_started = 0.0
        self._wake = asyncio.Event()
        self._stopping = False
        self._running = False
        self._stopped = asyncio.Event()
        self._in_command = False
        self.sweep_log: deque[tuple[float, float]] = deque(maxlen=64)  # (start, seconds)
        self.command_waits_us: deque[int] = deque(maxlen=256)
        self.counters = dict.fromkeys(
            ("polls", "poll_failures", "commands", "command_failures", "callback_errors",
             "setup_failures", "internal_errors"),
            0,
        )  # fmt: skip
        self.client.before_send = self._between_transactions

    # --- the public API -------------------------------------------------------------------

    async def run(self) -> None:
        """Own the line until ``stop()``. Run it as a task: ``asyncio.create_task(bus.run())``."""
        if self._running:
            raise BusError(f"bus {self.name} is already running")
        self._running = True
        self._stopped.clear()
        try:
            while not self._stopping:
                try:
                    await self._step()
                except Exception:
                    # A bug must not take the line down for good: log it, breathe, go on.
                    self.counters["internal_errors"] += 1
                    log.exception("bus %s: unexpected error", self.name)
                    await self._idle(0.1)
        finally:
            self._running = False
            self._fail_pending(BusError(f"bus {self.name} stopped"))
            await self.client.close()
            self._stopped.set()

    async def command(self, address: Any, op: str) -> None:
        """Run relay operation ``op`` (trip, close, keep_power, release) on one meter ahead of
        everything else. Raises UnsupportedError / ConfigError at once for an impossible
        request; NoAnswerError, LinkError or a codec ProtocolError if it failed."""
        self.driver.check_op(op)
        meter = self._meter(address)
        await self._enqueue(meter.address, op)

    async def sync_clock(self) -> None:
        """Broadcast the time to every meter on the line (DL/T 645 08H), as a command."""
        await self._enqueue(None, "sync_clock")

    def read_now(self, address: Any) -> None:
        """Poll this meter next (after pending commands); its reading comes via on_reading."""
        meter = self._meter(address)
        if meter.address not in self._read_now:
            self._read_now.append(meter.address)
            self._wake.set()

    def health(self) -> dict[str, Any]:
        """JSON-compatible counters (integers only: the heartbeat carries them)."""
        sweeps = [int(d * 1000) for _, d in self.sweep_log]
        return {
            "name": self.name,
            "url": self.client.url,
            "model": self.driver.model,
            "meters": len(self.meters),
            "sweeps": self._sweep_no,
            "last_sweep_ms": sweeps[-1] if sweeps else None,
            "sweep_ms": _percentiles(sweeps, (50,)),
            **self.client.stats,
            **self.counters,
            "latency_ms": {
                k: -(-v // 1000) for k, v in _percentiles(self.client.latencies_us).items()
            },
            "command_wait_ms": {
                k: -(-v // 1000) for k, v in _percentiles(self.command_waits_us, (50,)).items()
            },
            "lost": [m.address for m in self.meters.values() if m.lost],
            "backed_off": [m.address for m in self.meters.values() if m.failures > 1],
        }

    async def stop(self) -> None:
        """Finish the current transaction, fail pending commands, close the line."""
        self._stopping = True
        self._wake.set()
        if self._running:
            await self._stopped.wait()
        else:
            self._fail_pending(BusError(f"bus {self.name} stopped"))
            await self.client.close()

    # --- scheduling -------------------------------------------------------------------------

    def _meter(self, address: Any) -> _Meter:
        canonical = self.driver.parse_address(address)
        try:
            return self.meters[canonical]
        except KeyError:
            raise ConfigError(f"meter {address} is not on bus {self.name}") from None

    async def _enqueue(self, address: Any, op: str) -> None:
        if self._stopping:
            raise BusError(f"bus {self.name} is stopping")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commands.append((address, op, future, self.timer()))
        self._wake.set()
        await future

    def _fail_pending(self, exc: Exception) -> None:
        while self._commands:
            _, _, future, _ = self._commands.popleft()
            if not future.done():
                future.set_exception(exc)

    async def _step(self) -> None:
        if self._commands:
            await self._run_commands()
            return
        if self._read_now:
            meter = self.meters[self._read_now.popleft()]
            await self._poll(meter)
            return
        if not self._sweep:
            await self._next_sweep()
            return
        meter = self._sweep.popleft()
        await self._poll(meter)
        if not self._sweep:
            started = self._sweep_started
            self.sweep_log.append((started, self.timer() - started))

    async def _next_sweep(self) -> None:
        interval = self.options["sweep_interval_ms"] / 1000
        if self._sweep_no and interval:
            wait = self._sweep_started + interval - self.timer()
            if wait > 0:
                await self._idle(wait)
                if self._commands or self._read_now or self._stopping:
                    return
        self._sweep_no += 1
        self._sweep_started = self.timer()
        self._sweep.extend(m for m in self.meters.values() if m.due_sweep <= self._sweep_no)
        if not self._sweep:
            self.sweep_log.append((self._sweep_started, 0.0))
            if not interval:
                # Every meter is backed off: let the sweep counter run at a sane pace.
                await self._idle(0.05)

    async def _idle(self, seconds: float) -> None:
        self._wake.clear()
        if self._commands or self._read_now or self._stopping:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _between_transactions(self) -> None:
        """Called by the client before each frame: pending commands go first."""
        if self._commands and not self._in_command:
            await self._run_commands()

    # --- jobs -----------------------------------------------------------------------------------

    async def _run_commands(self) -> None:
        self._in_command = True
        try:
            while self._commands:
                address, op, future, queued = self._commands.popleft()
                if future.done():  # the caller gave up (cancelled)
                    continue
                await self._run_command(address, op, future, queued)
        finally:
            self._in_command = False

    async def _run_command(
        self, address: Any, op: str, future: asyncio.Future[None], queued: float
    ) -> None:
        first_write: list[float] = []
        previous_hook = self.client.on_write

        def on_write(sent: float) -> None:
            if not first_write:
                first_write.append(self.timer())  # the bus's clock, as ``queued`` is
            if previous_hook is not None:
                previous_hook(sent)

        self.client.on_write = on_write
        self.counters["commands"] += 1
        try:
            await self._send_command(address, op)
        except Exception as exc:
            self.counters["command_failures"] += 1
            if not future.done():
                future.set_exception(exc)
            if isinstance(exc, LinkError):
                await self._idle(self.options["link_pause_ms"] / 1000)
        else:
            await self._command_done(address)
            if not future.done():
                future.set_result(None)
        finally:
            self.client.on_write = previous_hook
            if first_write:
                self.command_waits_us.append(int((first_write[0] - queued) * 1_000_000))

    async def _send_command(self, address: Any, op: str) -> None:
        now = int(self.clock())
        if op == "sync_clock":
            await self.driver.sync_clock(self.client, now)
        else:
            retries = self.options["command_retries"]
            await self.driver.command(self.client, address, op, now=now, retries=retries)

    async def _command_done(self, address: Any) -> None:
        """The meter answered a command: it is in contact, and its new relay state is read."""
        if address is None:
            return
        meter = self.meters[address]
        if meter.lost or meter.failures:
            await self._contact_ok(meter)
        if address not in self._read_now:
            self._read_now.append(address)  # let the agent see the new relay state

    async def _poll(self, meter: _Meter) -> None:
        self.counters["polls"] += 1
        retries = self.options["retries"] if meter.failures == 0 else 0
        address = meter.address
        try:
            if self.options["setup_meters"] and not meter.set_up:
                await self._setup(meter, retries)
            reading = await self.driver.read(
                self.client, address, now=int(self.clock()), retries=retries
            )
        except ReplyError as exc:
            # The meter answered, so it is in contact; it refuses what we asked.
            self.counters["poll_failures"] += 1
            log.warning("bus %s: meter %s refused the poll: %s", self.name, address, exc)
            if meter.lost or meter.failures:
                await self._contact_ok(meter)
            return
        except LinkError as exc:
            log.warning("bus %s: %s", self.name, exc)
            await self._line_down(meter)
            return
        except (NoAnswerError, ProtocolError) as exc:
            self.counters["poll_failures"] += 1
            log.debug("bus %s: %s", self.name, exc)
            await self._failed(meter)
            return
        if meter.lost or meter.failures:
            await self._contact_ok(meter)
        await self._callback(self.on_reading, address, reading)

    async def _setup(self, meter: _Meter, retries: int) -> None:
        try:
            await self.driver.setup(self.client, meter.address, retries=retries)
        except ReplyError as exc:
            # It answered but refuses the setting: note it, keep reading it.
            self.counters["setup_failures"] += 1
            log.warning("bus %s: meter %s refused setup: %s", self.name, meter.address, exc)
        meter.set_up = True

    async def _failed(self, meter: _Meter) -> None:
        meter.failures += 1
        skip = 0 if meter.failures == 1 else 2 ** (meter.failures - 2)
        meter.due_sweep = self._sweep_no + 1 + min(skip, self.options["backoff_max_sweeps"] - 1)
        if meter.failures >= self.options["lost_after"] and not meter.lost:
            meter.lost = True
            meter.set_up = False
            await self._callback(self.on_contact, meter.address, False)

    async def _contact_ok(self, meter: _Meter) -> None:
        was_lost = meter.lost
        meter.failures = 0
        meter.due_sweep = 0
        meter.lost = False
        if was_lost:
            await self._callback(self.on_contact, meter.address, True)

    async def _line_down(self, meter: _Meter) -> None:
        """The line cannot be opened: every meter left in this sweep fails once; then pause."""
        failing = [meter, *self._sweep]
        self._sweep.clear()
        for m in failing:
            self.counters["poll_failures"] += 1
            await self._failed(m)
        await self._idle(self.options["link_pause_ms"] / 1000)

    async def _callback(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.counters["callback_errors"] += 1
            log.exception("bus %s: callback %s failed", self.name, getattr(fn, "__name__", fn))
