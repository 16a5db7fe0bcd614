"""A plain MQTT client for the broker-security tests: connect as someone, subscribe, publish,
and see what arrived. paho-mqtt 2.x in its own thread; every wait is bounded."""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Refused(ConnectionError):
    """The broker answered CONNECT with a refusal."""


class Client:
    """One connection as ``username`` (None: anonymous)."""

    def __init__(
        self,
        port: int,
        username: str | None = None,
        password: str | None = None,
        *,
        ca_file: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.received: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._connack: list[Any] = []
        self._acks: dict[int, threading.Event] = {}
        self._granted: dict[int, list[int]] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"t-{uuid.uuid4().hex[:10]}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.host, self.port = host, port

    def connect(self, timeout_s: float = 10.0) -> Client:
        """Connect and wait for CONNACK; ``Refused`` when the broker says no."""
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        deadline = time.monotonic() + timeout_s
        while not self._connack and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._connack:
            self.close()
            raise TimeoutError("no CONNACK")
        reason = self._connack[0]
        if reason.is_failure:
            self.close()
            raise Refused(str(reason))
        return self

    def subscribe(self, *filters: str) -> list[int]:
        """Subscribe (QoS 1) and wait for SUBACK; returns the granted QoS per filter (128 =
        refused)."""
        result, mid = self.client.subscribe([(f, 1) for f in filters])
        assert result == mqtt.MQTT_ERR_SUCCESS
        event = self._acks.setdefault(mid, threading.Event())
        assert event.wait(10), "no SUBACK"
        return self._granted[mid]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """QoS 1 publish, waiting until the broker acknowledged it (a refused publish is
        acknowledged too in MQTT 3.1.1: the broker drops it silently)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), f"publish to {topic} not acknowledged"

    def topics(self) -> list[str]:
        with self._lock:
            return [t for t, _, _ in self.received]

    def messages(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self.received)

    def wait_for(self, topic: str, timeout_s: float = 5.0) -> tuple[str, bytes, bool]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for item in self.messages():
                if item[0] == topic:
                    return item
            time.sleep(0.02)
        raise AssertionError(f"nothing arrived on {topic}; got {self.topics()}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connack.append(reason)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        self._granted[mid] = [int(getattr(r, "value", r)) for r in reasons]
        self._acks.setdefault(mid, threading.Event()).set()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, bytes(msg.payload), bool(msg.retain)))


def settle(seconds: float = 0.5) -> None:
    """Let messages that would arrive arrive (used only before asserting that none did, after a
    control message on the same path proved delivery works)."""
    time.sleep(seconds)
