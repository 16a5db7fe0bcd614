"""Several bridges on one database: who is alive, and which bridge owns which collector.

Theory of operation
-------------------
Every ``gridvend cloud bridge`` process is a *member* (``bridge_members``): a row it writes when
it starts and beats every ``beat_s`` while its broker link is up, with the database's clock
(never the bridges' own, which may disagree). A member whose beat is older than
``timeout_ms`` is dead.

Each collector has one *owner* at a time, on its ``gateways`` row: the member that applies its
uplink envelopes, acks them, numbers its downlink envelopes and sends its commands. Ownership is
taken (:func:`claim_all`) only inside the transaction that is about to act for the collector, after
that row is locked (``cloud.models.GATEWAY_LOCK``: FOR NO KEY UPDATE): a free collector, one
already ours, or one whose owner is dead. A transaction that finds a live other owner does
nothing for that collector. So two bridges never act for one collector at once, whatever the
broker delivers to whom: a bridge that was paused and wakes up finds the row taken and stops;
one that dies mid-transaction leaves the row as it was (the transaction rolls back), and the next owner carries on from what
was committed. Every change of owner bumps ``owner_epoch``; a bridge that (re)gains a collector
starts a fresh downlink block, so its numbers follow the previous owner's.

A member is also dead from the moment the broker says its connection is gone: each bridge's
last will is a retained ``offline`` on its notice topic (``gridvend/v1/bridge/{client id}``),
which the broker publishes as soon as it sees the connection die (a SIGKILL closes the socket at
once). The other bridges hear it (:meth:`Membership.presume_gone`) and take the collectors over
without waiting out ``timeout_ms``. This is only a faster way to learn what the timeout would
say; it cannot make two owners: a claim is still made under the row lock, and a member that was
in fact alive (a moment without the broker) beats again, which makes it alive again, and hands
off whatever was taken meanwhile.

Which collectors a member *tries* to own is a preference, not a correctness matter:
:meth:`Membership.prefers` spreads collectors over the live members by rendezvous hashing of
the client ids (the highest ``hash(client id, collector)`` wins), so each member prefers about
``1/N`` of them, and when a member comes or goes only the collectors it held or gets move. A
member gives up (:meth:`Membership.release`) collectors it owns but no longer prefers, between
batches, so the preferred one can take them without waiting for it to die.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from cloud.db import Database
from cloud.models import BridgeMember, Gateway

DEFAULT_TIMEOUT_MS = 6_000
FORGET_AFTER_MS = 3_600_000  # member rows of bridges gone this long are deleted

MINE, CLAIMED, OTHER = "mine", "claimed", "other"
JOBS_KEY = "gridvend:jobs"  # not a collector id (":" is not allowed in one)


def db_now_ms(session: Session) -> int:
    """The database server's clock in epoch milliseconds (one clock for every bridge)."""
    if session.get_bind().dialect.name == "postgresql":
        sql = "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    else:
        sql = "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    return int(session.execute(text(sql)).scalar_one())


def _weight(client_id: str, gateway: str) -> bytes:
    return hashlib.blake2b(f"{client_id}\0{gateway}".encode(), digest_size=8).digest()


def preferred_member(client_ids: Iterable[str], gateway: str) -> str | None:
    """Rendezvous hashing: the client id with the highest weight for ``gateway``."""
    best: tuple[bytes, str] | None = None
    for cid in client_ids:
        w = (_weight(cid, gateway), cid)
        if best is None or w > best:
            best = w
    return best[1] if best else None


def claim_all(
    session: Session, rows: Iterable[Gateway], member: Membership, now_ms: int
) -> dict[str, str]:
    """Own each locked collector row that is free, ours, or whose owner is dead
    (:meth:`Membership.alive`), the other owners' beats read in one query: ``{gateway: MINE
    (already ours) | CLAIMED (ours from now: epoch bumped) | OTHER}``."""
    member_id = member.id
    locked = list(rows)
    others = {r.owner for r in locked if r.owner is not None and r.owner != member_id}
    beats: dict[str, int] = {}
    if others:
        query = select(BridgeMember.id, BridgeMember.heartbeat_ms).where(
            BridgeMember.id.in_(sorted(others))
        )
        beats = {row.id: row.heartbeat_ms for row in session.execute(query)}
    out: dict[str, str] = {}
    for gw in locked:
        if gw.owner == member_id:
            out[gw.id] = MINE
            continue
        owner = gw.owner
        beat = beats.get(owner) if owner is not None else None
        if owner is not None and beat is not None and member.alive(owner, beat, now_ms):
            out[gw.id] = OTHER
            continue
        gw.owner = member_id
        gw.owner_epoch = (gw.owner_epoch or 0) + 1
        gw.owner_ms = now_ms
        out[gw.id] = CLAIMED
    return out


