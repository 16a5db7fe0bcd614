"""MQTT sync: the uplink drains the store's outbox, the downlink feeds commands to the agent.

Theory of operation
-------------------
paho-mqtt 2.x (``CallbackAPIVersion.VERSION2``, MQTT 3.1.1, QoS 1, ``clean_session=False``,
client id = gateway id) is driven from the asyncio loop through its external-loop hooks
(``loop_read`` / ``loop_write`` / ``loop_misc``), so every paho callback runs on the event loop
and nothing blocks it: the blocking TCP/TLS connect runs in a thread. :meth:`Sync.run` is the
one owner of the connection: it connects, and after any loss waits with exponential backoff and
jitter, then connects again with a fresh client (the broker keeps our session).

Uplink. Messages wait in the store's ``outbox``. The pump takes a batch, reserves a sequence
number, seals it and moves it to ``inflight`` in one transaction (on the store thread), then
publishes. A row leaves the store only when the cloud's ``ack`` names its sequence number.
Sealed bytes are resent unchanged: on every reconnect, and when an envelope waits longer than
``ack_timeout_s`` (a broker restarted without persistence loses what it held). At most
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
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge.cache.store import Store
from edge.cache.worker import StoreWorker
from edge.logs import event
from shared.codec import envelope, messages
from shared.codec.errors import EnvelopeError, MalformedError

log = logging.getLogger("gridvend.sync")

WINDOW_KEY = "replay_down"
Persist = Callable[[Store], None]
OnCommands = Callable[[list[dict[str, Any]], Persist], Awaitable[None]]


class BrokerError(ValueError):
    """The broker settings cannot be used (bad URL, missing CA file)."""


@dataclass
class Broker:
    """Where and how to connect: ``mqtt://host:port`` or ``mqtts://host:port`` (TLS)."""

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    keepalive_s: int = 30

    def endpoint(self) -> tuple[str, int, bool]:
        """``(host, port, tls)`` from the URL; ``BrokerError`` names what is wrong."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise BrokerError(f"broker url {self.url!r}: scheme must be mqtt:// or mqtts:// (TLS)")
        if not parts.hostname:
            raise BrokerError(f"broker url {self.url!r} has no host")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise BrokerError(f"broker url {self.url!r} has a bad port") from None
        return parts.hostname, port, tls


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
    messages_sent: int = 0
    acks: int = 0
    commands: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    queued: int = 0
    inflight: int = 0


def nodelay(sock: Any) -> None:
    """Turn Nagle off: a result or an ack is one small packet that must not wait for the
    peer's delayed ACK (40 ms on Linux) behind the PUBACK written just before it."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def seal_next(
    store: Store, ring: envelope.Keyring, gateway: str, max_msgs: int, max_bytes: int, ts_ms: int
) -> tuple[int, bytes, int] | None:
    """Seal the oldest outbox messages into one envelope and move them to ``inflight``.

    Runs on the store thread. Returns ``(seq, envelope bytes, message count)`` or None.
    """
    batch = store.outbox_batch(max_msgs, max_bytes)
    if not batch:
        return None
    seq = store.next_seq()  # durable reservation before the number is used
    plaintext = ('{"v":1,"m":[' + ",".join(text for _, text in batch) + "]}").encode()
    data = envelope.seal_encoded(ring, envelope.UP, gateway, seq, ts_ms, plaintext)
    store.move_to_inflight(seq, data, [row_id for row_id, _ in batch], ts_ms // 1000)
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
    ) -> None:
        self.site = site
        self.gateway = gateway
        self.keyring = keyring
        self.broker = broker
        self.host, self.port, self.tls = broker.endpoint()
        if self.tls and broker.ca_file is not None:
            with open(broker.ca_file, "rb"):
                pass  # fail at start-up, naming the file, not at the first connect
        self.worker = worker
        self.on_commands = on_commands
        self.hello = hello
        self.heartbeat = heartbeat
        self.settings = settings or SyncSettings()
        self.clock = clock
        base = f"gridvend/v1/{site}/{gateway}"
        self.topic_up = f"{base}/up"
        self.topic_down = f"{base}/down"
        self.topic_status = f"{base}/status"
        self.stats = SyncStats()
        self.connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._lost: asyncio.Event = asyncio.Event()
        self._wake = asyncio.Event()
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._window = envelope.ReplayWindow()
        self._unacked: dict[int, tuple[bytes, float, int]] = {}  # seq -> (bytes, sent, msgs)
        self._down: collections.deque[bytes] = collections.deque()
        self._down_ready = asyncio.Event()
        self._tokens = float(self.settings.batch_msgs)
        self._tokens_at = time.monotonic()
        self._misc_task: asyncio.Task[None] | None = None
        self._sock: Any = None

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
        self._loop = asyncio.get_running_loop()
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
                except (OSError, ssl.SSLError, TimeoutError) as exc:
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
        client = self._client
        if client is not None and self.connected.is_set():
            info = client.publish(self.topic_status, b"offline", qos=1, retain=True)
            deadline = time.monotonic() + 2.0
            while not info.is_published() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            client.disconnect()
        self._lost.set()
        self._wake.set()

    # --- connection -------------------------------------------------------------------------

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.gateway,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.tls:
            client.tls_set(ca_certs=self.broker.ca_file)
        client.will_set(self.topic_status, b"offline", qos=1, retain=True)
        client.max_inflight_messages_set(max(20, self.settings.window * 2))
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    async def _connect(self) -> bool:
        assert self._loop is not None
        client = self._new_client()
        self._client = client
        self._lost = asyncio.Event()
        self._connack: asyncio.Future[int] = self._loop.create_future()
        self._connect_thread = None
        # The TCP (and TLS) connect blocks: run it in a thread; socket hooks called there are
        # deferred until it returns (see _on_socket_open).
        await asyncio.wait_for(
            self._loop.run_in_executor(None, self._blocking_connect, client),
            timeout=self.settings.connect_timeout_s,
        )
        if self._sock is not None:
            self._loop.add_reader(self._sock, self._read)
            if client.want_write():
                self._loop.add_writer(self._sock, self._write)
        self._misc_task = asyncio.create_task(self._misc())
        rc = await asyncio.wait_for(self._connack, timeout=self.settings.connect_timeout_s)
        if rc != 0:
            event(log, logging.WARNING, "broker_refused", reason=str(rc))
            return False
        return True

    def _blocking_connect(self, client: mqtt.Client) -> None:
        self._connect_thread = threading.get_ident()
        try:
            client.connect(self.host, self.port, keepalive=self.broker.keepalive_s)
        finally:
            self._connect_thread = None

    def _teardown(self) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None
        self._unregister_socket()
        client, self._client = self._client, None
        if client is not None:
            sock = client.socket()
            if sock is not None:  # drop the socket without a DISCONNECT: the will stands
                with contextlib.suppress(OSError):
                    sock.close()
        self._unacked.clear()
        if was:
            self.stats.disconnects += 1
            if self._stopping:
                event(log, logging.INFO, "link_closed", backlog=self.backlog())
            else:
                event(log, logging.WARNING, "link_down", backlog=self.backlog())

    def _unregister_socket(self) -> None:
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock)
            self._loop.remove_writer(self._sock)
        self._sock = None

    # paho socket hooks (external loop). In the connect thread they only record the socket.
    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if client is self._client:
            self._sock = sock
            nodelay(sock)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if client is self._client and threading.get_ident() != self._connect_thread:
            self._unregister_socket()
            self._lost.set()
            self._wake.set()

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if client is self._client and self._loop is not None and self._connect_thread is None:
            self._loop.add_writer(sock, self._write)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if client is self._client and self._loop is not None and self._connect_thread is None:
            self._loop.remove_writer(sock)

    def _read(self) -> None:
        if self._client is not None:
            self._client.loop_read()

    def _write(self) -> None:
        if self._client is not None:
            self._client.loop_write()

    async def _misc(self) -> None:
        while self._client is not None:
            if self._client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._lost.set()
                self._wake.set()
                return
            await asyncio.sleep(1.0)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if client is not self._client:
            return
        code = int(getattr(reason, "value", reason))
        if not self._connack.done():
            self._connack.set_result(code)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if client is self._client:
            self._lost.set()
            self._wake.set()
            if not self._connack.done():
                self._connack.set_result(-1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if client is self._client and msg.topic == self.topic_down:
            self._down.append(bytes(msg.payload))
            self._down_ready.set()

    # --- a connected session ------------------------------------------------------------------

    async def _session(self) -> None:
        client = self._client
        assert client is not None
        self.stats.connects += 1
        self.connected.set()
        client.subscribe(self.topic_down, qos=1)
        client.publish(self.topic_status, b"online", qos=1, retain=True)
        await self._send_ephemeral([self.hello()])
        inflight = await self.worker.call(self.worker.store.inflight)
        now = time.monotonic()
        for seq, data, _created in inflight:
            self._publish(data)
            self.stats.envelopes_resent += 1
            self._unacked[seq] = (data, now, 0)
        event(log, logging.INFO, "link_up", resent=len(inflight), backlog=self.backlog())
        next_hb = now + self.settings.heartbeat_s
        while not self._stopping and not self._lost.is_set():
            await self._pump()
            now = time.monotonic()
            if now >= next_hb:
                await self._send_ephemeral([self.heartbeat(self.backlog())])
                next_hb = now + self.settings.heartbeat_s
            self._resend_stale(now)
            timeout = max(0.0, min(next_hb - now, self._next_resend(now) - now, 1.0))
            self._wake.clear()
            if self._lost.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    def _publish(self, data: bytes) -> None:
        assert self._client is not None
        self._client.publish(self.topic_up, data, qos=1)

    async def _send_ephemeral(self, msgs: list[dict[str, Any]]) -> None:
        ts_ms = int(self.clock() * 1000)
        store = self.worker.store
        _seq, data = await self.worker.call(
            seal_ephemeral, store, self.keyring, self.gateway, msgs, ts_ms
        )
        if self._client is not None and not self._lost.is_set():
            self._publish(data)
            self.stats.envelopes_sent += 1

    def _take_tokens(self) -> int:
        now = time.monotonic()
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
            self._unacked[seq] = (data, time.monotonic(), count)
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

    async def _refresh_backlog(self) -> None:
        counts = await self.worker.call(self.worker.store.backlog)
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
        window = envelope.ReplayWindow.from_dict(self._window.to_dict())
        window.accept(seq)
        snapshot = window.to_dict()
        acked: list[int] = []

        def persist(store: Store) -> None:
            store.put_kv(WINDOW_KEY, snapshot)
            if acks:
                acked.append(store.ack(acks))

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
            for s in acks:
                entry = self._unacked.pop(s, None)
                if entry is not None:
                    self.stats.acks += 1
            self.stats.inflight = max(0, self.stats.inflight - sum(acked))
            self._wake.set()
