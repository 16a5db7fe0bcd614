"""The bridge's MQTT link and its per-gateway crypto state.

* :class:`BrokerLink` owns the paho client (what it says to the broker: shared/broker.py; a fixed
  client id so the broker keeps our subscriptions and queues uplinks while the bridge is down).
  paho runs its network loop in its own thread (``loop_start``) and reconnects by itself; every
  received message goes into a thread-safe queue that the bridge's worker drains in batches.
  Subscriptions are made again on every connect (a broker restarted without persistence
  forgets them).
* :class:`GatewayCache` caches each gateway's keyring, site and uplink replay window, loaded
  from the database and reloaded when a key id or collector is not known yet (provisioning and
  key rotation happen while the bridge runs).
* :class:`DownSequencer` hands out downlink sequence numbers only from blocks reserved and
  committed in the database first (``cloud.park.gateways.reserve_down_block``), so a (key, nonce)
  pair never repeats, even across a crash.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import select

from cloud.db import Database
from cloud.park import gateways
from shared import broker as broker_options
from shared import topics
from shared.broker import Broker
from shared.codec import envelope
from shared.logs import event

log = logging.getLogger("gridvend.bridge")


@dataclass
class Inbound:
    """One message received from the broker. ``mid``/``qos``/``conn`` say how to acknowledge it
    to the broker (``BrokerLink.ack``), once the bridge is done with it."""

    topic: str
    payload: bytes
    received: float
    mid: int = 0
    qos: int = 0
    conn: int = 0
    acked: bool = False


class BrokerLink:
    """The paho client of the bridge (see the module docstring)."""

    def __init__(
        self,
        broker: Broker,
        client_id: str,
        *,
        failover_urls: list[str] | None = None,
        share_group: str | None = None,
    ) -> None:
        self.broker = broker
        self.host, self.port, _tls = broker.endpoint()
        self.url = broker.url
        # The broker's URL first, then the other nodes of a cluster: after a drop the link
        # tries the next one (a dead node does not come back while its peers are up).
        self.endpoints = [(self.host, self.port, broker.url)]
        for url in failover_urls or []:
            host, port, _ = Broker(url=url).endpoint()
            self.endpoints.append((host, port, url))
        self._endpoint = 0
        prefix = f"$share/{share_group}/" if share_group else ""
        self.filters = [
            (prefix + topics.ALL_UP, broker_options.QOS),
            (prefix + topics.ALL_STATUS, broker_options.QOS),
            # The other bridges' notices, to every bridge: a will ("offline") says at once
            # that a bridge is gone (cloud/bridge/owners.py).
            (topics.ALL_BRIDGES, broker_options.QOS),
        ]
        # Retained "online" on connect, "offline" as the will and on a clean stop: collectors
        # resend what waits for an ack as soon as a bridge comes (back) online.
        self.notice_topic = topics.bridge_status(client_id)
        self.inbox: queue.Queue[Inbound] = queue.Queue()
        self.connected = threading.Event()
        self.connects = 0
        self._stopping = False
        # Acks and commands go out in bursts after each batch: allow many in flight.
        client = broker_options.client(broker, client_id, max_inflight=1000)
        client.reconnect_delay_set(0.2, 5)  # type: ignore[arg-type]  # paho sleeps a float
        client.will_set(self.notice_topic, topics.OFFLINE, qos=broker_options.QOS, retain=True)
        # The broker's QoS 1 delivery is acknowledged only when the bridge is done with a
        # message (after its batch committed): a bridge killed mid-batch gets it again from its
        # session, and the broker's in-flight limit keeps a backlog in the broker, not in RAM.
        client.manual_ack_set(True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        self.client = client

    def start(self) -> None:
        """Connect in the background (the broker may come up later) and start paho's thread."""
        self.client.connect_async(self.host, self.port, keepalive=self.broker.keepalive_s)
        self.client.loop_start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Disconnect cleanly once what was published has left (at most ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while self.connected.is_set() and time.monotonic() < deadline:
            if not self.client.want_write() and not self._inflight():
                break
            time.sleep(0.02)
        self._stopping = True
        if self.connected.is_set():
            info = self.client.publish(
                self.notice_topic, topics.OFFLINE, qos=broker_options.QOS, retain=True
            )
            with contextlib.suppress(Exception):
                info.wait_for_publish(min(2.0, max(0.1, deadline - time.monotonic())))
        self.client.disconnect()
        self.client.loop_stop()

    def _inflight(self) -> int:
        # paho keeps unacknowledged outgoing QoS>0 messages here; nothing public says so.
        return len(getattr(self.client, "_out_messages", {}))

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """QoS 1; paho queues it while the link is down and sends it after reconnecting."""
        self.client.publish(topic, payload, qos=broker_options.QOS, retain=retain)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if getattr(reason, "is_failure", False):
            event(log, logging.WARNING, "broker_refused", reason=str(reason))
            return
        client.subscribe(self.filters)
        client.publish(self.notice_topic, topics.ONLINE, qos=broker_options.QOS, retain=True)
        self.connects += 1
        self.connected.set()
        event(log, logging.INFO, "broker_connected", url=self.url, connects=self.connects)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if self.connected.is_set() and not self._stopping:
            event(log, logging.WARNING, "broker_disconnected", reason=str(reason))
        self.connected.clear()
        if len(self.endpoints) > 1 and not self._stopping:
            # paho reconnects by itself, to whatever connect_async last named: the next node.
            self._endpoint = (self._endpoint + 1) % len(self.endpoints)
            host, port, self.url = self.endpoints[self._endpoint]
            with contextlib.suppress(Exception):
                client.connect_async(host, port, keepalive=self.broker.keepalive_s)

    @staticmethod
    def _on_socket_open(client: mqtt.Client, userdata: Any, sock: Any) -> None:
        broker_options.nodelay(sock)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(
            Inbound(
                msg.topic,
                bytes(msg.payload),
                time.monotonic(),
                mid=msg.mid,
                qos=msg.qos,
                conn=self.connects,
            )
        )

    def ack(self, item: Inbound) -> None:
        """Acknowledge ``item`` to the broker, once, and only on the connection it came by (a
        packet id means nothing on the next one; there the broker delivers it again)."""
        if item.acked:
            return
        item.acked = True
        if item.qos > 0 and item.conn == self.connects and self.connected.is_set():
            self.client.ack(item.mid, item.qos)


class GatewayInfo:
    """What the bridge holds for one gateway (collector)."""

    __slots__ = ("keyring", "loaded", "site", "window")

    def __init__(self, keyring: envelope.Keyring, site: str, window: envelope.ReplayWindow):
        self.keyring = keyring
        self.site = site
        self.window = window
        self.loaded = time.monotonic()


class GatewayCache:
    """Keyrings, sites and committed uplink replay windows, per gateway (see module doc)."""

    RELOAD_EVERY_S = 2.0  # at most this often per unknown collector or key id

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: dict[str, GatewayInfo] = {}
        self._misses: dict[str, float] = {}

    def get(self, gateway_id: str) -> GatewayInfo | None:
        """The collector's info, loading it on first use; None if the database lacks it."""
        info = self._known.get(gateway_id)
        if info is None:
            info = self.reload(gateway_id)
        return info

    def preload(self, gateway_ids: list[str]) -> None:
        """Load the collectors not known yet in one query (before work on many of them)."""
        need = sorted({gw for gw in gateway_ids if gw not in self._known})
        if not need:
            return
        with self.db.session(readonly=True) as s:
            for gw in s.scalars(select(gateways.Gateway).where(gateways.Gateway.id.in_(need))):
                self._known[gw.id] = self._info(gw, None)

    @staticmethod
    def _info(gw: gateways.Gateway, old: GatewayInfo | None) -> GatewayInfo:
        keys, current = gateways.keyring_keys(gw)
        if old is not None:
            window = old.window  # ours is at least as new as the one we committed
        elif gw.up_window:
            window = envelope.ReplayWindow.from_dict(gw.up_window)
        else:
            window = envelope.ReplayWindow()
        return GatewayInfo(envelope.Keyring(keys, current=current), gw.site_id, window)

    def reload(self, gateway_id: str) -> GatewayInfo | None:
        """Read the collector again (keys may have rotated); throttled per collector."""
        now = time.monotonic()
        if now - self._misses.get(gateway_id, -1e9) < self.RELOAD_EVERY_S:
            return self._known.get(gateway_id)
        self._misses[gateway_id] = now
        with self.db.session(readonly=True) as s:
            gw = s.get(gateways.Gateway, gateway_id)
            if gw is None:
                self._known.pop(gateway_id, None)
                return None
            info = self._info(gw, self._known.get(gateway_id))
        self._known[gateway_id] = info
        return info

    def site_of(self, gateway_id: str) -> str:
        """The gateway's site ("?" for one the database does not hold)."""
        info = self.get(gateway_id)
        return info.site if info is not None else "?"

    def sites(self) -> dict[str, str]:
        """``{gateway: site}`` of the collectors loaded so far."""
        return {gw: info.site for gw, info in self._known.items()}


class DownSequencer:
    """Downlink sequence numbers from durable reservations (see the module docstring)."""

    def __init__(self, db: Database, block: int = gateways.DEFAULT_BLOCK) -> None:
        self.db = db
        self.block = block
        self._ranges: dict[str, tuple[int, int]] = {}  # gateway -> (next, end)

    def next(self, gateway_id: str) -> int:
        """The next unused number; reserves (and commits) a new block when one runs out.
        Never call it inside another open write transaction on the same collector."""
        nxt, end = self._ranges.get(gateway_id, (0, 0))
        if nxt >= end:
            with self.db.session() as s:
                block = gateways.reserve_down_block(s, gateway_id, self.block)
            nxt, end = block.start, block.stop
        self._ranges[gateway_id] = (nxt + 1, end)
        return nxt

    def reserve(self, gateway_ids: list[str]) -> int:
        """Reserve (and commit) a fresh block, in one transaction, for each of these collectors
        that has no number left in hand (before a burst of envelopes to many collectors: one
        transaction rather than one per collector); how many blocks were reserved."""
        need = [gw for gw in gateway_ids if (r := self._ranges.get(gw)) is None or r[0] >= r[1]]
        if not need:
            return 0
        with self.db.session() as s:
            blocks = gateways.reserve_down_blocks(s, need, self.block)
        for gw, block in blocks.items():
            self._ranges[gw] = (block.start, block.stop)
        return len(blocks)

    def forget(self, gateway_id: str) -> None:
        """Drop the block in hand: another bridge may have numbered since we reserved it, so
        the next number comes from a block reserved after theirs."""
        self._ranges.pop(gateway_id, None)
