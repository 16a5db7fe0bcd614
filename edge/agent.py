"""The collector agent (``gridvend edge run``): buses → engine → store → MQTT, and back.

Theory of operation
-------------------
One asyncio loop, one store thread (edge/cache/worker.py), one task per bus, one sync task.

- A bus calls ``on_reading`` after each poll; the agent only appends the reading to a list and
  wakes the *processor task*, so the bus never waits for rating, the disk or the link. The
  processor task hands everything pending (typically a sweep) to the store thread as one
  transaction (edge/processor.py), then carries out what it returned: relay operations go to
  the buses as commands (``await bus.command(address, op)``), and the uplink is woken.
- Downlink commands arrive from edge/sync.py; they take the same path (store thread, one
  transaction with the replay window), so engine states have exactly one writer.
- A tick task steps every meter's engine every ``tick_s`` (friendly windows end, relays are
  reconciled); a prune task applies retention.

Start-up recovery: the store lock is taken (one agent per store), the schema migrated, states
and tariffs loaded, every meter's desired relay position re-asserted on its bus, and the sync
resends what was sealed and not acked, then drains the outbox in order. Shutdown (SIGTERM,
SIGINT): buses stop after their current transaction, pending readings are committed, the link
says ``offline``, the store is closed. A kill -9 at any instant loses nothing committed, and
nothing uncommitted was promised to anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from edge import drivers, tzrules
from edge.book import MeterBook
from edge.bus import Bus
from edge.cache.store import Store
from edge.cache.worker import StoreWorker
from edge.config import Config, load_keyring
from edge.core import engine
from edge.errors import ConfigError, StoreLocked, UnsupportedError
from edge.processor import MeterInfo, Outcome, Processor
from edge.sync import Persist, Sync
from shared.codec import messages
from shared.logs import event

log = logging.getLogger("gridvend.agent")
DAY = 86_400


def agent_version() -> str:
    """The installed gridvend version (for ``hello``)."""
    try:
        return version("gridvend")
    except PackageNotFoundError:
        return "0+unknown"


def zone_rules(cfg: Config, now: int) -> list[list[int]]:
    """The site's UTC-offset rules for the engine: a fixed offset, or from the IANA zone."""
    fixed = cfg.fixed_offset_s()
    if fixed is not None:
        return [[0, fixed]]
    try:
        return tzrules.rules_around(cfg.timezone, now)
    except ValueError as exc:
        raise ConfigError(f"timezone: {exc} (or a fixed offset such as +08:00)") from None


