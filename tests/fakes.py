"""Fakes for the unit tests of logic: a clock, and an in-memory MQTT broker with the two kinds of
link gridvend runs (docs/architecture.md, "Seams and fakes"). Everything else in the tests is
real (RULES.md): what needs a broker's own behaviour (a restart, a last will over a cut TCP
link, the ACL) runs against a real Mosquitto.

- :class:`FakeClock` moves only when told: ``time()`` (epoch seconds) and ``monotonic()`` advance
  together by :meth:`FakeClock.advance`.
- :class:`MemoryBroker` routes QoS 1 messages between connections in order, with ``+`` / ``#``
  filters, retained messages, last wills and persistent sessions (a client that comes back gets
  what arrived for its subscriptions while it was away, as ``clean_session=False`` asks). It can
  go down (:meth:`MemoryBroker.stop`): every connection is lost, wills are published and
  connects are refused until :meth:`MemoryBroker.start`.
- :meth:`MemoryBroker.connector` gives what ``edge.sync.Sync`` takes as ``connect``: each call
  a :class:`MemoryConnection` with the interface of ``edge.mqtt.MqttConnection`` (asyncio).
- :meth:`MemoryBroker.bridge_link` gives a :class:`MemoryBridgeLink` with the interface of
  ``cloud.bridge.link.BrokerLink`` (a thread-safe inbox the bridge's worker drains).
- :meth:`MemoryBroker.peer` gives a :class:`MemoryPeer`, a plain synchronous client for the
  test's side of the wire (what ``tests/edge/receiver.py`` does over a real broker).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cloud.bridge.link import Inbound
from shared import topics

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


class FakeClock:
    """Epoch and monotonic time that move only by :meth:`advance`."""

    def __init__(self, start: float = T0) -> None:
        self._epoch = float(start)
        self._mono = 1000.0

    def time(self) -> float:
        return self._epoch

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a fake clock does not go back")
        self._epoch += seconds
        self._mono += seconds


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 §4.7: ``+`` matches one level, a final ``#`` the rest (also none)."""
    want, got = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(got) or (level != "+" and level != got[i]):
            return False
    return len(want) == len(got)


class BrokerDown(ConnectionRefusedError):
    """The memory broker is stopped."""


@dataclass
class _Session:
    """What the broker keeps of a client id across connections (clean_session=False)."""

    subscriptions: set[str] = field(default_factory=set)
    pending: list[tuple[str, bytes, bool]] = field(default_factory=list)
    deliver: Callable[[str, bytes, bool], None] | None = None
    will: tuple[str, bytes] | None = None


class MemoryBroker:
    """An in-memory broker for unit tests (see the module docstring). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._sessions: dict[str, _Session] = {}
        self._lost: dict[str, Callable[[], None]] = {}
        self.retained: dict[str, bytes] = {}
        self.published: list[tuple[str, bytes]] = []  # everything, in order (tests look)
        self.up = True
        self.drop: Callable[[str, bytes], bool] = lambda topic, payload: False
        self._peers: list[MemoryPeer] = []  # they connect again by themselves after a restart

    # --- the broker's side ----------------------------------------------------------------

    def _connect(
        self,
        client_id: str,
        deliver: Callable[[str, bytes, bool], None],
        on_lost: Callable[[], None],
        will: tuple[str, bytes] | None,
    ) -> None:
        with self._lock:
            if not self.up:
                raise BrokerDown("the memory broker is stopped")
            old = self._lost.pop(client_id, None)
            session = self._sessions.setdefault(client_id, _Session())
            session.deliver, session.will = deliver, will
            self._lost[client_id] = on_lost
            pending, session.pending = session.pending, []
        if old is not None:  # a client id taken over: the broker drops the old connection
            old()
        for topic, payload, retain in pending:
            deliver(topic, payload, retain)

    def _disconnect(self, client_id: str, *, clean: bool) -> None:
        with self._lock:
            session = self._sessions.get(client_id)
            if session is None or self._lost.pop(client_id, None) is None:
                return
            session.deliver = None
            will, session.will = session.will, None
        if will is not None and not clean:
            self.publish(will[0], will[1], retain=True)

    def _subscribe(self, client_id: str, topic_filter: str) -> None:
        with self._lock:
            session = self._sessions[client_id]
            session.subscriptions.add(topic_filter)
            retained = [(t, p) for t, p in self.retained.items() if topic_matches(topic_filter, t)]
            deliver = session.deliver
        for topic, payload in retained:
            if deliver is not None:
                deliver(topic, payload, True)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Route one message (QoS 1: every subscriber gets it once, in publish order)."""
        if self.drop(topic, payload):
            return
        with self._lock:
            if not self.up:
                return
            self.published.append((topic, payload))
            if retain:
                self.retained[topic] = payload
            targets = []
            for session in self._sessions.values():
                if any(topic_matches(f, topic) for f in session.subscriptions):
                    if session.deliver is None:
                        session.pending.append((topic, payload, False))
                    else:
                        targets.append(session.deliver)
        for deliver in targets:
            deliver(topic, payload, False)

    def stop(self) -> None:
        """Go down: every connection is lost (wills are published first) and connects are
        refused; sessions and retained messages are kept (a broker with persistence)."""
        with self._lock:
            clients = list(self._lost)
        for client_id in clients:
            lost = self._lost.get(client_id)
            self._disconnect(client_id, clean=False)
            if lost is not None:
                lost()
        with self._lock:
            self.up = False

    def start(self) -> None:
        with self._lock:
            self.up = True
        for peer in self._peers:
            peer.connect()

    def cut(self, client_id: str) -> None:
        """Lose one client's connection without a DISCONNECT: its will is published."""
        lost = self._lost.get(client_id)
        self._disconnect(client_id, clean=False)
        if lost is not None:
            lost()

    # --- the clients ----------------------------------------------------------------------

    def connector(self, client_id: str) -> Callable[..., MemoryConnection]:
        """A ``connect`` for ``edge.sync.Sync``: each call makes one :class:`MemoryConnection`."""

        def connect(
            will: tuple[str, bytes] | None,
            on_message: Callable[[str, bytes], None],
            on_lost: Callable[[], None],
            max_inflight: int = 32,
        ) -> MemoryConnection:
            return MemoryConnection(self, client_id, will, on_message, on_lost)

        return connect

    def bridge_link(self, client_id: str = "bridge") -> MemoryBridgeLink:
        return MemoryBridgeLink(self, client_id)

    def peer(self, client_id: str) -> MemoryPeer:
        peer = MemoryPeer(self, client_id)
        self._peers.append(peer)
        return peer


