"""The bridge's work between batches: gateway status, sending commands, the scheduled
lost-contact evaluation and archival (cloud/bridge/worker.py has the whole picture). A composed
part of :class:`cloud.bridge.worker.Bridge`, sharing its :class:`~cloud.bridge.parts.Parts`.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from cloud.bridge import north, owners
from cloud.bridge.link import Inbound
from cloud.bridge.parts import Parts
from cloud.control import dispatch, lifecycle
from cloud.models import Command, Gateway
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

    # --- status, commands, schedules --------------------------------------------------------

    def status(self, item: Inbound, where: topics.Address) -> None:
        """A gateway's retained status (``online`` / ``offline``, its last will)."""
        p = self.parts
        text = item.payload.decode("utf-8", "replace").strip()
        if text.encode() not in (topics.ONLINE, topics.OFFLINE):
            p.reject("Status", item.topic, f"status {text[:40]!r} is not online/offline")
            return
        gw = where.gateway
        info = p.cache.get(gw)
        if info is None or info.site != where.site:
            p.reject("UnknownGateway", item.topic, f"status of unknown collector {gw!r}")
            return
        online = text.encode() == topics.ONLINE
        now = int(p.clock())
        p.heard[gw] = text
        if not p.tries(gw):
            return  # the bridge that owns it records it (every bridge hears every status)
        with p.db.session() as s:
            gateways.set_status(s, gw, online, now=now)
            if online:
                # Commands sent while it was away may have been dropped with its session:
                # due again now, not at their retry time.
                dispatch.due_again(s, gw)
        p.stats.status_updates += 1
        if online:
            p.commands_due = True  # commands may be waiting for it
        if p.settings.publish_north:
            msg = north.gateway_status(info.site, gw, online, now)
            p.link.publish(msg.topic, msg.encode(), msg.retain)
            p.stats.north_published += 1
        event(log, logging.INFO, "collector_status", gateway=gw, status=text)

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
        """Send due commands to every reachable collector; returns how many were sent."""
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
                select(Gateway.id, Gateway.online)
                .where(Gateway.id.in_(select(Command.gateway_id).where(due)))
                .order_by(Gateway.id)
            ).all()
        sent = 0
        for gw, online in rows:
            if not p.tries(gw) or not self._reachable(gw, bool(online)):
                continue
            if p.cache.get(gw) is None:
                continue
            with p.db.session() as s:
                if not self._own(s, gw):
                    continue
                msgs = dispatch.next_to_send(
                    s, gw, limit=500, now=now, retry_after_s=p.settings.retry_after_s
                )
                if msgs:
                    dispatch.mark_sent(s, [m["id"] for m in msgs], now=now)
            for chunk in dispatch.envelopes(msgs, p.settings.commands_per_envelope):
                self.send(gw, chunk)
                p.stats.command_envelopes += 1
            sent += len(msgs)
        p.stats.commands_sent += sent
        return sent

    def _own(self, s: Session, gw: str) -> bool:
        """Lock the collector's row and claim it (cloud/bridge/owners.py): only its owner numbers
        and sends its downlink."""
        p = self.parts
        if p.membership is None:
            return True
        row = s.get(Gateway, gw, with_for_update=True)
        if row is None:
            return False
        now_ms = owners.db_now_ms(s)
        verdict = owners.claim(s, row, p.membership.id, now_ms, p.membership.timeout_ms)
        if verdict == owners.OTHER:
            p.lost(gw)
            return False
        if verdict == owners.CLAIMED:
            p.gained(gw)
        return True

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
