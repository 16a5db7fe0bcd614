"""The durable outbox: putting messages in, handing them to channels, and what the office does
with them. Plain functions over a ``Session``; the caller commits (the notifier per step, the
web per request).

A message goes in once per ``key`` (the event it tells of, and the number): ``enqueue`` of a key
already there does nothing, so a rescan, a resent uplink or a second notifier never texts twice.
``claim`` hands the due messages of one channel to the notifier, after the rules that hold a
message back: quiet hours (non-urgent kinds only, in the site's time zone), the per-number
limits (per hour and per day), and a message too old to be worth sending (``Kind.max_age_s``).
What the channel answers is recorded by ``cloud.notify.results``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.errors import InvalidError, NotFoundError
from cloud.localtime import zone
from cloud.models import OutboxMessage, Site, now_ts
from cloud.models.base import table_of
from cloud.notify import lifecycle as lc
from cloud.notify import templates

_PHONE = re.compile(r"^\+?[0-9]{5,20}$")
#: kinds that are limited elsewhere (the tenant site limits login codes itself)
RATE_EXEMPT = ("login_code",)
RATE_RECHECK_S = 300


@dataclass(frozen=True)
class Policy:
    """How messages are routed and held back (``[routing]``, ``[limits]``, ``[quiet_hours]`` of
    the notifier's settings, ``cloud.notify.config``)."""

    route: tuple[str, ...] = ()
    fallback_after: int = 3
    max_attempts: int = 10
    backoff_min_s: int = 10
    backoff_max_s: int = 600
    per_number_per_hour: int = 10
    per_number_per_day: int = 50
    quiet_start_min: int | None = 22 * 60
    quiet_end_min: int | None = 8 * 60
    down: frozenset[str] = field(default_factory=frozenset)

    def first_up(self) -> str | None:
        return next(
            (c for c in self.route if c not in self.down), self.route[0] if self.route else None
        )

    def after(self, channel: str | None) -> str | None:
        """The next channel in the route after ``channel`` that is not down."""
        rest = self.route[self.route.index(channel) + 1 :] if channel in self.route else ()
        return next((c for c in rest if c not in self.down), None)

    def backoff_s(self, attempts: int) -> int:
        return int(min(self.backoff_max_s, self.backoff_min_s * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class Claimed:
    """What a channel needs of a message, detached from the session."""

    id: int
    key: str
    kind: str
    to: str
    text: str
    params: dict[str, str]
    lang: str
    channel: str
    concat_ref: int | None
    done_parts: dict[int, str]


def check_phone(phone: str, field_name: str = "recipient") -> str:
    value = (phone or "").strip().replace(" ", "").replace("-", "")
    if not _PHONE.match(value):
        raise InvalidError(f"{phone!r} is not a phone number (digits, optional +)", field_name)
    return value


def digits(phone: str) -> str:
    """The number without + or the Chinese country code, for comparing two spellings."""
    d = re.sub(r"\D", "", phone or "")
    return d[2:] if len(d) == 13 and d.startswith("86") else d


def enqueue(
    session: Session,
    *,
    key: str,
    kind: str,
    recipient: str,
    params: Mapping[str, str],
    lang: str = "zh_CN",
    site_id: str | None = None,
    meter_id: str | None = None,
    customer_id: int | None = None,
    source_ts: int | None = None,
    now: int | None = None,
) -> int | None:
    """Queue a message; its id, or None when ``key`` was queued before (nothing changes)."""
    if kind not in templates.KINDS:
        raise InvalidError(f"unknown message kind {kind!r}", "kind")
    stamp = now if now is not None else now_ts()
    to = check_phone(recipient)
    values = {str(k): str(v) for k, v in params.items()}
    text = templates.render(session, kind, lang, site_id, values)
    row = {
        "key": key[:200],
        "kind": kind,
        "urgent": templates.KINDS[kind].urgent,
        "site_id": site_id,
        "meter_id": meter_id,
        "customer_id": customer_id,
        "recipient": to,
        "lang": lang if lang in templates.LANGS else "zh_CN",
        "text": text[:1000],
        "params": values,
        "state": lc.QUEUED,
        "source_ts": source_ts,
        "created_ts": stamp,
        "next_attempt_ts": stamp,
        "updated_ts": stamp,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(table_of(OutboxMessage)).values(**row).on_conflict_do_nothing(index_elements=["key"])
    )
    result = session.execute(stmt.returning(table_of(OutboxMessage).c.id))
    inserted = result.scalar()
    return int(inserted) if inserted is not None else None


def _quiet_until(policy: Policy, tz: dt.tzinfo, now: int) -> int | None:
    """End of the quiet hours ``now`` falls in (UTC epoch), or None outside them."""
    start, end = policy.quiet_start_min, policy.quiet_end_min
    if start is None or end is None or start == end:
        return None
    local = dt.datetime.fromtimestamp(now, tz)
    minute = local.hour * 60 + local.minute
    inside = (start <= minute or minute < end) if start > end else (start <= minute < end)
    if not inside:
        return None
    ends = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
    if ends <= local:
        ends += dt.timedelta(days=1)
    return int(ends.timestamp())


def _recent_counts(session: Session, numbers: Sequence[str], since: int) -> dict[str, int]:
    if not numbers:
        return {}
    when = func.coalesce(OutboxMessage.sent_ts, OutboxMessage.sending_ts)
    q = (
        select(OutboxMessage.recipient, func.count())
        .where(
            OutboxMessage.recipient.in_(list(numbers)),
            OutboxMessage.state.in_((lc.SENDING, lc.SENT, lc.DELIVERED)),
            when >= since,
            OutboxMessage.kind.not_in(RATE_EXEMPT),
        )
        .group_by(OutboxMessage.recipient)
    )
    return {r: int(n) for r, n in session.execute(q)}


def claim(session: Session, channel: str, policy: Policy, now: int, limit: int) -> list[Claimed]:
    """Move up to ``limit`` due messages of ``channel`` to ``sending`` and return them. A
    message with no channel yet goes to the first channel of the route that is up. Core
    statements (a busy channel claims every few dozen messages): one select, then one update
    for those claimed and one per kind of hold."""
    t = table_of(OutboxMessage)
    owned = t.c.channel == channel
    if channel == policy.first_up():
        owned = or_(owned, t.c.channel.is_(None))
    q = (
        select(t.c.id, t.c.key, t.c.kind, t.c.urgent, t.c.site_id, t.c.recipient, t.c.text,
               t.c.params, t.c.lang, t.c.concat_ref, t.c.done_parts, t.c.created_ts)
        .where(t.c.state == lc.QUEUED, t.c.next_attempt_ts <= now, owned)
        .order_by(t.c.urgent.desc(), t.c.next_attempt_ts, t.c.id)
        .limit(max(limit * 2, limit + 20))
    )  # fmt: skip
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    rows = session.execute(q).all()
    numbers = sorted({r.recipient for r in rows})
    hour = _recent_counts(session, numbers, now - 3600)
    day = _recent_counts(session, numbers, now - 86400)
    zones: dict[str | None, dt.tzinfo] = {}
    out: list[Claimed] = []
    expired: list[int] = []
    held: list[dict[str, Any]] = []
    for row in rows:
        if len(out) >= limit:
            break
        if now - row.created_ts > templates.KINDS[row.kind].max_age_s:
            expired.append(row.id)
            continue
        if not row.urgent:
            if row.site_id not in zones:
                site = session.get(Site, row.site_id) if row.site_id else None
                zones[row.site_id] = zone(site.timezone if site else "Asia/Shanghai")
            until = _quiet_until(policy, zones[row.site_id], now)
            if until is not None:
                held.append({"b_id": row.id, "b_next": until, "b_error": None})
                continue
        if row.kind not in RATE_EXEMPT:
            n = row.recipient
            if (
                hour.get(n, 0) >= policy.per_number_per_hour
                or day.get(n, 0) >= policy.per_number_per_day
            ):
                held.append({"b_id": row.id, "b_next": now + RATE_RECHECK_S,
                             "b_error": "held back: per-number limit reached"})  # fmt: skip
                continue
            hour[n], day[n] = hour.get(n, 0) + 1, day.get(n, 0) + 1
        out.append(
            Claimed(row.id, row.key, row.kind, row.recipient, row.text, dict(row.params or {}),
                    row.lang, channel, row.concat_ref,
                    {int(k): str(v) for k, v in (row.done_parts or {}).items()})
        )  # fmt: skip
    _write_claim(session, channel, now, [c.id for c in out], expired, held)
    return out


def _write_claim(
    session: Session,
    channel: str,
    now: int,
    claimed: list[int],
    expired: list[int],
    held: list[dict[str, Any]],
) -> None:
    t = table_of(OutboxMessage)
    queued = t.c.state == lc.QUEUED  # every move below is queued → sending | failed | queued
    if claimed:
        session.execute(
            update(t)
            .where(t.c.id.in_(claimed), queued)
            .values(state=lc.SENDING, channel=channel, sending_ts=now, updated_ts=now)
            .execution_options(synchronize_session=False)
        )
    if expired:
        session.execute(
            update(t)
            .where(t.c.id.in_(expired), queued)
            .values(state=lc.FAILED, finished_ts=now, updated_ts=now,
                    error="expired: too old to be worth sending")
            .execution_options(synchronize_session=False)
        )  # fmt: skip
    if held:
        session.execute(
            update(t)
            .where(t.c.id == bindparam("b_id"), queued)
            .values(next_attempt_ts=bindparam("b_next"), updated_ts=now,
                    error=func.coalesce(bindparam("b_error", type_=String), t.c.error))
            .execution_options(synchronize_session=False),
            held,
        )  # fmt: skip


def reroute(session: Session, channel: str, policy: Policy, now: int) -> int:
    """Move the queued messages of a channel that is down to the next one up in the route;
    how many moved."""
    target = policy.after(channel)
    if target is None:
        return 0
    moved = 0
    for row in session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.state == lc.QUEUED, OutboxMessage.channel == channel
        )
    ):
        row.channel, row.channel_attempts, row.done_parts, row.concat_ref = target, 0, None, None
        row.next_attempt_ts, row.updated_ts = min(row.next_attempt_ts, now), now
        row.error = f"{channel} is down; moved to {target}"
        moved += 1
    return moved


def _finish(row: OutboxMessage, state: str, error: str | None, now: int) -> None:
    lc.check(row.state, state)
    row.state, row.updated_ts = state, now
    if error is not None:
        row.error = error[:500]
    if state == lc.FAILED:
        row.finished_ts = now


def recover(session: Session, now: int) -> dict[str, int]:
    """After a crash (or kill -9): every ``sending`` message goes on. All its segments have a
    reference → ``sent``; otherwise back to ``queued``, keeping the references it has, so only
    the segments the channel never acknowledged are sent again."""
    out = {"sent": 0, "queued": 0}
    for row in session.scalars(select(OutboxMessage).where(OutboxMessage.state == lc.SENDING)):
        done = row.done_parts or {}
        if row.parts and len(done) >= row.parts:
            _finish(row, lc.SENT, None, now)
            row.sent_ts = row.sent_ts or now
            out["sent"] += 1
        else:
            _finish(row, lc.QUEUED, "interrupted while sending; sent again", now)
            row.next_attempt_ts = now
            out["queued"] += 1
    return out


def release(session: Session, ids: Sequence[int], now: int) -> int:
    """Give back messages claimed but never handed to a channel (a clean stop)."""
    n = 0
    q = select(OutboxMessage).where(
        OutboxMessage.id.in_(list(ids)), OutboxMessage.state == lc.SENDING
    )
    for row in session.scalars(q):
        _finish(row, lc.QUEUED, None, now)
        row.next_attempt_ts = now
        n += 1
    return n


def resend(
    session: Session, message_id: int, actor: Actor, now: int | None = None
) -> OutboxMessage:
    """An operator's resend: the message is queued again from the first channel, as new."""
    stamp = now if now is not None else now_ts()
    row = session.get(OutboxMessage, message_id)
    if row is None:
        raise NotFoundError(f"message {message_id} does not exist")
    before = {"state": row.state, "channel": row.channel, "error": row.error}
    _finish(row, lc.QUEUED, None, stamp)
    row.channel = row.provider_id = row.concat_ref = row.done_parts = None
    row.channel_attempts, row.parts, row.uncertain, row.error = 0, 0, False, None
    row.created_ts = row.next_attempt_ts = stamp  # a resend is not "too old"
    row.resends += 1
    record(session, actor, "notify.resend", "notify_outbox", row.id, before=before,
           after={"state": row.state}, now=stamp)  # fmt: skip
    return row


def to_dict(row: OutboxMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "key": row.key,
        "kind": row.kind,
        "urgent": row.urgent,
        "recipient": row.recipient,
        "lang": row.lang,
        "text": row.text,
        "state": row.state,
        "attempts": row.attempts,
        "channel": row.channel,
        "provider_id": row.provider_id,
        "parts": row.parts,
        "uncertain": row.uncertain,
        "error": row.error,
        "resends": row.resends,
        "site": row.site_id,
        "meter": row.meter_id,
        "customer": row.customer_id,
        "created_ts": row.created_ts,
        "next_attempt_ts": row.next_attempt_ts,
        "sent_ts": row.sent_ts,
        "delivered_ts": row.delivered_ts,
        "finished_ts": row.finished_ts,
    }
