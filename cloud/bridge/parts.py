"""What the bridge's pieces share: its settings and counters, the link it is given (a real
``BrokerLink`` or tests/fakes.py's in-memory one), and :class:`Parts`, the one object the worker
(cloud/bridge/worker.py) and the jobs between batches (cloud/bridge/jobs.py) both hold, so
neither is a mixin of the other.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cloud.bridge.feed import NorthFeed
from cloud.bridge.link import DownSequencer, GatewayCache, Inbound
from cloud.bridge.owners import Membership
from cloud.control import dispatch
from cloud.db import Database
from cloud.park import gateways
from shared.broker import Broker
from shared.logs import event

log = logging.getLogger("gridvend.bridge")


@dataclass
class BridgeSettings:
    """How the bridge connects and paces itself (``gridvend cloud bridge --help``)."""

    broker: Broker = field(default_factory=Broker)
    client_id: str = "gridvend-bridge"
    batch_envelopes: int = 200
    batch_messages: int = 4000
    command_poll_s: float = 0.1
    # Commands go out for this many collectors per transaction; a pass that has taken
    # dispatch_budget_s lets the next uplink batch in before it goes on (jobs.py).
    dispatch_chunk: int = 200
    dispatch_budget_s: float = 0.5
    retry_after_s: int = dispatch.DEFAULT_RETRY_AFTER_S
    commands_per_envelope: int = 50
    lost_contact_every_s: float = 30.0
    archive_every_s: float = 3600.0
    down_block: int = gateways.DEFAULT_BLOCK
    publish_north: bool = True
    # More broker URLs (the other nodes of a cluster), tried in turn when the link drops.
    failover_urls: list[str] = field(default_factory=list)
    # Several bridges (docs/architecture.md "Several bridges"). None: every bridge receives
    # every uplink and applies the collectors it prefers; a group name: subscribe as
    # $share/GROUP/… (EMQX with hash_clientid) and apply what the broker hands us.
    share_group: str | None = None
    beat_s: float = 1.0
    member_timeout_s: float = 6.0
    standby_s: float = 20.0
    standby_grace_s: float = 5.0  # a copy nobody applied for this long: claim it if free
    rebalance_s: float = 10.0  # give up collectors we hold but no longer prefer, this often
    drain_s: float = 3.0  # at a stop, what is queued is applied for at most this long


@dataclass
class BridgeStats:
    """Counters (logged at shutdown; read by tests and the bench)."""

    batches: int = 0
    envelopes: int = 0
    applied: int = 0
    duplicates: int = 0
    reacked: int = 0
    readings: int = 0
    quarantined: int = 0
    apply_failed: int = 0
    acks_sent: int = 0
    commands_sent: int = 0
    command_envelopes: int = 0
    status_updates: int = 0
    north_published: int = 0
    lost_contact_runs: int = 0
    archive_runs: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


class BridgeLink(Protocol):
    """What the bridge needs of its broker link (``cloud.bridge.link.BrokerLink``)."""

    inbox: queue.Queue[Inbound]
    connected: threading.Event

    def start(self) -> None: ...

    def stop(self, timeout_s: float = 5.0) -> None: ...

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None: ...

    def ack(self, item: Inbound) -> None: ...


Archiver = Callable[[Database, int], Any]


@dataclass
class Parts:
    """The bridge's shared state (see the module docstring)."""

    db: Database
    settings: BridgeSettings
    link: BridgeLink
    cache: GatewayCache
    sequencer: DownSequencer
    feed: NorthFeed
    clock: Callable[[], float]
    archiver: Archiver | None = None
    stats: BridgeStats = field(default_factory=BridgeStats)
    # gateway -> the last word heard from it: "online" | "offline" | "uplink"
    heard: dict[str, str] = field(default_factory=dict)
    # something arrived that may free a lane or that a collector waits on: dispatch now
    commands_due: bool = False
    # this bridge among the others (None: alone, as tests of the single bridge run it)
    membership: Membership | None = None
    # collectors this bridge owns, as far as it knows (the rows say for sure)
    owned: set[str] = field(default_factory=set)

    def tries(self, gateway: str) -> bool:
        """Whether to act for ``gateway`` (apply its uplink, send its commands): always with a
        shared subscription (the broker chose us); else if we own it or should own it. The
        claim in the transaction decides; this only keeps bridges from contending."""
        if self.settings.share_group is not None or self.membership is None:
            return True
        return gateway in self.owned or self.membership.prefers(gateway)

    def gained(self, gateway: str) -> None:
        """We claimed ``gateway``: our next downlink number comes from a fresh block."""
        self.owned.add(gateway)
        self.sequencer.forget(gateway)

    def lost(self, gateway: str) -> None:
        """Another live bridge owns ``gateway``."""
        self.owned.discard(gateway)

    def reject(self, kind: str, topic: str, reason: str) -> None:
        """Count and log something the bridge refused (it changes nothing, it is not acked)."""
        self.stats.rejected[kind] = self.stats.rejected.get(kind, 0) + 1
        event(log, logging.WARNING, "uplink_rejected", kind=kind, topic=topic, reason=reason)
