"""The cloud bridge (``gridvend cloud bridge``): collectors' envelopes in, acks and commands out,
plain JSON north for third parties. Any number of bridges may share one database
(docs/architecture.md, "Several bridges").

Theory of operation
-------------------
paho's thread receives every message on ``gridvend/v1/+/+/up`` and ``…/status``, and the
bridges' notices ``gridvend/v1/bridge/+`` (shared/topics.py), into a queue
(``cloud.bridge.link.BrokerLink``). One worker thread (``Bridge.run``) owns the database work:

1. It takes what has queued up (up to ``batch_envelopes`` / ``batch_messages``), so under load
   many envelopes share one transaction and one commit.
2. Per envelope: a collector this bridge neither owns nor prefers (``cloud.bridge.owners``:
   rendezvous hashing over the live bridges) is another bridge's; its envelope is kept as a
   standby copy (``cloud.bridge.standby``) and nothing more. Otherwise ``envelope.peek`` names
   the collector (it must match the topic and the collector's site) and its keyring (current +
   previous key) opens it. Forged, tampered, unknown-key, malformed and misrouted envelopes are
   logged and counted (``stats.rejected``) and change nothing; they are not acked.
3. ``cloud.bridge.apply`` applies the batch in one transaction: the collectors' rows locked and
   claimed (a collector a live bridge elsewhere owns is left to it), each collector's envelopes
   judged in sequence order by the replay window committed on its row (seen before: acked
   again; older than the window: applied unless the inbox holds it), ``cloud.uplink.ingest``
   applying the rest, the windows stored; then it commits. If the batch fails, each envelope is
   retried in its own transaction, so one poison envelope cannot hold back the others (it stays
   unacked; the collector resends it later).
4. After the commit: one ``ack`` envelope per collector, its sequence number from a block
   reserved and committed beforehand (``DownSequencer``; a fresh block whenever the collector
   was gained from another bridge), sealed once; then the north messages
   (``cloud.bridge.north``), built inside the transaction from what it changed.

Between batches the worker beats (``bridge_members``; only while the broker link is up), gives
up collectors another live bridge should own and applies the standby copies of those it
gained; sends commands to the collectors it owns (``cloud.control.dispatch.next_to_send_many``,
in lane order, marked sent under the collectors' row locks before publishing, a chunk of
collectors per transaction, a pass bounded by ``dispatch_budget_s`` (cloud/bridge/jobs.py); a
command without a result is sent again after ``retry_after_s``, or at once when the collector
says it is online);
and on a schedule, on one bridge of all, runs the lost-contact evaluation
(``cloud.monitoring.alarms.evaluate_lost_contact``) and archival. Commands go only to collectors
that look reachable: the last thing heard from them was ``online`` on the status topic or an
uplink (the status topic is retained, its last will says ``offline``).

Shutdown (SIGINT/SIGTERM → :meth:`Bridge.stop`): the worker finishes the batch in hand, applies
what is already queued for up to ``drain_s`` (the rest stays unacknowledged with the broker),
hands its collectors over (owner cleared, member row removed), says
``offline`` on its notice topic, waits briefly for outgoing messages to leave, and disconnects.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cloud.bridge import owners
from cloud.bridge.apply import Applier
from cloud.bridge.feed import NorthFeed
from cloud.bridge.jobs import Jobs
from cloud.bridge.link import BrokerLink, DownSequencer, GatewayCache, Inbound
from cloud.bridge.parts import Archiver, BridgeLink, BridgeSettings, BridgeStats, Parts
from cloud.bridge.standby import Standby
from cloud.db import Database
from cloud.uplink import ingest
from shared import topics
from shared.codec import envelope, messages
from shared.codec.errors import EnvelopeError, ForgedError, TopicError, UnknownKeyError
from shared.logs import event

log = logging.getLogger("gridvend.bridge")


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is in hand. A batch's decoded messages live
    until it commits, so the collections their allocations set off find nothing to free, yet
    promote them all, and every few batches that forced a full collection walking the whole
    heap: a quarter of the bridge's CPU (``gc.callbacks``, the in-process ingest harness).
    What the batch leaves in cycles (its session) is freed by the first collection after it."""
    if not gc.isenabled():  # someone else's pause: theirs to end
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Bridge:
    """See the module docstring. ``run()`` blocks until ``stop()``. ``link`` is the broker link
    (a :class:`~cloud.bridge.link.BrokerLink` to ``settings.broker`` by default; tests pass an
    in-memory one, tests/fakes.py)."""

    def __init__(
        self,
        db: Database,
        settings: BridgeSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        archiver: Archiver | None = None,
        link: BridgeLink | None = None,
    ) -> None:
        s = settings or BridgeSettings()
        cache = GatewayCache(db)
        if link is None:
            link = BrokerLink(
                s.broker, s.client_id, failover_urls=s.failover_urls, share_group=s.share_group
            )
        timeout_ms = int(s.member_timeout_s * 1000)
        self.parts = Parts(
            db=db,
            settings=s,
            link=link,
            cache=cache,
            sequencer=DownSequencer(db, s.down_block),
            feed=NorthFeed(cache.site_of),
            clock=clock,
            archiver=archiver,
            membership=owners.Membership(db, s.client_id, timeout_ms),
        )
        assert self.parts.membership is not None
        self.membership = self.parts.membership
        self.jobs = Jobs(self.parts)
        self.applier = Applier(self.parts, self.membership)
        self.standby = Standby(keep_s=s.standby_s)
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._retry: list[Inbound] = []  # standby copies to apply now (collectors we gained)
        self._replays_logged: dict[tuple[str, int], None] = {}  # insertion-ordered, bounded
        self._next_rebalance = 0.0

    @property
    def db(self) -> Database:
        return self.parts.db

    @property
    def settings(self) -> BridgeSettings:
        return self.parts.settings

    @property
    def link(self) -> BridgeLink:
        return self.parts.link

    @property
    def stats(self) -> BridgeStats:
        return self.parts.stats

    def dispatch_commands(self) -> int:
        """Send due commands to every reachable gateway (cloud/bridge/jobs.py)."""
        return self.jobs.dispatch_commands()

    # --- life -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to finish (safe from a signal handler or another thread)."""
        self._stop.set()

    def run(self) -> None:
        """Connect and work until :meth:`stop`; then drain, disconnect and return."""
        s = self.settings
        self.link.start()
        event(log, logging.INFO, "bridge_started", broker=s.broker.url, client_id=s.client_id)
        now = time.monotonic()
        next_cmd = now
        next_lost = now + s.lost_contact_every_s
        next_archive = now + s.archive_every_s
        next_beat = now
        try:
            while not self._stop.is_set():
                if self.link.connected.is_set():
                    self.ready.set()
                    if time.monotonic() >= next_beat:
                        # Only a bridge that hears the broker counts as alive: one cut off
                        # from it stops beating, and the others take its collectors over.
                        self._guard(self.beat)
                        next_beat = time.monotonic() + s.beat_s
                wait = max(0.0, min(next_cmd, next_lost, next_archive) - time.monotonic())
                batch = self._take(min(wait, 0.25))
                if batch:
                    # A failure here (the database went away) must not stop the bridge: what
                    # was not acked is resent by the collectors.
                    self._guard(self.process, batch)
                now = time.monotonic()
                if self.link.connected.is_set() and (now >= next_cmd or self.parts.commands_due):
                    self.parts.commands_due = False
                    self._guard(self.jobs.dispatch_commands)
                    next_cmd = now + s.command_poll_s
                if now >= next_lost:
                    self._guard(self.jobs.evaluate_lost_contact)
                    next_lost = now + s.lost_contact_every_s
                if now >= next_archive:
                    self._guard(self.jobs.archive)
                    next_archive = now + s.archive_every_s
            # What is already queued, for a moment; the rest stays unacknowledged with the
            # broker (our session, or the other bridges' copies) rather than holding us up.
            deadline = time.monotonic() + s.drain_s
            while time.monotonic() < deadline and (batch := self._take(0)):
                self._guard(self.process, batch)
            # Hand our collectors over at once rather than after the heartbeat timeout.
            self._guard(self.membership.leave)
        finally:
            self.link.stop()
            event(log, logging.INFO, "bridge_stopped", **self.stats.__dict__)

    def _guard(self, job: Any, *args: Any) -> None:
        try:
            job(*args)
        except Exception:  # a scheduled job failing must not stop ingest; log it loudly
            log.exception("bridge job %s failed", getattr(job, "__name__", job))

    def beat(self) -> None:
        """Say we are alive; when the live bridges changed (and every ``rebalance_s``), give up
        the collectors another should own now; apply the standby copies of those we should
        own, and of any whose copies have waited ``standby_grace_s`` (standby.py)."""
        changed = self.membership.beat()
        self.standby.expire()
        now = time.monotonic()
        if self.settings.share_group is None:
            if changed or now >= self._next_rebalance:
                self._next_rebalance = now + self.settings.rebalance_s
                keep = {gw for gw in self.parts.owned if self.membership.prefers(gw)}
                self.membership.release(self.parts.owned - keep)
                self.parts.owned = keep
            mine = {gw for gw in self.standby.gateways() if self.membership.prefers(gw)}
            # Copies nobody applies (their bridge subscribed after they were sent, or is
            # stuck): try to claim them; a live owner elsewhere keeps them.
            mine.update(self.standby.waiting(self.settings.standby_grace_s))
        else:
            mine = set(self.standby.gateways())  # the owner may have died: try to claim again
        self._retry.extend(self.standby.take(sorted(mine)))

    def _take(self, timeout_s: float) -> list[Inbound]:
        """What has queued up, waiting at most ``timeout_s`` for the first message."""
        if self._retry:
            batch, self._retry = self._retry, []
            return batch
        try:
            first = self.link.inbox.get(timeout=timeout_s) if timeout_s > 0 else None
            if first is None:
                first = self.link.inbox.get_nowait()
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.settings.batch_envelopes:
            try:
                batch.append(self.link.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    # --- one batch ------------------------------------------------------------------------

    def process(self, batch: list[Inbound]) -> None:
        """Apply one batch of received messages (see the module docstring), then acknowledge
        them to the broker: everything the bridge needed from them is committed (or in a
        standby copy; or not applicable and resent by its collector in due course)."""
        try:
            self._process(batch)
        finally:
            for item in batch:
                self.link.ack(item)

    def _process(self, batch: list[Inbound]) -> None:
        with _collector_paused():
            self._process_batch(batch)

    def _process_batch(self, batch: list[Inbound]) -> None:
        self.stats.batches += 1
        uplinks: list[ingest.Uplink] = []
        origin: dict[tuple[str, int], Inbound] = {}
        statuses: list[tuple[str, bool]] = []
        messages_in_batch = 0
        parsed: list[tuple[Inbound, topics.Address]] = []
        notices: dict[str, bytes] = {}
        for item in batch:
            if (peer := topics.bridge_of(item.topic)) is not None:
                notices[peer] = item.payload  # the last one of each bridge counts
                continue
            try:
                parsed.append((item, topics.parse(item.topic)))
            except TopicError as exc:
                self.parts.reject("Topic", item.topic, str(exc))
        if notices:
            self._bridge_notices(notices)
        # A fresh bridge hears every collector's retained status at once: their keys and
        # sites in one query, not one each.
        self.parts.cache.preload([where.gateway for _, where in parsed])
        for item, where in parsed:
            if where.kind == topics.STATUS:
                if (heard := self.jobs.status(item, where)) is not None:
                    statuses.append(heard)
                continue
            if where.kind == topics.UP and not self.parts.tries(where.gateway):
                self.standby.keep(where.gateway, item)  # another bridge's: a copy, in case
                continue
            self.stats.envelopes += 1
            opened = self._open(item, where)
            if opened is None:
                continue
            gw, seq, msgs = opened
            self.parts.heard[gw] = "uplink"
            uplinks.append(ingest.Uplink(gw, seq, msgs))
            origin[(gw, seq)] = item
            messages_in_batch += len(msgs)
            if messages_in_batch >= self.settings.batch_messages:
                self.jobs.record_statuses(statuses)
                self._apply(uplinks, origin)
                uplinks, origin, messages_in_batch, statuses = [], {}, 0, []
        # Statuses before the uplinks they came with (one transaction for all of them).
        self.jobs.record_statuses(statuses)
        self._apply(uplinks, origin)

    def _bridge_notices(self, notices: dict[str, bytes]) -> None:
        """Other bridges' retained notices. An ``offline`` is a will (or a clean stop): the
        broker saw that bridge's connection end, so its members are dead now, not after the
        member timeout; we beat at once, which takes over the collectors we now prefer and
        applies our standby copies of their envelopes (owners.py says why this is safe)."""
        offline = [peer for peer, payload in notices.items() if payload == topics.OFFLINE]
        gone = self.membership.presume_gone(*offline) if offline else []
        if gone:
            event(log, logging.INFO, "bridge_gone", members=gone, by="will")
            self.beat()

    def _log_replay(self, gw: str, seq: int) -> None:
        """A replayed uplink is logged once (as the collector logs a replayed downlink), not at
        every further copy: the bridge remembers the last few thousand it logged."""
        if (gw, seq) in self._replays_logged:
            return
        self._replays_logged[(gw, seq)] = None
        if len(self._replays_logged) > 10_000:
            self._replays_logged.pop(next(iter(self._replays_logged)))
        event(log, logging.INFO, "uplink_replayed", gateway=gw, seq=seq, acked_again=True)

    def _open(self, item: Inbound, where: topics.Address) -> tuple[str, int, list[Any]] | None:
        if where.kind != topics.UP:
            self.parts.reject("Topic", item.topic, f"not {topics.ALL_UP}")
            return None
        try:
            head = envelope.peek(item.payload)
        except EnvelopeError as exc:
            self.parts.reject(type(exc).__name__, item.topic, str(exc))
            return None
        gw = head.gateway
        if gw != where.gateway:
            self.parts.reject(
                "Topic", item.topic, f"envelope of collector {gw!r} on another's topic"
            )
            return None
        info = self.parts.cache.get(gw)
        if info is None:
            self.parts.reject("UnknownGateway", item.topic, f"collector {gw!r} is not provisioned")
            return None
        if info.site != where.site:
            self.parts.reject(
                "Topic", item.topic, f"collector {gw!r} belongs to site {info.site!r}"
            )
            return None
        try:
            try:
                opened = envelope.open_sealed(info.keyring, item.payload, envelope.UP, gw)
            except (UnknownKeyError, ForgedError):
                fresh = self.parts.cache.reload(gw)  # the key may have rotated meanwhile
                if fresh is None or fresh is info:
                    raise
                opened = envelope.open_sealed(fresh.keyring, item.payload, envelope.UP, gw)
            msgs = messages.parse_body(opened.body)
        except EnvelopeError as exc:
            self.parts.reject(type(exc).__name__, item.topic, str(exc))
            return None
        return gw, head.seq, msgs

    def _apply(self, uplinks: list[ingest.Uplink], origin: dict[tuple[str, int], Inbound]) -> None:
        """Apply (apply.py), then ack what committed and publish north; keep copies of what a
        live owner elsewhere holds."""
        if not uplinks:
            return
        out = self.applier.apply(uplinks)
        for gw in out.claimed:
            self.parts.gained(gw)
            event(log, logging.INFO, "collector_claimed", gateway=gw, member=self.membership.id)
        self.parts.owned.update(out.owned)
        for up in out.elsewhere:
            self.parts.lost(up.gateway_id)
            item = origin.get((up.gateway_id, up.seq))
            if item is not None:
                self.standby.keep(up.gateway_id, item)
        for gw, seq in out.replayed:
            self._log_replay(gw, seq)
        for gw, window in out.windows.items():
            info = self.parts.cache.get(gw)
            if info is not None:
                info.window = window
        self.parts.sequencer.reserve(sorted(out.acks))  # one transaction, not one per collector
        for gw, seqs in out.acks.items():
            self.jobs.send(
                gw, [messages.ack(seqs[i : i + 2000]) for i in range(0, len(seqs), 2000)]
            )
            self.stats.acks_sent += 1
        for msg in out.outgoing:
            self.link.publish(msg.topic, msg.encode(), msg.retain)
        self.stats.north_published += len(out.outgoing)