def lock_store(path: Path) -> int:
    """Hold an exclusive lock beside the store (released by the OS even on kill -9)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreLocked(f"another agent is running on {path} (lock {path}.lock)") from None
    return fd


class Agent:
    """Everything ``gridvend edge run`` runs, for one edge.toml."""

    def __init__(self, cfg: Config, *, clock: Any = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.keyring = load_keyring(cfg.key_file)
        self.started = time.monotonic()
        self.buses: dict[str, Bus] = {}
        self.address_of: dict[str, tuple[str, Any]] = {}  # meter -> (bus, canonical address)
        self.meter_at: dict[tuple[str, Any], str] = {}
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._contacts: list[tuple[str, bool]] = []
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._relay_tasks: set[asyncio.Task[Any]] = set()
        self.processed = 0
        self.cpu_s = 0.0  # store-thread CPU spent on readings (rate + store + outbox)
        self._lock_fd: int | None = None
        self.final_commit_error: Exception | None = None  # set when shutdown could not commit
        self.worker: StoreWorker | None = None
        self.processor: Processor | None = None
        self.sync: Sync | None = None
        self._build_buses()

    # --- wiring -------------------------------------------------------------------------------

    def _build_buses(self) -> None:
        for bc in self.cfg.buses:
            driver = drivers.get(bc.model, **bc.driver)
            addresses = []
            for m in self.cfg.meters:
                if m.bus != bc.name:
                    continue
                canonical = driver.parse_address(m.address)
                addresses.append(canonical)
                self.address_of[m.id] = (bc.name, canonical)
                self.meter_at[(bc.name, canonical)] = m.id
            transport = drivers.open_transport(
                bc.url, model=driver, baud=bc.baud, parity=bc.parity, stop_bits=bc.stop_bits
            )
            name = bc.name
            self.buses[name] = Bus(
                name,
                transport,
                driver,
                addresses,
                functools.partial(self._on_reading, name),
                functools.partial(self._on_contact, name),
                bc.options,
            )

    def _on_reading(self, bus: str, address: Any, reading: dict[str, Any]) -> None:
        meter = self.meter_at.get((bus, address))
        if meter is not None:
            self._pending.append((meter, reading))
            self._wake.set()

    def _on_contact(self, bus: str, address: Any, ok: bool) -> None:
        meter = self.meter_at.get((bus, address))
        if meter is not None:
            self._contacts.append((meter, ok))
            self._wake.set()

    def now(self) -> int:
        return int(self.clock())

    def hello(self) -> dict[str, Any]:
        models = {b.name: b.model for b in self.cfg.buses}
        meters = [
            {"id": m.id, "model": models[m.bus], "bus": m.bus, "address": m.address}
            for m in self.cfg.meters
        ]
        return messages.hello(agent_version(), self.cfg.config_hash(), meters)

    def heartbeat(self, backlog: int) -> dict[str, Any]:
        health = {name: bus.health() for name, bus in self.buses.items()}
        uptime = int(time.monotonic() - self.started)
        return messages.hb(self.now(), backlog, health, uptime)

    # --- running ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, load, re-assert relays, start buses, sync and housekeeping."""
        cfg = self.cfg
        self._lock_fd = lock_store(cfg.store)
        store = Store(cfg.store)
        self.worker = StoreWorker(store)
        now = self.now()
        ctx = engine.Context(
            tariffs=cfg.tariffs, zone_rules=zone_rules(cfg, now), defaults=cfg.defaults
        )
        models = {b.name: b.model for b in cfg.buses}
        infos = [
            MeterInfo(m.id, m.bus, self.address_of[m.id][1], models[m.bus], m.ct, m.pt)
            for m in cfg.meters
        ]
        settings = {m.id: m.settings for m in cfg.meters}
        book = await self.worker.call(
            MeterBook,
            store,
            ctx,
            infos,
            settings,
            report_s=cfg.report_s,
            history_s=cfg.history_s,
            now=now,
        )
        self.processor = Processor(book)
        self.sync = Sync(
            site=cfg.site,
            gateway=cfg.gateway,
            keyring=self.keyring,
            broker=cfg.broker,
            worker=self.worker,
            on_commands=self._on_commands,
            hello=self.hello,
            heartbeat=self.heartbeat,
            settings=cfg.sync,
            clock=self.clock,
        )
        backlog = await self.worker.call(store.outbox.backlog)
        event(
            log,
            logging.INFO,
            "agent_start",
            gateway=cfg.gateway,
            meters=len(infos),
            buses=len(self.buses),
            backlog=backlog,
        )
        for name, bus in self.buses.items():
            self._tasks.append(asyncio.create_task(bus.run(), name=f"bus-{name}"))
        self._dispatch(Outcome(relay=self.processor.desired_relays()))
        self._tasks += [
            asyncio.create_task(self.sync.run(), name="sync"),
            asyncio.create_task(self._process(), name="processor"),
            asyncio.create_task(self._every(cfg.tick_s, self._tick), name="tick"),
            asyncio.create_task(self._every(cfg.prune_s, self._prune), name="prune"),
        ]

    async def run(self) -> None:
        """Start, then run until :meth:`request_stop`; shut down cleanly."""
        await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.shutdown()

    def request_stop(self) -> None:
        """Ask :meth:`run` to shut down (signal handlers call this)."""
        self._stop.set()

    async def shutdown(self) -> None:
        """Stop buses, commit pending readings, say offline, close the store."""
        event(log, logging.INFO, "agent_stop")
        self._stop.set()
        for bus in self.buses.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.stop(), timeout=5)
        sync_task = None
        for task in self._tasks:
            if task.get_name() == "sync":
                sync_task = task
            elif task.get_name() in ("processor", "tick", "prune"):
                task.cancel()
        for task in [*self._tasks, *self._relay_tasks]:
            if task is not sync_task:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, timeout=5)
        await self._final_commit()
        if self.sync is not None:
            await self.sync.stop()
        if sync_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(sync_task, timeout=10)
        if self.worker is not None:
            self.worker.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def _final_commit(self) -> None:
        """Commit what the buses read last. If it fails nothing of it is committed: the meters'
        counters keep the energy and the next run reads it again, but a store that refuses to
        commit must be heard of (``final_commit_error``; ``gridvend edge run`` exits 1)."""
        if self.worker is None or self.processor is None:
            return
        try:
            await self._flush()
        except Exception as exc:
            self.final_commit_error = exc
            log.exception("the final commit at shutdown failed")
            event(
                log,
                logging.ERROR,
                "final_commit_failed",
                readings=len(self._pending),
                error=str(exc) or type(exc).__name__,
            )

    async def _every(self, seconds: float, fn: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await fn()
            except Exception:
                log.exception("%s failed", getattr(fn, "__name__", fn))

    async def _tick(self) -> None:
        assert self.worker is not None
        assert self.processor is not None
        self._dispatch(await self.worker.call(self.processor.tick, self.now()))

    async def _prune(self) -> None:
        assert self.worker is not None
        r = self.cfg.retention
        counts = await self.worker.call(
            self.worker.store.prune,
            self.now(),
            r["history_days"] * DAY,
            r["inbox_days"] * DAY,
            r["ledger_charges_days"] * DAY,
        )
        event(log, logging.INFO, "pruned", **counts)

    # --- the processor task -----------------------------------------------------------------

    async def _process(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
            except Exception:
                # A bug here must not stop enforcement for good: log, keep the readings for
                # the next attempt (nothing of the failed batch was committed).
                log.exception("processing readings failed")
                await asyncio.sleep(1.0)

    async def _flush(self) -> None:
        assert self.worker is not None
        assert self.processor is not None
        processor = self.processor
        while self._contacts:
            meter, ok = self._contacts.pop(0)
            self._dispatch(await self.worker.call(processor.contact, meter, ok, self.now()))
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            out = await self.worker.call(self._timed_readings, batch, self.now())
        except Exception:
            self._pending[:0] = batch
            raise
        self.processed += len(batch)
        self._dispatch(out)

    def _timed_readings(self, batch: list[tuple[str, dict[str, Any]]], now: int) -> Outcome:
        # Runs on the store thread: thread CPU time is exactly what rating + store + outbox cost.
        assert self.processor is not None
        t0 = time.thread_time()
        out = self.processor.readings(batch, now)
        self.cpu_s += time.thread_time() - t0
        return out

    async def _on_commands(self, cmds: list[dict[str, Any]], persist: Persist) -> None:
        assert self.worker is not None
        assert self.processor is not None
        out = await self.worker.call(self.processor.commands, cmds, self.now(), persist)
        self._dispatch(out)

    # --- carrying out outcomes ----------------------------------------------------------------

    def _dispatch(self, out: Outcome) -> None:
        if out.queued and self.sync is not None:
            self.sync.kick(out.queued)
        for meter, op, reason in out.relay:
            task = asyncio.create_task(self._relay(meter, op, reason))
            self._relay_tasks.add(task)
            task.add_done_callback(self._relay_tasks.discard)
        for meter in out.read_now:
            bus, address = self.address_of[meter]
            self.buses[bus].read_now(address)
        if out.sync_clock:
            for name, bus_ in self.buses.items():
                task = asyncio.create_task(self._sync_clock(name, bus_))
                self._relay_tasks.add(task)
                task.add_done_callback(self._relay_tasks.discard)

    async def _sync_clock(self, name: str, bus: Bus) -> None:
        try:
            await bus.sync_clock()
            event(log, logging.INFO, "clock_set", bus=name)
        except UnsupportedError:
            event(log, logging.DEBUG, "clock_not_settable", bus=name, model=bus.driver.model)
        except Exception as exc:
            event(log, logging.WARNING, "clock_set_failed", bus=name, error=str(exc))

    async def _relay(self, meter: str, op: str, reason: str) -> None:
        bus, address = self.address_of[meter]
        try:
            await self.buses[bus].command(address, op)
            event(log, logging.INFO, "relay", meter=meter, op=op, reason=reason)
        except Exception as exc:  # the engine re-sends when the next reading disagrees
            event(log, logging.WARNING, "relay_failed", meter=meter, op=op, error=str(exc))
            if self.worker is not None and self.processor is not None and not self._stop.is_set():
                out = await self.worker.call(
                    self.processor.command_failed, meter, op, str(exc), self.now()
                )
                self._dispatch(out)
