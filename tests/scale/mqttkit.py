"""A small paho client for tests that watch what a broker delivers: connects to one of several
URLs, records every message with its topic, and counts PUBACKs of what it publishes."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Client:
    """One MQTT 3.1.1 client (QoS 1). ``received`` is ``[(topic, payload), …]`` in arrival order."""

    def __init__(self, client_id: str, *, clean_session: bool) -> None:
        self.client_id = client_id
        self.received: list[tuple[str, bytes]] = []
        self.redelivered: list[bytes] = []  # payloads that came with the DUP flag
        self.acked: set[int] = set()
        self.session_present: bool | None = None
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        self.paho.max_inflight_messages_set(1000)
        self.paho.max_queued_messages_set(0)
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = lambda *a: self._connected.clear()
        self.paho.on_message = self._on_message
        self.paho.on_publish = self._on_publish
        self.paho.on_subscribe = lambda *a: self._subscribed.set()

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, p: Any) -> None:
        if not rc.is_failure:
            self.session_present = bool(flags.session_present)
            self._connected.set()

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        with self._lock:
            self.received.append((msg.topic, bytes(msg.payload)))
            if msg.dup:
                self.redelivered.append(bytes(msg.payload))

    def _on_publish(self, c: Any, u: Any, mid: int, rc: Any, p: Any) -> None:
        with self._lock:
            self.acked.add(mid)

    def connect(self, url: str, timeout_s: float = 30.0) -> Client:
        """Connect (retrying while the broker refuses, e.g. a cluster electing leaders)."""
        parts = urlsplit(url)
        deadline = time.monotonic() + timeout_s
        while True:
            self._connected.clear()
            try:
                self.paho.connect(parts.hostname or "127.0.0.1", parts.port or 1883, 30)
            except OSError:
                pass
            else:
                self.paho.loop_start()
                if self._connected.wait(5):
                    return self
                self.paho.loop_stop()
                # loop_start makes a new socket pair each time and leaves the old one open.
                self.paho._reset_sockets()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.client_id} could not connect to {url}")
            time.sleep(0.3)

    def subscribe(self, topic: str, timeout_s: float = 30.0) -> None:
        self._subscribed.clear()
        self.paho.subscribe(topic, qos=1)
        if not self._subscribed.wait(timeout_s):
            raise TimeoutError(f"{self.client_id}: subscription to {topic} not granted")

    def publish(self, topic: str, payload: bytes) -> int:
        return int(self.paho.publish(topic, payload, qos=1).mid)

    def drop(self) -> None:
        """Stop the network loop without a DISCONNECT (the broker sees the link die)."""
        self.paho.loop_stop()
        self.paho._reset_sockets()  # the connection and paho's socket pair

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()
        self.paho._reset_sockets()

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [p for _, p in self.received]

    def wait_for(self, count: int, timeout_s: float) -> list[bytes]:
        """Block until ``count`` distinct payloads have arrived (duplicates are allowed)."""
        deadline = time.monotonic() + timeout_s
        while len(set(self.payloads())) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.payloads()
