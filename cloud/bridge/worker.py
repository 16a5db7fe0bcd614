"""The cloud bridge (``gridvend cloud bridge``): collectors' envelopes in, acks and commands out,
plain JSON north for third parties.

Theory of operation
-------------------
paho's thread receives every message on ``gridvend/v1/+/+/up`` and ``…/status`` (shared/topics.py) into a queue
(``cloud.bridge.link.BrokerLink``). One worker thread (``Bridge.run``) owns the database work:

1. It takes what has queued up (up to ``batch_envelopes`` / ``batch_messages``), so under load
   many envelopes share one transaction and one commit.
2. Per envelope: ``envelope.peek`` names the collector (it must match the topic and the
   collector's site), its keyring (current + previous key) opens it, and the collector's uplink
   replay window is checked. A sequence the window has seen, or an old one found in the inbox,
   was applied before: it is acked again and applied never. Forged, tampered, unknown-key,
   malformed and misrouted envelopes are logged and counted (``stats.rejected``) and change
   nothing; they are not acked.
3. ``cloud.uplink.ingest.apply_batch`` applies the messages (inbox unique by (collector, seq)) and the
   advanced windows are stored in the same transaction; then it commits. If the batch fails,
   each envelope is retried in its own transaction, so one poison envelope cannot hold back
   the others (it stays unacked; the collector resends it later).
4. After the commit: one ``ack`` envelope per collector, its sequence number from a block
   reserved and committed beforehand (``DownSequencer``), sealed once; then the north messages
   (``cloud.bridge.north``), built inside the transaction from what it changed.

Between batches the worker sends commands (``cloud.control.dispatch.next_to_send`` per collector with
open commands, in lane order, marked sent before publishing; a command without a result is sent
again after ``retry_after_s`` sealed with a new sequence number), and on a schedule runs the
lost-contact evaluation (``cloud.monitoring.alarms.evaluate_lost_contact``) and archival. Commands go only
to collectors that look reachable: the last thing heard from them was ``online`` on the status
topic or an uplink (the status topic is retained, its last will says ``offline``).

Shutdown (SIGINT/SIGTERM → :meth:`Bridge.stop`): the worker finishes the batch in hand, applies
what is already queued, waits briefly for outgoing messages to leave, and disconnects.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from cloud.bridge import north
from cloud.bridge.feed import NorthFeed
from cloud.bridge.jobs import Jobs
from cloud.bridge.link import BrokerLink, DownSequencer, GatewayCache, Inbound
from cloud.bridge.parts import Archiver, BridgeLink, BridgeSettings, BridgeStats, Parts
from cloud.db import Database
from cloud.models import Gateway, InboxEntry
from cloud.park import gateways
from cloud.uplink import ingest
from shared import topics
from shared.codec import envelope, messages
from shared.codec.errors import EnvelopeError, ForgedError, TopicError, UnknownKeyError
from shared.logs import event

log = logging.getLogger("gridvend.bridge")

# Uplink messages after which commands should go out at once rather than at the next poll.
WAKE_COMMANDS = ("result", "hello", "need_purchase")


def _copy(window: envelope.ReplayWindow) -> envelope.ReplayWindow:
    return envelope.ReplayWindow.from_dict(window.to_dict())


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
        self.parts = Parts(
            db=db,
            settings=s,
            link=link if link is not None else BrokerLink(s.broker, s.client_id),
            cache=cache,
            sequencer=DownSequencer(db, s.down_block),
            feed=NorthFeed(cache.site_of),
            clock=clock,
            archiver=archiver,
        )
        self.jobs = Jobs(self.parts)
        self.ready = threading.Event()
        self._stop = threading.Event()

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
        try:
            while not self._stop.is_set():
                if self.link.connected.is_set():
                    self.ready.set()
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
            while batch := self._take(0):
                self._guard(self.process, batch)
        finally:
            self.link.stop()
            event(log, logging.INFO, "bridge_stopped", **self.stats.__dict__)

    def _guard(self, job: Any, *args: Any) -> None:
        try:
            job(*args)
        except Exception:  # a scheduled job failing must not stop ingest; log it loudly
            log.exception("bridge job %s failed", getattr(job, "__name__", job))

    def _take(self, timeout_s: float) -> list[Inbound]:
        """What has queued up, waiting at most ``timeout_s`` for the first message."""
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
        """Apply one batch of received messages (see the module docstring)."""
        self.stats.batches += 1
        uplinks: list[ingest.Uplink] = []
        work: dict[str, envelope.ReplayWindow] = {}
        reacks: dict[str, list[int]] = {}
        too_old: list[tuple[str, int]] = []
        messages_in_batch = 0
        for item in batch:
            try:
                where = topics.parse(item.topic)
            except TopicError as exc:
                self.parts.reject("Topic", item.topic, str(exc))
                continue
            if where.kind == topics.STATUS:
                self.jobs.status(item, where)
                continue
            self.stats.envelopes += 1
            opened = self._open(item, where)
            if opened is None:
                continue
            gw, seq, msgs = opened
            self.parts.heard[gw] = "uplink"
            info = self.parts.cache.get(gw)
            assert info is not None
            window = work.setdefault(gw, _copy(info.window))
            if window.seen_seq(seq):
                if info.window.seen_seq(seq):  # committed before: ack it again
                    reacks.setdefault(gw, []).append(seq)
                # else a copy of one earlier in this batch: acked with it once it commits
                continue
            try:
                window.check(seq)
            except EnvelopeError:
                too_old.append((gw, seq))
                continue
            window.accept(seq)
            uplinks.append(ingest.Uplink(gw, seq, msgs))
            messages_in_batch += len(msgs)
            if messages_in_batch >= self.settings.batch_messages:
                self._apply(uplinks, work, reacks)
                uplinks, work, reacks = [], {}, {}
                messages_in_batch = 0
        if too_old:
            self._check_too_old(too_old, reacks)
        self._apply(uplinks, work, reacks)

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

    def _check_too_old(self, too_old: list[tuple[str, int]], reacks: dict[str, list[int]]) -> None:
        """Older than the replay window: acked again if the inbox holds it, else refused."""
        with self.db.session(readonly=True) as s:
            for gw, seq in too_old:
                found = s.scalars(
                    select(InboxEntry.id).where(InboxEntry.gateway_id == gw, InboxEntry.seq == seq)
                ).first()
                if found is not None:
                    reacks.setdefault(gw, []).append(seq)
                else:
                    self.parts.reject("ReplayError", gw, f"sequence {seq} is older than the window")

    def _apply(
        self,
        uplinks: list[ingest.Uplink],
        work: dict[str, envelope.ReplayWindow],
        reacks: dict[str, list[int]],
    ) -> None:
        outgoing: list[north.NorthMessage] = []
        acks: dict[str, list[int]] = {gw: list(seqs) for gw, seqs in reacks.items()}
        self.stats.reacked += sum(len(v) for v in reacks.values())
        if uplinks:
            try:
                done, outgoing = self._transaction(uplinks, work)
            except Exception:
                log.exception("batch of %d envelopes failed; applying one by one", len(uplinks))
                done = {}
                for up in uplinks:
                    info = self.parts.cache.get(up.gateway_id)
                    assert info is not None
                    one = _copy(info.window)
                    one.accept(up.seq)
                    try:
                        one_done, one_out = self._transaction([up], {up.gateway_id: one})
                    except Exception:
                        self.stats.apply_failed += 1
                        log.exception("envelope %s/%d not applied", up.gateway_id, up.seq)
                        continue
                    for gw, seqs in one_done.items():
                        done.setdefault(gw, []).extend(seqs)
                    outgoing.extend(one_out)
            for gw, seqs in done.items():
                acks.setdefault(gw, []).extend(seqs)
        for gw, seqs in acks.items():
            self.jobs.send(
                gw, [messages.ack(seqs[i : i + 2000]) for i in range(0, len(seqs), 2000)]
            )
            self.stats.acks_sent += 1
        for msg in outgoing:
            self.link.publish(msg.topic, msg.encode(), msg.retain)
        self.stats.north_published += len(outgoing)

    def _transaction(
        self, uplinks: list[ingest.Uplink], work: dict[str, envelope.ReplayWindow]
    ) -> tuple[dict[str, list[int]], list[north.NorthMessage]]:
        now = int(self.parts.clock())
        by_gateway: dict[str, list[ingest.Uplink]] = {}
        for up in uplinks:
            by_gateway.setdefault(up.gateway_id, []).append(up)
        acks: dict[str, list[int]] = {}
        outgoing: list[north.NorthMessage] = []
        results: list[ingest.ApplyResult] = []
        self.parts.feed.begin()
        with self.db.session() as s:
            for gw, ups in by_gateway.items():
                result = ingest.apply_batch(s, ups, now=now)
                results.append(result)
                row = s.get(Gateway, gw)
                assert row is not None
                row.up_window = work[gw].to_dict()
                if self.parts.heard.get(gw) == "uplink" and not row.online:
                    gateways.set_status(s, gw, True, now=now)
                for g, seqs in result.acks.items():
                    acks.setdefault(g, []).extend(seqs)
                if self.settings.publish_north:
                    outgoing.extend(self.parts.feed.notices(gw, result.notices, now))
            if self.settings.publish_north:
                outgoing.extend(self.parts.feed.states(s, now))
        self.parts.feed.committed()
        # Committed: the windows we used are now the durable ones.
        for gw in by_gateway:
            info = self.parts.cache.get(gw)
            if info is not None:
                info.window = work[gw]
        for result in results:
            self.stats.applied += len(result.applied)
            self.stats.duplicates += len(result.duplicates)
            self.stats.readings += result.readings
            self.stats.quarantined += result.quarantined
        if any(
            isinstance(m, dict) and m.get("t") in WAKE_COMMANDS
            for up in uplinks
            for m in up.messages
        ):
            self.parts.commands_due = True  # a lane may be free, or a collector waits for a credit
        return acks, outgoing
