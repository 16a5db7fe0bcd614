"""MQTT sync: the uplink drains the store's outbox, the downlink feeds commands to the agent.

Theory of operation
-------------------
The connection is an :class:`edge.mqtt.MqttConnection` (paho-mqtt 2.x on the asyncio loop,
MQTT 3.1.1, QoS 1, ``clean_session=False``, client id = gateway id, retained ``offline`` as the
last will), made by the ``connect`` the Sync was given (tests give an in-memory one,
tests/fakes.py). :meth:`Sync.run` is the one owner of reconnection: it connects, and after any
loss waits with exponential backoff and full jitter, then connects again with a fresh connection
(the broker keeps the session).

Uplink. Messages wait in the store's ``outbox``. The pump takes a batch, reserves a sequence
number, seals it and moves it to ``inflight`` in one transaction (on the store thread), then
publishes. A row leaves the store only when the cloud's ``ack`` names its sequence number.
Sealed bytes are resent unchanged: on every reconnect, when an envelope waits longer than
``ack_timeout_s`` (a broker restarted without persistence loses what it held), and at once
when a bridge says ``online`` on its retained notice topic (``gridvend/v1/bridge/+``: it may
have subscribed after these were published, as on a first start). At most
``window`` envelopes wait for acks at a time, and a token bucket caps messages per second, so
a day of backlog drains steadily instead of flooding the broker after an outage. ``hello`` (on
every connect) and ``hb`` are sealed and sent once, not stored.

Downlink. Each envelope is authenticated, checked against the persisted replay window, split
into acks and commands, and handed to the agent's ``on_commands`` together with a ``persist``
function that writes the advanced window (and applies acks) inside the agent's transaction: the
window moves exactly when the commands' effects commit. Bad envelopes are logged, counted and
dropped; nothing changes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from edge.cache.store import Persist, Store
from edge.cache.worker import StoreWorker
from edge.mqtt import Connection, Connector, LinkRefused, mqtt_connector
from shared import topics
from shared.broker import Broker
from shared.codec import envelope, messages
from shared.codec.errors import EnvelopeError, MalformedError
from shared.logs import event

log = logging.getLogger("gridvend.sync")

BRIDGE_PREFIX = topics.bridge_status("")  # gridvend/v1/bridge/…: the bridges' notices
BRIDGE_ONLINE_GRACE_S = 1.0

WINDOW_KEY = "replay_down"
OnCommands = Callable[[list[dict[str, Any]], Persist], Awaitable[None]]


@dataclass
class SyncSettings:
    """Uplink pacing and link timing (the ``[sync]`` table of edge.toml)."""

    heartbeat_s: float = 30.0
    ack_timeout_s: float = 30.0
    batch_msgs: int = 200
    batch_bytes: int = 64 * 1024
    window: int = 16
    rate_msgs_per_s: float = 5000.0
    backoff_min_s: float = 0.5
    backoff_max_s: float = 60.0
    connect_timeout_s: float = 10.0


@dataclass
class SyncStats:
    """Counters for status, heartbeats and tests."""

    connects: int = 0
    disconnects: int = 0
    envelopes_sent: int = 0
    envelopes_resent: int = 0
    fast_resent: int = 0  # resent at once because a later envelope was acked first
    bridge_resent: int = 0  # resent at once because a bridge came online
    messages_sent: int = 0
    acks: int = 0
    commands: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    queued: int = 0
    inflight: int = 0


def seal_next(
    store: Store, ring: envelope.Keyring, gateway: str, max_msgs: int, max_bytes: int, ts_ms: int
) -> tuple[int, bytes, int] | None:
    """Seal the oldest outbox messages into one envelope and move them to ``inflight``.

    Runs on the store thread. Returns ``(seq, envelope bytes, message count)`` or None.
    """
    batch = store.outbox.batch(max_msgs, max_bytes)
    if not batch:
        return None
    seq = store.next_seq()  # durable reservation before the number is used
    plaintext = messages.encoded_body(text for _, text in batch)
    data = envelope.seal_encoded(ring, envelope.UP, gateway, seq, ts_ms, plaintext)
    store.outbox.move_to_inflight(seq, data, [row_id for row_id, _ in batch], ts_ms // 1000)
    return seq, data, len(batch)


def seal_ephemeral(
    store: Store, ring: envelope.Keyring, gateway: str, msgs: list[dict[str, Any]], ts_ms: int
) -> tuple[int, bytes]:
    """Seal messages that are sent once and not stored (hello, heartbeat)."""
    seq = store.next_seq()
    return seq, envelope.seal(ring, envelope.UP, gateway, seq, ts_ms, messages.body(msgs))


class Sync:
    """The collector's MQTT link (see the module docstring)."""

    def __init__(
        self,
        *,
        site: str,
        gateway: str,
        keyring: envelope.Keyring,
        broker: Broker,
        worker: StoreWorker,
        on_commands: OnCommands,
        hello: Callable[[], dict[str, Any]],
        heartbeat: Callable[[int], dict[str, Any]],
        settings: SyncSettings | None = None,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
        connect: Connector | None = None,
    ) -> None:
        """``clock`` gives epoch seconds (envelope timestamps), ``timer`` the monotonic time the
        pacing, resends and heartbeats run on; ``connect`` makes one connection attempt (by
        default a paho connection to ``broker``, edge.mqtt; tests pass an in-memory one)."""
        self.site = site
        self.gateway = gateway
        self.keyring = keyring
        self.broker = broker
        broker.check()  # fail at start-up, naming what is wrong, not at the first connect
        self.worker = worker
        self.on_commands = on_commands
        self.hello = hello
        self.heartbeat = heartbeat
        self.settings = settings or SyncSettings()
        self.clock = clock
        self.timer = timer
        self.connect = connect or mqtt_connector(broker, gateway)
        self.topic_up = topics.up(site, gateway)
        self.topic_down = topics.down(site, gateway)
        self.topic_status = topics.status(site, gateway)
        self.stats = SyncStats()
        self.connected = asyncio.Event()
        self._conn: Connection | None = None
        self._lost: asyncio.Event = asyncio.Event()
        self._wake = asyncio.Event()
        self._bridge_online = False
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._window = envelope.ReplayWindow()
        self._unacked: dict[int, tuple[bytes, float, int]] = {}  # seq -> (bytes, sent, msgs)
        self._down: collections.deque[bytes] = collections.deque()
        self._down_ready = asyncio.Event()
        self._tokens = float(self.settings.batch_msgs)
        self._tokens_at = self.timer()

    # --- public ---------------------------------------------------------------------------

    def kick(self, queued: int = 0) -> None:
        """``queued`` new outbox rows were committed: wake the pump (cheap)."""
        self.stats.queued += queued
        self._wake.set()

    def backlog(self) -> int:
        """Uplink messages not yet acked (queued + in flight), as of the last store call."""
        return self.stats.queued + self.stats.inflight

    async def run(self) -> None:
        """Own the link until :meth:`stop`: connect, pump, reconnect with backoff + jitter."""
        saved = await self.worker.call(self.worker.store.get_kv, WINDOW_KEY)
        if saved is not None:
            self._window = envelope.ReplayWindow.from_dict(saved)
        await self._refresh_backlog()
        down_task = asyncio.create_task(self._downlink(), name="sync-downlink")
        delay = self.settings.backoff_min_s
        try:
            while not self._stopping:
                ok = False
                try:
                    ok = await self._connect()
                    if ok:
                        delay = self.settings.backoff_min_s
                        await self._session()
                except (OSError, ssl.SSLError, TimeoutError, LinkRefused) as exc:
                    event(log, logging.WARNING, "link_error", error=str(exc))
                finally:
                    self._teardown()
                if self._stopping:
                    break
                # Full jitter: a park's collectors do not all reconnect in the same instant.
                wait = random.uniform(self.settings.backoff_min_s, delay)
                event(log, logging.INFO, "reconnect_wait", seconds=round(wait, 2))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_event.wait(), timeout=wait)
                delay = min(self.settings.backoff_max_s, delay * 2)
        finally:
            down_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await down_task

    async def stop(self) -> None:
        """Say ``offline`` (retained) and disconnect cleanly; :meth:`run` returns."""
        self._stopping = True
        self._stop_event.set()
        link = self._conn
        if link is not None and self.connected.is_set():
            await link.close(last_words=(self.topic_status, topics.OFFLINE))
        self._lost.set()
        self._wake.set()

    # --- connection -------------------------------------------------------------------------

    async def _connect(self) -> bool:
        self._lost = asyncio.Event()
        link = self.connect(
            (self.topic_status, topics.OFFLINE),
            self._on_message,
            self._on_lost,
            max(20, self.settings.window * 2),
        )
        self._conn = link
        await link.connect(self.settings.connect_timeout_s)
        return True

    def _on_lost(self) -> None:
        self._lost.set()
        self._wake.set()

    def _teardown(self) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        link, self._conn = self._conn, None
        if link is not None:
            link.drop()  # no DISCONNECT after a failure: the will stands
        self._unacked.clear()
        if was:
            self.stats.disconnects += 1
            if self._stopping:
                event(log, logging.INFO, "link_closed", backlog=self.backlog())
            else:
                event(log, logging.WARNING, "link_down", backlog=self.backlog())

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == self.topic_down:
            self._down.append(payload)
            self._down_ready.set()
        elif topic.startswith(BRIDGE_PREFIX) and payload == topics.ONLINE:
            # A bridge came (back) online: what waits for an ack may have been published
            # while no bridge was subscribed (a first start, a broker without persistence).
            self._bridge_online = True
            self._wake.set()

    # --- a connected session ------------------------------------------------------------------

    async def _session(self) -> None:
        link = self._conn
        assert link is not None
        self.stats.connects += 1
        self.connected.set()
        link.subscribe(self.topic_down)
        link.subscribe(topics.ALL_BRIDGES)
        link.publish(self.topic_status, topics.ONLINE, retain=True)
        await self._send_ephemeral([self.hello()])
        inflight = await self.worker.call(self.worker.store.outbox.inflight)
        now = self.timer()
        for seq, data, _created in inflight:
            self._publish(data)
            self.stats.envelopes_resent += 1
            self._unacked[seq] = (data, now, 0)
        event(log, logging.INFO, "link_up", resent=len(inflight), backlog=self.backlog())
        next_hb = now + self.settings.heartbeat_s
        while not self._stopping and not self._lost.is_set():
            await self._pump()
            now = self.timer()
            if now >= next_hb:
                await self._send_ephemeral([self.heartbeat(self.backlog())])
                next_hb = now + self.settings.heartbeat_s
            self._resend_stale(now)
            if self._bridge_online:
                self._bridge_online = False
                self._resend_waiting(now)
            timeout = max(0.0, min(next_hb - now, self._next_resend(now) - now, 1.0))
            self._wake.clear()
            if self._lost.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    def _publish(self, data: bytes) -> None:
        assert self._conn is not None
        self._conn.publish(self.topic_up, data)

    async def _send_ephemeral(self, msgs: list[dict[str, Any]]) -> None:
        ts_ms = int(self.clock() * 1000)
        store = self.worker.store
        _seq, data = await self.worker.call(
            seal_ephemeral, store, self.keyring, self.gateway, msgs, ts_ms
        )
        if self._conn is not None and not self._lost.is_set():
            self._publish(data)
            self.stats.envelopes_sent += 1

    def _take_tokens(self) -> int:
        now = self.timer()
        rate = self.settings.rate_msgs_per_s
        cap = max(float(self.settings.batch_msgs), rate)  # one second of burst
        self._tokens = min(cap, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        return int(self._tokens)

    async def _pump(self) -> None:
        """Seal and publish while the window and the rate allow."""
        store = self.worker.store
        while (
            not self._lost.is_set()
            and not self._stopping
            and len(self._unacked) < self.settings.window
        ):
            allowed = min(self.settings.batch_msgs, self._take_tokens())
            if allowed < 1:
                await asyncio.sleep(1.0 / self.settings.rate_msgs_per_s)
                continue
            ts_ms = int(self.clock() * 1000)
            sealed = await self.worker.call(
                seal_next,
                store,
                self.keyring,
                self.gateway,
                allowed,
                self.settings.batch_bytes,
                ts_ms,
            )
            if sealed is None:
                break
            seq, data, count = sealed
            self._tokens -= count
            self.stats.queued = max(0, self.stats.queued - count)
            self.stats.inflight += count
            self.stats.envelopes_sent += 1
            self.stats.messages_sent += count
            self._unacked[seq] = (data, self.timer(), count)
            if self._lost.is_set():
                break  # it is stored; the next session resends it
            self._publish(data)

    def _next_resend(self, now: float) -> float:
        if not self._unacked:
            return now + self.settings.ack_timeout_s
        oldest = min(sent for _, sent, _ in self._unacked.values())
        return oldest + self.settings.ack_timeout_s

    def _resend_stale(self, now: float) -> None:
        for seq, (data, sent, count) in sorted(self._unacked.items()):
            if now - sent >= self.settings.ack_timeout_s and not self._lost.is_set():
                self._publish(data)
                self.stats.envelopes_resent += 1
                self._unacked[seq] = (data, now, count)

    def _resend_waiting(self, now: float) -> None:
        """A bridge said ``online``: resend every envelope still waiting for an ack, except
        those sent just now (the retained notice also arrives right after every connect,
        when everything in flight has just been resent)."""
        for seq, (data, sent, count) in sorted(self._unacked.items()):
            if now - sent >= BRIDGE_ONLINE_GRACE_S and not self._lost.is_set():
                self._publish(data)
                self.stats.envelopes_resent += 1
                self.stats.bridge_resent += 1
                self._unacked[seq] = (data, now, count)

    async def _refresh_backlog(self) -> None:
        counts = await self.worker.call(self.worker.store.outbox.backlog)
        self.stats.queued = counts["queued"]
        self.stats.inflight = counts["inflight"]

    # --- downlink -------------------------------------------------------------------------

    async def _downlink(self) -> None:
        while True:
            await self._down_ready.wait()
            self._down_ready.clear()
            while self._down:
                data = self._down.popleft()
                try:
                    await self._handle_down(data)
                except Exception as exc:  # a bug must not kill the link; log it loudly
                    log.exception("downlink handler failed")
                    self._reject("internal", str(exc))

    def _reject(self, kind: str, reason: str) -> None:
        self.stats.rejected[kind] = self.stats.rejected.get(kind, 0) + 1
        event(log, logging.WARNING, "downlink_rejected", kind=kind, reason=reason)

    async def _handle_down(self, data: bytes) -> None:
        try:
            opened = envelope.open_sealed(
                self.keyring, data, envelope.DOWN, expect_gateway=self.gateway
            )
            seq = opened.header.seq
            self._window.check(seq)
            msgs = messages.parse_body(opened.body)
        except EnvelopeError as exc:
            self._reject(type(exc).__name__, str(exc))
            return
        acks, cmds = self._split(msgs)
        window = envelope.ReplayWindow.from_dict(self._window.to_dict())
        window.accept(seq)
        snapshot = window.to_dict()
        acked: list[int] = []

        def persist(store: Store) -> None:
            store.put_kv(WINDOW_KEY, snapshot)
            if acks:
                acked.append(store.outbox.ack(acks))

        if cmds:
            self.stats.commands += len(cmds)
            await self.on_commands(cmds, persist)
        else:
            store = self.worker.store

            def ack_only() -> None:
                with store.transaction():
                    persist(store)

            await self.worker.call(ack_only)
        self._window = window
        if acks:
            self._acked(acks, sum(acked))

    def _split(self, msgs: list[Any]) -> tuple[list[int], list[dict[str, Any]]]:
        """The acked sequence numbers and the commands of a downlink envelope; a malformed
        message is refused alone."""
        acks: list[int] = []
        cmds: list[dict[str, Any]] = []
        for msg in msgs:
            try:
                messages.validate_down(msg)
            except MalformedError as exc:
                self._reject("MalformedMessage", str(exc))
                continue
            if msg["t"] == "ack":
                acks.extend(msg["seqs"])
            else:
                cmds.append(msg)
        return acks, cmds

    def _acked(self, acks: list[int], messages_acked: int) -> None:
        """Acks committed: forget those envelopes, resend any the cloud skipped, pump on."""
        newest_acked_sent: float | None = None
        for seq in acks:
            entry = self._unacked.pop(seq, None)
            if entry is not None:
                self.stats.acks += 1
                sent = entry[1]
                newest_acked_sent = (
                    sent if newest_acked_sent is None else max(sent, newest_acked_sent)
                )
        if newest_acked_sent is not None:
            self._resend_skipped(max(acks), newest_acked_sent)
        self.stats.inflight = max(0, self.stats.inflight - messages_acked)
        self._wake.set()

    def _resend_skipped(self, acked_seq: int, acked_sent: float) -> None:
        """Fast retransmit: the cloud acked an envelope sent after one it has not acked, so that
        one was lost (the broker restarted without persistence, or no bridge was subscribed yet).
        Resend it now rather than after ``ack_timeout_s``: the longer the cloud waits for it, the
        longer its mirror lags behind the collector."""
        if self._lost.is_set() or self._conn is None:
            return
        now = self.timer()
        for seq, (data, sent, count) in sorted(self._unacked.items()):
            if seq < acked_seq and sent <= acked_sent:
                self._publish(data)
                self.stats.envelopes_resent += 1
                self.stats.fast_resent += 1
                self._unacked[seq] = (data, now, count)