class Membership:
    """This bridge as a member (see the module docstring)."""

    def __init__(self, db: Database, client_id: str, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
        self.db = db
        self.client_id = client_id
        self.timeout_ms = timeout_ms
        host = socket.gethostname()
        self.id = f"{client_id}@{host}/{os.getpid()}-{secrets.token_hex(3)}"[:128]
        self.host = host[:200]
        self.live: list[str] = [client_id]  # client ids of the live members, sorted
        self.joined = False
        # Members the broker said were gone (presume_gone): member id -> the database's clock
        # then. Dead until they beat after that moment, or until the timeout makes them dead.
        self._gone: dict[str, int] = {}

    def alive(self, member_id: str, beat_ms: int, now_ms: int) -> bool:
        """Whether a member whose last beat was at ``beat_ms`` is alive at ``now_ms``: it beat
        within ``timeout_ms``, and not only before the broker said it was gone. (A dead
        process's last beat was written before it died, so before its will reached us.)"""
        if now_ms - beat_ms >= self.timeout_ms:
            return False
        gone = self._gone.get(member_id)
        return gone is None or beat_ms > gone

    def presume_gone(self, *client_ids: str) -> list[str]:
        """The broker published these bridges' wills (``offline``): their live members, never
        this one, count as dead from now (see the module docstring). Their ids. One query
        however many (a bridge that connects hears every retained ``offline`` at once)."""
        with self.db.session(readonly=True) as s:
            now = db_now_ms(s)
            ids = list(
                s.scalars(
                    select(BridgeMember.id).where(
                        BridgeMember.client_id.in_(client_ids),
                        BridgeMember.id != self.id,
                        BridgeMember.heartbeat_ms >= now - self.timeout_ms,
                    )
                )
            )
        for member_id in ids:
            self._gone[member_id] = now
        return ids

    def beat(self) -> bool:
        """Record that we are alive (joining on the first beat) and read who else is.
        True when the set of live members changed."""
        with self.db.session() as s:
            now = db_now_ms(s)
            me = s.get(BridgeMember, self.id)
            if me is None:  # the first beat, or deleted as long dead (paused an hour): join
                s.add(
                    BridgeMember(
                        id=self.id,
                        client_id=self.client_id,
                        host=self.host,
                        started_ms=now,
                        heartbeat_ms=now,
                    )
                )
            else:
                me.heartbeat_ms = now
            self.joined = True
            s.execute(delete(BridgeMember).where(BridgeMember.heartbeat_ms < now - FORGET_AFTER_MS))
            rows = s.execute(
                select(BridgeMember.id, BridgeMember.client_id, BridgeMember.heartbeat_ms).where(
                    BridgeMember.heartbeat_ms >= now - self.timeout_ms
                )
            ).all()
            live = sorted(
                {r.client_id for r in rows if self.alive(r.id, r.heartbeat_ms, now)}
                | {self.client_id}
            )
        # Past the timeout a presumed-gone member is dead by its beat alone.
        self._gone = {m: t for m, t in self._gone.items() if now - t < self.timeout_ms}
        changed = live != self.live
        self.live = live
        return changed

    def twin(self, wait_s: float) -> str | None:
        """A live member with our client id other than us (a second bridge started with the
        same id, or the one we replace, not yet timed out): waits up to ``wait_s`` for it to
        go quiet, then names it, or returns None. One whose process is gone from this host (a
        crash, restarted by systemd or by hand) is not waited for, and counts as dead."""
        deadline = time.monotonic() + wait_s
        while True:
            with self.db.session(readonly=True) as s:
                now = db_now_ms(s)
                others = s.scalars(
                    select(BridgeMember.id).where(
                        BridgeMember.client_id == self.client_id,
                        BridgeMember.id != self.id,
                        BridgeMember.heartbeat_ms >= now - self.timeout_ms,
                    )
                ).all()
            other = None
            for member_id in others:
                if self._exited_here(member_id):  # a crashed process restarted on this host
                    self._gone[member_id] = now
                else:
                    other = member_id
            if other is None or time.monotonic() >= deadline:
                return other
            time.sleep(min(1.0, self.timeout_ms / 4000))

    def _exited_here(self, member_id: str) -> bool:
        """Whether ``member_id`` names a process of this host that no longer exists (its id is
        ``client id@host/pid-token``). Anything else, or a pid that exists (perhaps reused),
        is not known to be dead."""
        _, at, rest = member_id.rpartition("@")
        host, slash, tail = rest.partition("/")
        pid_text, dash, _token = tail.partition("-")
        if not (at and slash and dash) or host != self.host or not pid_text.isdigit():
            return False
        pid = int(pid_text)
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return True
        except OSError:  # it exists, someone else's
            pass
        return False

    def prefers(self, gateway: str) -> bool:
        """Whether this member should own ``gateway`` among the live members."""
        return preferred_member(self.live, gateway) == self.client_id

    def leads(self) -> bool:
        """Whether this member runs the park-wide jobs (lost contact, archival): one of the
        live members, chosen as a collector would be."""
        return preferred_member(self.live, JOBS_KEY) == self.client_id

    def release(self, gateways: Iterable[str]) -> int:
        """Give up these collectors if we own them (between batches); how many were ours."""
        ids = sorted(set(gateways))
        if not ids:
            return 0
        with self.db.session() as s:
            done = s.execute(
                update(Gateway)
                .where(Gateway.id.in_(ids), Gateway.owner == self.id)
                .values(owner=None)
                .returning(Gateway.id)
            ).all()
        return len(done)

    def leave(self) -> None:
        """Shutdown: free every collector we own and remove our member row."""
        with self.db.session() as s:
            s.execute(update(Gateway).where(Gateway.owner == self.id).values(owner=None))
            s.execute(delete(BridgeMember).where(BridgeMember.id == self.id))

    def owned(self) -> set[str]:
        """The collectors this member owns now (start-up bookkeeping, tests)."""
        with self.db.session(readonly=True) as s:
            return set(s.scalars(select(Gateway.id).where(Gateway.owner == self.id)))


def describe(db: Database) -> dict[str, Any]:
    """Members and how many collectors each owns (for ``bridge status`` and tests)."""
    with db.session(readonly=True) as s:
        now = db_now_ms(s)
        members = s.execute(select(BridgeMember)).scalars().all()
        out: dict[str, Any] = {}
        for m in members:
            owned = s.scalar(
                select(text("count(*)")).select_from(Gateway).where(Gateway.owner == m.id)
            )
            out[m.id] = {
                "client_id": m.client_id,
                "alive": now - m.heartbeat_ms < DEFAULT_TIMEOUT_MS,
                "collectors": int(owned or 0),
            }
        return out
