"""A scripted collector for the bridge tests: real paho, real envelopes, real keys, no agent.

It publishes sealed uplink envelopes exactly as a collector would (so a test can also publish
forged, replayed or misrouted ones), and opens every downlink envelope the bridge sends it,
recording acks and commands. paho runs in its own thread; tests read under ``lock``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shared.codec import envelope, messages
from shared.codec.errors import EnvelopeError


class ScriptedCollector:
    def __init__(self, port: int, site: str, gateway: str, keyring: envelope.Keyring) -> None:
        self.site, self.gateway, self.keyring = site, gateway, keyring
        base = f"gridvend/v1/{site}/{gateway}"
        self.topic_up, self.topic_down, self.topic_status = (
            f"{base}/up",
            f"{base}/down",
            (f"{base}/status"),
        )
        self.lock = threading.Lock()
        self.acked: list[int] = []
        self.commands: list[dict[str, Any]] = []
        self.envelopes: list[list[dict[str, Any]]] = []  # the commands of each downlink envelope
        self.down_seqs: list[int] = []
        self.down_errors: list[str] = []
        self.seq = 0
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=gateway,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.will_set(self.topic_status, b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.port = port

    def start(self) -> ScriptedCollector:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("scripted collector could not subscribe")
        self.client.publish(self.topic_status, b"online", qos=1, retain=True)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe(self.topic_down, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            opened = envelope.open_sealed(self.keyring, msg.payload, envelope.DOWN, self.gateway)
        except EnvelopeError as exc:
            with self.lock:
                self.down_errors.append(str(exc))
            return
        with self.lock:
            self.down_seqs.append(opened.header.seq)
            cmds = []
            for m in messages.parse_body(opened.body):
                messages.validate_down(m)
                if m["t"] == "ack":
                    self.acked.extend(m["seqs"])
                else:
                    self.commands.append(m)
                    cmds.append(m)
            if cmds:
                self.envelopes.append(cmds)

    def seal(self, msgs: list[dict[str, Any]], seq: int | None = None) -> tuple[int, bytes]:
        if seq is None:
            self.seq += 1
            seq = self.seq
        data = envelope.seal(
            self.keyring,
            envelope.UP,
            self.gateway,
            seq,
            int(time.time() * 1000),
            messages.body(msgs),
        )
        return seq, data

    def publish(self, data: bytes, topic: str | None = None) -> None:
        self.client.publish(topic or self.topic_up, data, qos=1).wait_for_publish(10)

    def send(self, msgs: list[dict[str, Any]]) -> int:
        seq, data = self.seal(msgs)
        self.publish(data)
        return seq


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


class NorthListener:
    """Subscribes to every north topic and records ``(topic, payload bytes, retain)``."""

    def __init__(
        self,
        port: int,
        topic_filter: str = "gridvend/v1/+/north/#",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[str, bytes, bool]] = []
        self._subscribed = threading.Event()
        self.filter = topic_filter
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"north-{uuid.uuid4().hex[:8]}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if username is not None:  # an integrator's read-only user on a secured broker
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, *a: c.subscribe(self.filter, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 1)
        self.port = port

    def start(self) -> NorthListener:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("north listener could not subscribe")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def payloads(self, suffix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.received if t.endswith(suffix)]