class MemoryConnection:
    """``edge.mqtt.MqttConnection`` in memory: messages arrive on the asyncio loop."""

    def __init__(
        self,
        broker: MemoryBroker,
        client_id: str,
        will: tuple[str, bytes] | None,
        on_message: Callable[[str, bytes], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self.will = will
        self.on_message = on_message
        self.on_lost = on_lost
        self.lost = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.sent: list[tuple[str, bytes, bool]] = []

    async def connect(self, timeout_s: float) -> None:
        self.broker._connect(self.client_id, self._deliver, self._lost_from_broker, self.will)

    def _deliver(self, topic: str, payload: bytes, retain: bool) -> None:
        self._loop.call_soon_threadsafe(self._arrive, topic, payload)

    def _arrive(self, topic: str, payload: bytes) -> None:
        if not self.lost.is_set():
            self.on_message(topic, payload)

    def _lost_from_broker(self) -> None:
        self._loop.call_soon_threadsafe(self._set_lost)

    def _set_lost(self) -> None:
        if not self.lost.is_set():
            self.lost.set()
            self.on_lost()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        if self.lost.is_set():
            return
        self.sent.append((topic, payload, retain))
        self.broker.publish(topic, payload, retain)

    def subscribe(self, topic: str) -> None:
        self.broker._subscribe(self.client_id, topic)

    async def close(self, last_words: tuple[str, bytes] | None = None) -> None:
        if last_words is not None and not self.lost.is_set():
            self.broker.publish(last_words[0], last_words[1], retain=True)
        self.broker._disconnect(self.client_id, clean=True)
        self._set_lost()

    def drop(self) -> None:
        self.broker._disconnect(self.client_id, clean=False)
        self._set_lost()


class MemoryBridgeLink:
    """``cloud.bridge.link.BrokerLink`` in memory: received messages queue up for the worker."""

    def __init__(self, broker: MemoryBroker, client_id: str) -> None:
        self.broker = broker
        self.client_id = client_id
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.connected = threading.Event()
        self.connects = 0
        self.url = "memory://"

    def start(self) -> None:
        self.broker._connect(self.client_id, self._deliver, self.connected.clear, None)
        self.broker._subscribe(self.client_id, topics.ALL_UP)
        self.broker._subscribe(self.client_id, topics.ALL_STATUS)
        self.broker._subscribe(self.client_id, topics.ALL_BRIDGES)
        self.connects += 1
        self.connected.set()

    def _deliver(self, topic: str, payload: bytes, retain: bool) -> None:
        self.inbox.put(Inbound(topic, payload, time.monotonic()))

    def stop(self, timeout_s: float = 5.0) -> None:
        self.broker._disconnect(self.client_id, clean=True)
        self.connected.clear()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.broker.publish(topic, payload, retain)

    def ack(self, item: Any) -> None:
        """The memory broker delivers once and keeps nothing in flight: nothing to say."""
        item.acked = True


class MemoryPeer:
    """A plain client for the test's side: publish, subscribe, and look at what arrived."""

    def __init__(self, broker: MemoryBroker, client_id: str) -> None:
        self.broker = broker
        self.client_id = client_id
        self.received: list[tuple[str, bytes]] = []
        self.on_message: Callable[[str, bytes], None] | None = None
        self.connect()

    def connect(self) -> None:
        """(Again:) what arrived for its subscriptions meanwhile is delivered now."""
        self.broker._connect(self.client_id, self._deliver, lambda: None, None)

    def _deliver(self, topic: str, payload: bytes, retain: bool) -> None:
        self.received.append((topic, payload))
        if self.on_message is not None:
            self.on_message(topic, payload)

    def subscribe(self, topic_filter: str) -> None:
        self.broker._subscribe(self.client_id, topic_filter)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.broker.publish(topic, payload, retain)
