"""The bridge's work between batches: gateway status, sending commands, the scheduled
lost-contact evaluation and archival (cloud/bridge/worker.py has the whole picture). A composed
part of :class:`cloud.bridge.worker.Bridge`, sharing its :class:`~cloud.bridge.parts.Parts`.
"""

from __future__ import annotations

import bisect
import logging
import time
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from cloud.bridge import north, owners
from cloud.bridge.link import Inbound
from cloud.bridge.parts import Parts
from cloud.control import dispatch, lifecycle
from cloud.models import GATEWAY_LOCK, Command, Gateway
from cloud.monitoring import alarms
from cloud.park import gateways
from shared import topics
from shared.codec import envelope, messages
from shared.logs import event

log = logging.getLogger("gridvend.bridge")


class Jobs:
    """Collector status, command dispatch, and the scheduled jobs, over the bridge's
    :class:`~cloud.bridge.parts.Parts` (the worker holds the same parts)."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self._resume_after: str | None = None  # where a dispatch pass cut short stopped

    # --- status, commands, schedules --------------------------------------------------------

    def status(self, item: Inbound, where: topics.Address) -> tuple[str, bool] | None:
        """A gateway's retained status (``online`` / ``offline``, its last will), checked and
        heard now; ``(gateway, online)`` when this bridge records it (:meth:`record_statuses`,
        once for the batch), else None."""
        p = self.parts
        text = item.payload.decode("utf-8", "replace").strip()
        if text.encode() not in (topics.ONLINE, topics.OFFLINE):
            p.reject("Status", item.topic, f"status {text[:40]!r} is not online/offline")
            return None
        gw = where.gateway
        info = p.cache.get(gw)
        if info is None or info.site != where.site:
            p.reject("UnknownGateway", item.topic, f"status of unknown collector {gw!r}")
            return None
        p.heard[gw] = text
        if not p.tries(gw):
            return None  # the bridge that owns it records it (every bridge hears every status)
        return gw, text.encode() == topics.ONLINE

    def record_statuses(self, statuses: list[tuple[str, bool]]) -> None:
        """Record ``(gateway, online)`` statuses in arrival order, in one transaction (10,000
        collectors say ``online`` at once after a broker restart), then tell the north."""
        if not statuses:
            return
        p = self.parts
        now = int(p.clock())
        with p.db.session() as s:
            gateways.set_statuses(s, statuses, now=now)
            # Commands sent while they were away may have been dropped with their sessions:
            # due again now, not at their retry time.
            dispatch.due_again_many(s, [gw for gw, online in statuses if online])
        p.stats.status_updates += len(statuses)
        if any(online for _, online in statuses):
            p.commands_due = True  # commands may be waiting for them
        for gw, online in statuses:
            info = p.cache.get(gw)
            if p.settings.publish_north and info is not None:
                msg = north.gateway_status(info.site, gw, online, now)
                p.link.publish(msg.topic, msg.encode(), msg.retain)
                p.stats.north_published += 1
            status = (topics.ONLINE if online else topics.OFFLINE).decode()
            event(log, logging.INFO, "collector_status", gateway=gw, status=status)

    def send(self, gw: str, msgs: list[dict[str, Any]]) -> None:
        """Seal ``msgs`` into one downlink envelope with a fresh sequence number and publish."""
        p = self.parts
        info = p.cache.get(gw)
        if info is None:
            return
        seq = p.sequencer.next(gw)
        data = envelope.seal(
            info.keyring, envelope.DOWN, gw, seq, int(p.clock() * 1000), messages.body(msgs)
        )
        p.link.publish(topics.down(info.site, gw), data)

    def _reachable(self, gw: str, db_online: bool) -> bool:
        p = self.parts
        heard = p.heard.get(gw)
        if heard is None:
            return db_online
        return heard != "offline"

    def dispatch_commands(self) -> int:
        """Send due commands to every reachable collector; returns how many were sent.

        A chunk of ``dispatch_chunk`` collectors per transaction (:meth:`_dispatch_chunk`), so
        10,000 collectors coming online at once (a broker restart) cost a few dozen
        transactions, not 10,000. The worker handles no uplink meanwhile: a pass stops after
        ``dispatch_budget_s`` and the next one, after the next batch, carries on after the
        last collector done."""
        p = self.parts
        now = int(p.clock())
        due = or_(
            Command.status == lifecycle.PENDING,
            and_(
                Command.status == lifecycle.SENT,
                or_(
                    Command.last_sent_ts.is_(None),
                    Command.last_sent_ts <= now - p.settings.retry_after_s,
                ),
                or_(Command.result_status.is_(None), Command.result_status != "held"),
            ),
        )
        with p.db.session(readonly=True) as s:
            # Only collectors with something due: a command out and waiting for its result
            # costs nothing here, so the poll can be frequent (a sale goes out within it).
            rows = s.execute(
                select(Gateway.id, Gateway.online).where(
                    Gateway.id.in_(select(Command.gateway_id).where(due))
                )
            ).all()
        p.cache.preload([gw for gw, _online in rows])
        todo = sorted(
            gw
            for gw, online in rows
            if p.tries(gw) and self._reachable(gw, bool(online)) and p.cache.get(gw) is not None
        )
        if self._resume_after is not None:  # the last pass was cut short: its rest first
            k = bisect.bisect_right(todo, self._resume_after)
            todo = todo[k:] + todo[:k]
            self._resume_after = None
        size = max(1, p.settings.dispatch_chunk)
        deadline = time.monotonic() + p.settings.dispatch_budget_s
        sent = 0
        for i in range(0, len(todo), size):
            chunk = todo[i : i + size]
            sent += self._dispatch_chunk(chunk, now)
            if i + size < len(todo) and time.monotonic() >= deadline:
                self._resume_after = chunk[-1]
                p.commands_due = True  # the rest in the next pass, after the next batch
                break
        p.stats.commands_sent += sent
        return sent

    def _dispatch_chunk(self, chunk: list[str], now: int) -> int:
        """One transaction for these collectors: the rows locked and claimed, what each may be
        sent now (``dispatch.next_to_send_many``: lanes, retries, held results, at most 500 per
        collector) marked sent in one statement; after the commit, numbers for all of them in
        one reservation, then each collector's envelopes sealed and published."""
        p = self.parts
        with p.db.session() as s:
            mine = self._own(s, chunk)
            msgs = dispatch.next_to_send_many(
                s, mine, limit=500, now=now, retry_after_s=p.settings.retry_after_s
            )
            dispatch.mark_sent(s, [m["id"] for gw in msgs for m in msgs[gw]], now=now)
        gws = sorted(msgs)
        p.sequencer.reserve(gws)
        for gw in gws:
            for part in dispatch.envelopes(msgs[gw], p.settings.commands_per_envelope):
                self.send(gw, part)
                p.stats.command_envelopes += 1
        return sum(len(m) for m in msgs.values())

    def _own(self, s: Session, chunk: list[str]) -> list[str]:
        """Lock the collectors' rows in id order and claim them (cloud/bridge/owners.py): only
        its owner numbers and sends a collector's downlink. The ones now ours, in id order."""
        p = self.parts
        if p.membership is None:
            return chunk
        rows = s.scalars(
            select(Gateway)
            .where(Gateway.id.in_(chunk))
            .order_by(Gateway.id)
            .with_for_update(**GATEWAY_LOCK)
        ).all()
        if not rows:
            return []
        now_ms = owners.db_now_ms(s)
        verdicts = owners.claim_all(s, rows, p.membership, now_ms)
        mine: list[str] = []
        for gw in sorted(verdicts):
            verdict = verdicts[gw]
            if verdict == owners.OTHER:
                p.lost(gw)
                continue
            if verdict == owners.CLAIMED:
                p.gained(gw)
            mine.append(gw)
        return mine

    def leads(self) -> bool:
        """Whether the park-wide jobs are ours to run (one bridge among several runs them)."""
        membership = self.parts.membership
        return membership is None or membership.leads()

    def evaluate_lost_contact(self) -> dict[str, list[str]]:
        """Mark silent meters and collectors lost (cloud-core rules) and tell the north."""
        p = self.parts
        if not self.leads():
            return {"meters": [], "gateways": []}
        now = int(p.clock())
        p.feed.begin()
        with p.db.session() as s:
            lost = alarms.evaluate_lost_contact(s, now=now)
            out = p.feed.states(s, now, set(lost["meters"]))
            for gw in lost["gateways"]:
                info = p.cache.get(gw)
                if info is not None:
                    out.append(north.gateway_status(info.site, gw, False, now))
        p.feed.committed()
        p.stats.lost_contact_runs += 1
        if p.settings.publish_north:
            for msg in out:
                p.link.publish(msg.topic, msg.encode(), msg.retain)
            p.stats.north_published += len(out)
        if lost["meters"] or lost["gateways"]:
            event(log, logging.WARNING, "lost_contact", **lost)
        return lost

    def archive(self) -> Any:
        """Run the archival job (F03) when one was given."""
        p = self.parts
        if p.archiver is None or not self.leads():
            return None
        result = p.archiver(p.db, int(p.clock()))
        p.stats.archive_runs += 1
        return result
