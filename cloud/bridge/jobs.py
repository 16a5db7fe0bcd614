"""The bridge's work between batches: collector status, sending commands, the scheduled
lost-contact evaluation and archival (see ``cloud.bridge`` for the whole picture).

A mixin of :class:`cloud.bridge.Bridge`; it uses the bridge's ``db``, ``link``,
``collectors``, ``sequencer``, ``feed``, ``settings`` and ``stats``.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from cloud.bridge import north
from cloud.bridge.link import Inbound
from cloud.control import dispatch, lifecycle
from cloud.models import Command, Gateway
from cloud.monitoring import alarms
from cloud.park import gateways
from shared import topics
from shared.codec import envelope, messages
from shared.logs import event

log = logging.getLogger("gridvend.bridge")


class BridgeJobs:
    db: Any
    link: Any
    collectors: Any
    sequencer: Any
    feed: Any
    settings: Any
    stats: Any
    clock: Any
    archiver: Any
    _heard: dict[str, str]
    _results_seen: bool

    def _reject(self, kind: str, topic: str, reason: str) -> None:
        raise NotImplementedError

    # --- status, commands, schedules --------------------------------------------------------

    def _status(self, item: Inbound, where: topics.Address) -> None:
        text = item.payload.decode("utf-8", "replace").strip()
        if text.encode() not in (topics.ONLINE, topics.OFFLINE):
            self._reject("Status", item.topic, f"status {text[:40]!r} is not online/offline")
            return
        gw = where.gateway
        info = self.collectors.get(gw)
        if info is None or info.site != where.site:
            self._reject("UnknownCollector", item.topic, f"status of unknown collector {gw!r}")
            return
        online = text.encode() == topics.ONLINE
        now = int(self.clock())
        with self.db.session() as s:
            gateways.set_status(s, gw, online, now=now)
        self._heard[gw] = text
        self.stats.status_updates += 1
        if online:
            self._results_seen = True  # commands may be waiting for it
        if self.settings.publish_north:
            msg = north.gateway_status(info.site, gw, online, now)
            self.link.publish(msg.topic, msg.encode(), msg.retain)
            self.stats.north_published += 1
        event(log, logging.INFO, "collector_status", gateway=gw, status=text)

    def _send(self, gw: str, msgs: list[dict[str, Any]]) -> None:
        """Seal ``msgs`` into one downlink envelope with a fresh sequence number and publish."""
        info = self.collectors.get(gw)
        if info is None:
            return
        seq = self.sequencer.next(gw)
        data = envelope.seal(
            info.keyring, envelope.DOWN, gw, seq, int(self.clock() * 1000), messages.body(msgs)
        )
        self.link.publish(topics.down(info.site, gw), data)

    def _site_of(self, gw: str) -> str:
        info = self.collectors.get(gw)
        return info.site if info is not None else "?"

    def _reachable(self, gw: str, db_online: bool) -> bool:
        heard = self._heard.get(gw)
        if heard is None:
            return db_online
        return heard != "offline"

    def dispatch_commands(self) -> int:
        """Send due commands to every reachable collector; returns how many were sent."""
        now = int(self.clock())
        with self.db.session(readonly=True) as s:
            rows = s.execute(
                select(Gateway.id, Gateway.online)
                .where(
                    Gateway.id.in_(
                        select(Command.gateway_id).where(
                            Command.status.in_(lifecycle.OPEN_STATUSES)
                        )
                    )
                )
                .order_by(Gateway.id)
            ).all()
        sent = 0
        for gw, online in rows:
            if not self._reachable(gw, bool(online)) or self.collectors.get(gw) is None:
                continue
            with self.db.session() as s:
                msgs = dispatch.next_to_send(
                    s, gw, limit=500, now=now, retry_after_s=self.settings.retry_after_s
                )
                if msgs:
                    dispatch.mark_sent(s, [m["id"] for m in msgs], now=now)
            for chunk in dispatch.envelopes(msgs, self.settings.commands_per_envelope):
                self._send(gw, chunk)
                self.stats.command_envelopes += 1
            sent += len(msgs)
        self.stats.commands_sent += sent
        return sent

    def evaluate_lost_contact(self) -> dict[str, list[str]]:
        """Mark silent meters and collectors lost (cloud-core rules) and tell the north."""
        now = int(self.clock())
        self.feed.begin()
        with self.db.session() as s:
            lost = alarms.evaluate_lost_contact(s, now=now)
            out = self.feed.states(s, now, set(lost["meters"]))
            for gw in lost["gateways"]:
                info = self.collectors.get(gw)
                if info is not None:
                    out.append(north.gateway_status(info.site, gw, False, now))
        self.feed.committed()
        self.stats.lost_contact_runs += 1
        if self.settings.publish_north:
            for msg in out:
                self.link.publish(msg.topic, msg.encode(), msg.retain)
            self.stats.north_published += len(out)
        if lost["meters"] or lost["gateways"]:
            event(log, logging.WARNING, "lost_contact", **lost)
        return lost

    def archive(self) -> Any:
        """Run the archival job (F03) when one was given."""
        if self.archiver is None:
            return None
        result = self.archiver(self.db, int(self.clock()))
        self.stats.archive_runs += 1
        return result
