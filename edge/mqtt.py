"""One MQTT connection driven from the asyncio loop: paho-mqtt 2.x through its external-loop
hooks (``loop_read`` / ``loop_write`` / ``loop_misc``), so every paho callback runs on the event
loop and nothing blocks it; only the TCP (and TLS) connect runs in a thread.

A :class:`MqttConnection` is one connection attempt and its life: a fresh paho client each time, saying
what every gridvend link says to the broker (shared/broker.py: MQTT 3.1.1, QoS 1, a persistent
session, credentials, TLS, Nagle off). Reconnecting is not its business: edge/sync.py owns that
(backoff, jitter) and makes a new connection through the :data:`Connector` it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from edge.errors import LinkRefused
from shared import broker as broker_options
from shared.broker import Broker


class Connection(Protocol):
    """What the uplink (edge/sync.py) needs of one connection attempt; :class:`MqttConnection`
    is the real one, tests/fakes.py an in-memory one."""

    lost: asyncio.Event

    async def connect(self, timeout_s: float) -> None: ...

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> object: ...

    def subscribe(self, topic: str) -> None: ...

    async def close(self, last_words: tuple[str, bytes] | None = None) -> None: ...

    def drop(self) -> None: ...


# (will, on_message(topic, payload), on_lost(), max_inflight) -> a connection not yet connected
Connector = Callable[
    [tuple[str, bytes] | None, Callable[[str, bytes], None], Callable[[], None], int], Connection
]


def mqtt_connector(broker: Broker, client_id: str) -> Connector:
    """Connections to ``broker`` as ``client_id`` (a fresh paho client for each)."""

    def connect(
        will: tuple[str, bytes] | None,
        on_message: Callable[[str, bytes], None],
        on_lost: Callable[[], None],
        max_inflight: int,
    ) -> Connection:
        return MqttConnection(broker, client_id, will, on_message, on_lost, max_inflight)

    return connect


class MqttConnection:
    """One connection. ``on_message(topic, payload)`` runs on the loop; ``lost`` is set when the
    connection ends for any reason."""

    def __init__(
        self,
        broker: Broker,
        client_id: str,
        will: tuple[str, bytes] | None,
        on_message: Callable[[str, bytes], None],
        on_lost: Callable[[], None],
        max_inflight: int = 32,
    ) -> None:
        self.broker = broker
        self.host, self.port, self.tls = broker.endpoint()
        self.on_message = on_message
        self.on_lost = on_lost
        self.lost = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._connack: asyncio.Future[int] = self._loop.create_future()
        self._connect_thread: int | None = None
        self._sock: Any = None
        self._misc_task: asyncio.Task[None] | None = None
        client = broker_options.client(broker, client_id, max_inflight=max_inflight)
        if will is not None:  # None: a short check (the site self-test), no last will
            client.will_set(will[0], will[1], qos=broker_options.QOS, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self.client = client

    async def connect(self, timeout_s: float) -> None:
        """Connect and wait for CONNACK; raises OSError, TimeoutError or LinkRefused."""
        # The TCP (and TLS) connect blocks: run it in a thread; socket hooks called there only
        # record the socket, and it is registered with the loop once the thread returns.
        await asyncio.wait_for(
            self._loop.run_in_executor(None, self._blocking_connect), timeout=timeout_s
        )
        if self._sock is not None:
            self._loop.add_reader(self._sock, self._read)
            if self.client.want_write():
                self._loop.add_writer(self._sock, self._write)
        self._misc_task = asyncio.create_task(self._misc())
        rc = await asyncio.wait_for(self._connack, timeout=timeout_s)
        if rc != 0:
            raise LinkRefused(f"the broker refused the connection (CONNACK {rc})")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """QoS 1 publish (queued by paho; written when the socket is writable)."""
        return self.client.publish(topic, payload, qos=broker_options.QOS, retain=retain)

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=broker_options.QOS)

    async def close(self, last_words: tuple[str, bytes] | None = None) -> None:
        """A clean goodbye: publish ``last_words`` (retained), then DISCONNECT (no will)."""
        if last_words is not None and not self.lost.is_set():
            info = self.publish(last_words[0], last_words[1], retain=True)
            deadline = self._loop.time() + 2.0
            while not info.is_published() and self._loop.time() < deadline:
                await asyncio.sleep(0.01)
        if not self.lost.is_set():
            self.client.disconnect()  # paho closes the socket once DISCONNECT is written
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lost.wait(), timeout=1.0)
        self.drop()

    def drop(self) -> None:
        """Forget the connection without a DISCONNECT (the broker publishes the will)."""
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None
        self._unregister()
        sock = self.client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        self._set_lost()

    # --- paho plumbing ------------------------------------------------------------------------

    def _blocking_connect(self) -> None:
        self._connect_thread = threading.get_ident()
        try:
            self.client.connect(self.host, self.port, keepalive=self.broker.keepalive_s)
        finally:
            self._connect_thread = None

    def _set_lost(self) -> None:
        if not self.lost.is_set():
            self.lost.set()
            self.on_lost()
        if not self._connack.done():
            self._connack.set_result(-1)

    def _unregister(self) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._sock)
            self._loop.remove_writer(self._sock)
        self._sock = None

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._sock = sock
        broker_options.nodelay(sock)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if threading.get_ident() != self._connect_thread:
            self._unregister()
            self._set_lost()

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if self._connect_thread is None and self._sock is not None:
            self._loop.add_writer(sock, self._write)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if self._connect_thread is None and self._sock is not None:
            self._loop.remove_writer(sock)

    def _read(self) -> None:
        self.client.loop_read()

    def _write(self) -> None:
        self.client.loop_write()

    async def _misc(self) -> None:
        while not self.lost.is_set():
            if self.client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._set_lost()
                return
            await asyncio.sleep(1.0)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if not self._connack.done():
            self._connack.set_result(int(getattr(reason, "value", reason)))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._set_lost()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.on_message(msg.topic, bytes(msg.payload))
