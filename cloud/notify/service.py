"""The notifier (``gridvend cloud notify``): events into texts, texts out through the channels.

One asyncio loop owns the channels (the modem's port among them); one database thread runs
every database call, in order, so the loop never waits on SQLite's fsync and the outbox has one
writer here. What it does:

- at start, ``outbox.recover``: messages a previous run left ``sending`` (killed mid-send) are
  sent on (all references kept → sent; otherwise queued, only unacknowledged segments again);
  safe only if no other notifier is running on the database: ``gridvend cloud notify`` holds
  ``single.hold`` around the notifier's life, and anything else that runs one must do the same;
- every ``scan_s``, ``sources.scan`` turns new alarms, relay events and top-ups into messages;
  every ``runway_check_s``, ``sources.runway_scan``;
- per channel, ``concurrency`` workers take due messages (``outbox.claim``, a few ahead) and
  send them; the results, and delivery reports, are written by one writer in batches (a group
  commit), in the order they happened;
- every ``health_s``, each channel's health goes to ``notify_channels`` for the office; a
  channel that is down raises an alarm (``sms_down:<channel>``) on the office board, its queued
  messages move to the next channel of the route, and new ones skip it until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.orm import Session

from cloud.db import Database
from cloud.models import NotifyChannel
from cloud.monitoring import alarms
from cloud.notify import outbox, results, sources
from cloud.notify.channels import build
from cloud.notify.channels.base import DOWN, Channel, DeliveryReport, Message
from cloud.notify.config import Settings
from cloud.notify.errors import ChannelError, RetryLater
from shared.logs import event

log = logging.getLogger("gridvend.notify")
PREFETCH = 48  # messages claimed ahead of a channel's workers: one claim (one commit) per batch
Op = Callable[[Session], Any]


class _Sent:
    """A receipt to write (batched with the others of the same group commit)."""

    def __init__(self, args: tuple[int, Any, int]) -> None:
        self.args = args

    def __call__(self, session: Session) -> None:
        results.sent_batch(session, [self.args])


class _Reported:
    """A delivery report to write (batched likewise)."""

    def __init__(self, args: tuple[DeliveryReport, int]) -> None:
        self.args = args

    def __call__(self, session: Session) -> None:
        results.report_batch(session, [self.args])


def down_alarm_kind(channel: str) -> str:
    return f"sms_down:{channel}"[:32]


class Notifier:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        channels: dict[str, Channel] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.policy = settings.policy
        self.concurrency = {c.name: c.concurrency for c in settings.channels}
        self.channels = channels if channels is not None else self._build()
        for name in self.channels:
            self.concurrency.setdefault(name, 1)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="notify-db")
        self._writes: list[Op] = []
        self._written = asyncio.Event()
        self._has_writes = asyncio.Event()
        self._wake: dict[str, asyncio.Event] = {}
        self._ahead: dict[str, deque[outbox.Claimed]] = {}
        self._claiming: dict[str, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._states: dict[str, str] = {}
        self._stopping = False
        self.counters = {"scanned": 0, "sent": 0, "failed_attempts": 0, "reports": 0, "errors": 0}

    def _build(self) -> dict[str, Channel]:
        out: dict[str, Channel] = {}
        for spec in self.settings.channels:
            extra: dict[str, Any] = {}
            if spec.kind == "modem":
                extra["on_state"] = lambda old, new, why, n=spec.name: self._state(n, new, why)
            out[spec.name] = build(spec.kind, spec.name, dict(spec.settings), **extra)
        return out

    # ------------------------------------------------------------------ the database thread

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(session, *args)`` in one transaction on the database thread."""

        def job() -> Any:
            with self.db.session() as s:
                return fn(s, *args)

        return await asyncio.get_running_loop().run_in_executor(self._pool, job)

    def write(self, op: Op) -> None:
        """Queue a write; the writer applies queued writes together, in order."""
        self._writes.append(op)
        self._has_writes.set()

    def _apply(self, session: Session, ops: list[Op]) -> None:
        """One transaction for a batch: receipts first, then reports (a report follows its
        receipt), then the rest in order; receipts and reports as two bulk statements each."""
        receipts = [op.args for op in ops if isinstance(op, _Sent)]
        reports = [op.args for op in ops if isinstance(op, _Reported)]
        results.sent_batch(session, receipts)
        results.report_batch(session, reports)
        for op in ops:
            if not isinstance(op, _Sent | _Reported):
                op(session)

    async def _writer(self) -> None:
        while True:
            await self._has_writes.wait()
            self._has_writes.clear()
            ops, self._writes = self._writes, []
            if not ops:
                continue
            try:
                await self.call(self._apply, ops)
            except Exception:
                log.exception("a batch of %d outbox writes failed; applying one by one", len(ops))
                for op in ops:
                    try:
                        await self.call(op)
                    except Exception:
                        self.counters["errors"] += 1
                        log.exception("an outbox write failed")
            self._written.set()

    async def flush(self) -> None:
        """Wait until every write queued so far is committed."""
        while self._writes or self._has_writes.is_set():
            self._written.clear()
            await self._written.wait()

    # ------------------------------------------------------------------ running

    async def start(self) -> None:
        recovered = await self.call(outbox.recover, int(self.clock()))
        if any(recovered.values()):
            event(log, logging.WARNING, "notify_recovered", **recovered)
        self._tasks.append(asyncio.create_task(self._writer(), name="notify-writer"))
        for name, channel in self.channels.items():
            channel.on_report(self._report)
            await channel.start()
            self._wake[name] = asyncio.Event()
            self._ahead[name] = deque()
            self._claiming[name] = asyncio.Lock()
            for i in range(self.concurrency[name]):
                self._tasks.append(asyncio.create_task(self._worker(name), name=f"{name}-{i}"))
        self._tasks.append(asyncio.create_task(self._periodic(), name="notify-periodic"))
        event(log, logging.INFO, "notify_started", channels=list(self.channels),
              route=list(self.policy.route))  # fmt: skip

    async def stop(self, grace_s: float = 30) -> None:
        """Let messages already with a channel finish (up to ``grace_s``), give back the ones
        claimed ahead, write what is queued, close the channels."""
        self._stopping = True
        self.kick()
        workers = [t for t in self._tasks if t.get_name().startswith(tuple(self.channels))]
        if workers:
            await asyncio.wait(workers, timeout=grace_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._writes:
            await self.call(self._apply, self._writes)
            self._writes = []
        ahead = [item.id for queue in self._ahead.values() for item in queue]
        if ahead:  # claimed but never handed to a channel: not sent at all
            await self.call(outbox.release, ahead, int(self.clock()))
        with contextlib.suppress(Exception):
            await self.health()  # the office sees the counters as they were at the end
        for channel in self.channels.values():
            with contextlib.suppress(Exception):
                await channel.close()
        self._pool.shutdown(wait=True)
        event(log, logging.INFO, "notify_stopped", **self.counters)

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    def kick(self) -> None:
        """Look at the outbox now (a message was queued)."""
        for wake in self._wake.values():
            wake.set()

    async def _periodic(self) -> None:
        s = self.settings
        next_scan = next_runway = next_health = 0.0
        while True:
            now = self.clock()
            try:
                if now >= next_health:
                    await self.health()
                    next_health = now + s.health_s
                if now >= next_scan:
                    n = await self.call(sources.scan, s.scan, int(now))
                    self.counters["scanned"] += n
                    if n:
                        self.kick()
                    next_scan = now + s.scan_s
                if now >= next_runway:
                    if await self.call(sources.runway_scan, s.scan, int(now)):
                        self.kick()
                    next_runway = now + s.runway_check_s
            except Exception:
                self.counters["errors"] += 1
                log.exception("notify periodic job failed")
            self.kick()  # due retries and new rows from other processes (login codes)
            await asyncio.sleep(s.poll_s)

    async def _next(self, name: str) -> outbox.Claimed | None:
        """The channel's next message (claimed a few ahead); None once stopping."""
        ahead = self._ahead[name]
        while not self._stopping:
            if ahead:
                return ahead.popleft()
            async with self._claiming[name]:
                if not ahead and not self._stopping:
                    want = self.concurrency[name] + PREFETCH
                    ahead.extend(
                        await self.call(outbox.claim, name, self.policy, int(self.clock()), want)
                    )
            if ahead:
                continue
            wake = self._wake[name]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_s):
                    await wake.wait()
            wake.clear()
        return None

    async def _worker(self, name: str) -> None:
        channel = self.channels[name]
        while (item := await self._next(name)) is not None:
            await self._deliver(channel, item)

    async def _deliver(self, channel: Channel, item: outbox.Claimed) -> None:
        message = Message(
            key=item.key, to=item.to, text=item.text, template=item.kind, params=item.params,
            lang=item.lang, concat_ref=item.concat_ref, done_parts=item.done_parts,
        )  # fmt: skip

        async def progress(seq: int, ref: str, concat_ref: int | None) -> None:
            # Written before the next segment goes: a crash then resends only the rest.
            await self.call(results.progress, item.id, seq, ref, concat_ref, int(self.clock()))

        try:
            receipt = await channel.send(message, progress)
        except ChannelError as exc:
            self._failed(item, exc)
            return
        except Exception as exc:  # a bug in a channel must not lose the message
            log.exception("channel %s raised unexpectedly", channel.name)
            self._failed(item, RetryLater(f"unexpected: {type(exc).__name__}: {exc}"))
            return
        self.counters["sent"] += 1
        self.write(_Sent((item.id, receipt, int(self.clock()))))

    def _failed(self, item: outbox.Claimed, exc: ChannelError) -> None:
        self.counters["failed_attempts"] += 1
        now, policy = int(self.clock()), self.policy
        event(log, logging.WARNING, "notify_attempt_failed", message=item.id,
              channel=item.channel, error=str(exc), code=exc.code)  # fmt: skip
        self.write(lambda s: results.failed_attempt(s, item.id, exc, policy, now))
        for wake in self._wake.values():
            wake.set()  # it may have moved to another channel

    def _report(self, report: DeliveryReport) -> None:
        self.counters["reports"] += 1
        self.write(_Reported((report, int(self.clock()))))

    # ------------------------------------------------------------------ health

    def _state(self, name: str, state: str, reason: str) -> None:
        """A modem changed state: act on going down at once (not at the next health tick)."""
        if state == DOWN or self._states.get(name) == DOWN:
            asyncio.get_running_loop().create_task(self.health())

    async def health(self) -> None:
        now = int(self.clock())
        report = {name: ch.health() for name, ch in self.channels.items()}
        down = frozenset(n for n, h in report.items() if h.get("state") == DOWN)
        changed = {n for n in report if (n in down) != (self._states.get(n) == DOWN)}
        self._states = {n: h.get("state", "") for n, h in report.items()}
        self.policy = dataclasses.replace(self.policy, down=down)
        await self.call(self._write_health, report, changed, now)
        for name in changed:
            what = "down" if name in down else "back"
            event(log, logging.WARNING, f"channel_{what}", channel=name,
                  reason=report[name].get("reason"))  # fmt: skip
        if changed:
            self.kick()

    def _write_health(
        self, session: Session, report: dict[str, dict[str, Any]], changed: set[str], now: int
    ) -> None:
        for name, health in report.items():
            row = session.get(NotifyChannel, name)
            if row is None:
                row = NotifyChannel(name=name, kind=str(health.get("kind", "")), state="")
                session.add(row)
            row.state, row.health, row.updated_ts = str(health.get("state", "")), health, now
            if name not in changed:
                continue
            kind = down_alarm_kind(name)
            if health.get("state") == DOWN:
                alarms.raise_alarm(
                    session, kind, detail={"channel": name, "reason": health.get("reason")},
                    now=now,
                )  # fmt: skip
                outbox.reroute(session, name, self.policy, now)
            else:
                alarms.clear_alarms(session, [kind], by="notify", now=now)
