"""Applying a batch of opened uplink envelopes in one transaction, safely beside other bridges
on the same database (docs/architecture.md, "Several bridges").

In one transaction:

1. The batch's collector rows are locked, in id order (two bridges lock in the same order, so
   they queue rather than deadlock), and each is claimed (``cloud.bridge.owners.claim_all``): a
   collector another live bridge owns is left alone — its envelopes are handed back for the
   standby copies, unacked.
2. Per owned collector, its envelopes in sequence order (the order the collector sent them) are
   checked against the replay window *read from the locked row*, the one every bridge commits,
   never a cached copy: a sequence it holds was applied before and is acked again. One older
   than the window is applied if the inbox does not hold it (a collector restarted a few times
   leaves a lost envelope far behind; the inbox makes that exactly once all the same) and
   acked again if it does.
3. ``cloud.uplink.ingest.apply_batch`` applies the rest, every collector of the batch in one
   transaction; the advanced windows are written to the rows; the transaction commits.

Only then are acks and north messages sent (by the caller). A failure rolls everything back;
the caller retries envelope by envelope, so one poison envelope cannot hold the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.bridge import north, owners
from cloud.bridge.parts import Parts
from cloud.models import GATEWAY_LOCK, Gateway
from cloud.park import gateways
from cloud.uplink import ingest
from shared.codec import envelope
from shared.codec.errors import ReplayError

log = logging.getLogger("gridvend.bridge")

# Uplink messages after which commands should go out at once rather than at the next poll.
WAKE_COMMANDS = ("result", "hello", "need_purchase")


@dataclass
class Outcome:
    """What one transaction did: acks to send, north messages, collectors gained, envelopes
    left to their live owner."""

    acks: dict[str, list[int]] = field(default_factory=dict)
    outgoing: list[north.NorthMessage] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)
    owned: list[str] = field(default_factory=list)
    elsewhere: list[ingest.Uplink] = field(default_factory=list)
    windows: dict[str, envelope.ReplayWindow] = field(default_factory=dict)
    too_old_applied: int = 0
    # Envelopes applied before (a QoS 1 copy, a resend after a lost ack): acked again only.
    replayed: list[tuple[str, int]] = field(default_factory=list)

    def merge(self, other: Outcome) -> None:
        for gw, seqs in other.acks.items():
            self.acks.setdefault(gw, []).extend(seqs)
        self.outgoing.extend(other.outgoing)
        self.claimed.extend(other.claimed)
        self.owned.extend(other.owned)
        self.elsewhere.extend(other.elsewhere)
        self.windows.update(other.windows)
        self.too_old_applied += other.too_old_applied
        self.replayed.extend(other.replayed)


class Applier:
    """Applies batches for one bridge (``membership``); see the module docstring."""

    def __init__(self, parts: Parts, membership: owners.Membership) -> None:
        self.parts = parts
        self.membership = membership

    def apply(self, uplinks: list[ingest.Uplink]) -> Outcome:
        """All of ``uplinks`` in one transaction, else each alone (see the module docstring)."""
        try:
            return self._transaction(uplinks)
        except Exception:
            log.exception("batch of %d envelopes failed; applying one by one", len(uplinks))
        out = Outcome()
        for up in uplinks:
            try:
                out.merge(self._transaction([up]))
            except Exception:
                self.parts.stats.apply_failed += 1
                log.exception("envelope %s/%d not applied", up.gateway_id, up.seq)
        return out

    def _transaction(self, uplinks: list[ingest.Uplink]) -> Outcome:
        p = self.parts
        now = int(p.clock())
        by_gateway: dict[str, list[ingest.Uplink]] = {}
        for up in uplinks:
            by_gateway.setdefault(up.gateway_id, []).append(up)
        out = Outcome()
        p.feed.begin()
        with p.db.session() as s:
            rows = self._claim(s, by_gateway, out)
            todo = [u for gw in out.owned for u in self._sort(rows[gw], by_gateway[gw], out)]
            results = self._apply_owned(s, rows, todo, out, now)
        p.feed.committed()
        for result in results:
            p.stats.applied += len(result.applied)
            p.stats.duplicates += len(result.duplicates)
            p.stats.readings += result.readings
            p.stats.quarantined += result.quarantined
        if any(
            isinstance(m, dict) and m.get("t") in WAKE_COMMANDS for up in todo for m in up.messages
        ):
            p.commands_due = True  # a lane may be free, or a collector waits for a credit
        return out

    def _claim(
        self, s: Session, by_gateway: dict[str, list[ingest.Uplink]], out: Outcome
    ) -> dict[str, Gateway]:
        """Lock the batch's collector rows in id order and claim each (module docstring, 1)."""
        now_ms = owners.db_now_ms(s)
        rows = {
            row.id: row
            for row in s.scalars(
                select(Gateway)
                .where(Gateway.id.in_(sorted(by_gateway)))
                .order_by(Gateway.id)
                .with_for_update(**GATEWAY_LOCK)
            )
        }
        verdicts = owners.claim_all(s, rows.values(), self.membership, now_ms)
        for gw in sorted(by_gateway):
            verdict = verdicts.get(gw)
            if verdict is None:  # removed from the inventory since the envelope was opened
                continue
            if verdict == owners.OTHER:
                out.elsewhere.extend(by_gateway[gw])
                continue
            if verdict == owners.CLAIMED:
                out.claimed.append(gw)
            out.owned.append(gw)
        return rows

    def _apply_owned(
        self,
        s: Session,
        rows: dict[str, Gateway],
        todo: list[ingest.Uplink],
        out: Outcome,
        now: int,
    ) -> list[ingest.ApplyResult]:
        """Apply what the owned collectors sent and store their windows (docstring, 3)."""
        p = self.parts
        result = ingest.apply_batch(s, todo, now=now, locked=rows)  # locked by _claim
        for gw in out.owned:
            row = rows[gw]
            row.up_window = out.windows[gw].to_dict()
            if p.heard.get(gw) == "uplink" and not row.online:
                gateways.set_status(s, gw, True, now=now)
            part = result.parts.get(gw)
            if part is not None and p.settings.publish_north:
                out.outgoing.extend(p.feed.notices(gw, part.notices, now))
        for g, seqs in result.acks.items():
            out.acks.setdefault(g, []).extend(seqs)
        out.replayed.extend(result.duplicates)
        if p.settings.publish_north:
            out.outgoing.extend(p.feed.states(s, now))
        return [result]

    def _sort(self, row: Gateway, ups: list[ingest.Uplink], out: Outcome) -> list[ingest.Uplink]:
        """A collector's envelopes to apply, in sequence order, judged by the committed window;
        the re-acks go straight into ``out.acks``."""
        window = (
            envelope.ReplayWindow.from_dict(row.up_window)
            if row.up_window
            else envelope.ReplayWindow()
        )
        todo: list[ingest.Uplink] = []
        seen: set[int] = set()
        for up in sorted(ups, key=lambda u: u.seq):
            if up.seq in seen:
                continue  # two copies in one batch: applied (or acked) once
            seen.add(up.seq)
            if window.seen_seq(up.seq):
                out.acks.setdefault(row.id, []).append(up.seq)
                out.replayed.append((row.id, up.seq))
                self.parts.stats.reacked += 1
                continue
            try:
                window.check(up.seq)
            except ReplayError:
                # Older than the window: the inbox decides (applied now, or acked again).
                out.too_old_applied += 1
                todo.append(up)
                continue
            window.accept(up.seq)
            todo.append(up)
        out.windows[row.id] = window
        return todo
