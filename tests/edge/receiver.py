"""A small cloud-side receiver for the edge tests (the real bridge is the cloud's).

It does what the protocol asks of the cloud: decrypt each uplink envelope, dedupe by sequence
number (a replay is acked again, never applied twice), ack, send commands sealed as downlink
envelopes, and resend a command that has no result after ``resend_after_s`` (sealed again with a
new sequence number). It records everything it accepted so tests can check "exactly once".

paho runs in its own thread here (``loop_start``); tests read the recorded state under a lock.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shared.codec import envelope, messages
from shared.codec.errors import EnvelopeError, ReplayError


class Receiver:
    """Cloud side of one gateway's link, for tests."""

    def __init__(
        self,
        port: int,
        site: str,
        gateway: str,
        keyring: envelope.Keyring,
        *,
        auto_ack: bool = True,
        resend_after_s: float = 2.0,
        first_down_seq: int = 1,
    ) -> None:
        self.port = port
        self.site = site
        self.gateway = gateway
        self.keyring = keyring
        self.auto_ack = auto_ack
        self.resend_after_s = resend_after_s
        base = f"gridvend/v1/{site}/{gateway}"
        self.topic_up, self.topic_down, self.topic_status = (
            f"{base}/up",
            f"{base}/down",
            f"{base}/status",
        )
        self.lock = threading.RLock()
        self.window = envelope.ReplayWindow()
        self.seqs: list[int] = []  # accepted uplink sequence numbers, in arrival order
        self.messages: list[dict[str, Any]] = []  # every message of every accepted envelope
        self.replays = 0
        self.payloads: dict[int, str] = {}  # uplink seq -> sha256 of the envelope
        self.reused: list[int] = []  # seqs seen with two different envelopes
        self.hello_seqs: list[int] = []  # the seq of each hello, in arrival order
        self.errors: list[str] = []
        # Tests may lose chosen deliveries: ``lose(opened) -> bool`` is asked for every envelope.
        self.lose: Callable[[envelope.Opened], bool] = lambda opened: False
        self.lost: list[int] = []
        self.status: list[str] = []
        self.results: dict[Any, list[dict[str, Any]]] = {}
        self.pending: dict[Any, tuple[dict[str, Any], float]] = {}  # cmd id -> (cmd, sent at)
        self._down_seq = itertools.count(first_down_seq)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-cloud-{uuid.uuid4().hex[:8]}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        self._client.max_inflight_messages_set(100)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(0.1, 0.5)
        self._stop = threading.Event()
        self._resender = threading.Thread(target=self._resend_loop, daemon=True)
        self.subscribed = threading.Event()

    # --- life -----------------------------------------------------------------------------

    def start(self) -> Receiver:
        self._client.connect("127.0.0.1", self.port, keepalive=10)
        self._client.loop_start()
        self._resender.start()
        if not self.subscribed.wait(10):
            raise TimeoutError("the test receiver could not subscribe")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        client.subscribe([(self.topic_up, 1), (self.topic_status, 1)])
        self.subscribed.set()

    # --- uplink ---------------------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.topic_status:
            with self.lock:
                self.status.append(msg.payload.decode())
            return
        try:
            opened = envelope.open_sealed(self.keyring, msg.payload, envelope.UP, self.gateway)
        except EnvelopeError as exc:
            with self.lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        seq = opened.header.seq
        digest = hashlib.sha256(msg.payload).hexdigest()
        with self.lock:
            if self.lose(opened):
                self.lost.append(seq)  # as if the broker dropped it before we subscribed
                return
            # A sequence number must never carry two different envelopes (GCM nonce reuse).
            if self.payloads.setdefault(seq, digest) != digest:
                self.reused.append(seq)
            try:
                self.window.check(seq)
            except ReplayError:
                self.replays += 1  # already applied: ack again, apply nothing
                if self.auto_ack:
                    self._send([messages.ack([seq])])
                return
            for m in messages.parse_body(opened.body):
                messages.validate_up(m)
                self.messages.append(m)
                if m["t"] == "hello":
                    self.hello_seqs.append(seq)
                if m["t"] == "result":
                    self.results.setdefault(m["cmd"], []).append(m)
                    if m["status"] != "held":
                        self.pending.pop(m["cmd"], None)
            self.window.accept(seq)
            self.seqs.append(seq)
            if self.auto_ack:
                self._send([messages.ack([seq])])

    def ack_all(self) -> None:
        """Ack every accepted sequence (after a test ran with ``auto_ack`` off)."""
        with self.lock:
            self._send([messages.ack(list(self.seqs))])

    # --- downlink -------------------------------------------------------------------------

    def _send(self, msgs: list[dict[str, Any]]) -> bytes:
        data = envelope.seal(
            self.keyring,
            envelope.DOWN,
            self.gateway,
            next(self._down_seq),
            int(time.time() * 1000),
            messages.body(msgs),
        )
        self._client.publish(self.topic_down, data, qos=1)
        return data

    def send_raw(self, data: bytes) -> None:
        """Publish bytes as they are on the down topic (for bad-input tests)."""
        self._client.publish(self.topic_down, data, qos=1)

    def seal_down(self, msgs: list[dict[str, Any]]) -> bytes:
        """A correctly sealed downlink envelope, not sent (tests tamper with it)."""
        with self.lock:
            return envelope.seal(
                self.keyring,
                envelope.DOWN,
                self.gateway,
                next(self._down_seq),
                int(time.time() * 1000),
                messages.body(msgs),
            )

    def command(self, meter: str | None, op: str, args: dict[str, Any], cmd_id: Any = None) -> Any:
        """Send a command; it is resent until a non-held result arrives. Returns its id."""
        cmd_id = cmd_id or f"c-{uuid.uuid4().hex[:12]}"
        cmd = messages.cmd(cmd_id, meter, op, args)
        with self.lock:
            self.pending[cmd_id] = (cmd, time.monotonic())
            self._send([cmd])
        return cmd_id

    def _resend_loop(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self.lock:
                for cmd_id, (cmd, sent) in list(self.pending.items()):
                    if now - sent >= self.resend_after_s:
                        self.pending[cmd_id] = (cmd, now)
                        self._send([cmd])

    # --- what tests look at ---------------------------------------------------------------

    def of_type(self, t: str, meter: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                m
                for m in self.messages
                if m["t"] == t and (meter is None or m.get("meter") == meter)
            ]

    def final_result(self, cmd_id: Any) -> dict[str, Any] | None:
        with self.lock:
            finals = [r for r in self.results.get(cmd_id, []) if r["status"] != "held"]
            return finals[-1] if finals else None

    def wait_for(
        self, predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = ""
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")
