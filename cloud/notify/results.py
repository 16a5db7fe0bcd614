"""What a channel said about a message, written to the outbox.

- ``progress``: one segment of a long message has its reference (written before the next
  segment goes, so a crash resends only the segments without one);
- ``sent``: the channel took the whole message (``delivered`` at once for a webhook);
- ``failed_attempt``: a ``ChannelError``. ``Rejected`` moves the message to the next channel of
  the route (or fails it when there is none); ``ChannelDown`` moves it at once, or waits with
  back-off when no other channel is up; ``RetryLater`` retries with back-off, and after
  ``fallback_after`` failures on one channel moves to the next. ``max_attempts`` in all, and it
  has failed;
- ``report``: a delivery report, matched on the channel and the reference (the newest message
  with it: a modem's reference wraps at 256), and on the recipient when the report names one.
  A message is delivered when every segment is; one failed segment fails it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, String, bindparam, case, func, insert, select, update
from sqlalchemy.orm import Session

from cloud.models import OutboxMessage, OutboxRef
from cloud.models.base import table_of
from cloud.notify import lifecycle as lc
from cloud.notify.channels.base import DeliveryReport, Receipt
from cloud.notify.errors import ChannelDown, ChannelError, Rejected
from cloud.notify.outbox import Policy, _finish, digits

REPORT_WINDOW_S = 3 * 86400


def _ref(session: Session, row: OutboxMessage, seq: int, ref: str, now: int) -> None:
    session.add(
        OutboxRef(message_id=row.id, channel=row.channel or "", ref=ref, seq=seq,
                  recipient=row.recipient, created_ts=now)
    )  # fmt: skip


def progress(
    session: Session, message_id: int, seq: int, ref: str, concat_ref: int | None, now: int
) -> None:
    row = session.get(OutboxMessage, message_id)
    if row is None or row.state != lc.SENDING:
        return
    done = dict(row.done_parts or {})
    done[str(seq)] = ref
    row.done_parts, row.concat_ref, row.updated_ts = done, concat_ref, now
    _ref(session, row, seq, ref, now)


def sent(session: Session, message_id: int, receipt: Receipt, now: int) -> None:
    sent_batch(session, [(message_id, receipt, now)])


def sent_batch(session: Session, items: Sequence[tuple[int, Receipt, int]]) -> None:
    """Record receipts, many at once (the notifier's group commit): Core statements, two
    round trips for the lot, since this is the hot path of a busy channel."""
    if not items:
        return
    t, r = table_of(OutboxMessage), table_of(OutboxRef)
    rows = {
        row.id: row
        for row in session.execute(
            select(t.c.id, t.c.channel, t.c.recipient, t.c.done_parts).where(
                t.c.id.in_([i for i, _, _ in items]), t.c.state == lc.SENDING
            )
        )
    }
    updates, refs = [], []
    for message_id, receipt, now in items:
        row = rows.get(message_id)
        if row is None:
            continue
        done = dict(row.done_parts or {})
        for seq, ref in enumerate(receipt.refs or (receipt.provider_id,), 1):
            if str(seq) not in done:
                refs.append({"message_id": message_id, "channel": row.channel or "", "ref": ref,
                             "seq": seq, "recipient": row.recipient, "created_ts": now})  # fmt: skip
            done[str(seq)] = ref
        updates.append({
            "b_id": message_id,
            "b_state": lc.DELIVERED if receipt.delivered else lc.SENT,
            "b_provider": receipt.provider_id[:200],
            "b_parts": receipt.parts,
            "b_done": done,
            "b_concat": receipt.concat_ref,
            "b_now": now,
            "b_delivered": now if receipt.delivered else None,
        })  # fmt: skip
    if refs:
        session.execute(insert(r), refs)
    if updates:
        session.execute(
            update(t)
            .where(t.c.id == bindparam("b_id"), t.c.state == lc.SENDING)
            .values(
                state=bindparam("b_state"),
                attempts=t.c.attempts + 1,
                provider_id=bindparam("b_provider"),
                parts=bindparam("b_parts"),
                done_parts=bindparam("b_done", type_=t.c.done_parts.type),
                concat_ref=func.coalesce(bindparam("b_concat", type_=BigInteger), t.c.concat_ref),
                sent_ts=bindparam("b_now"),
                delivered_ts=bindparam("b_delivered", type_=BigInteger),
                updated_ts=bindparam("b_now"),
                error=None,
            )
            .execution_options(synchronize_session=False),
            updates,
        )


def failed_attempt(
    session: Session, message_id: int, error: ChannelError, policy: Policy, now: int
) -> str:
    """Record a failed attempt; returns the message's new state."""
    row = session.get(OutboxMessage, message_id)
    if row is None or row.state != lc.SENDING:
        return row.state if row is not None else ""
    row.attempts += 1
    row.channel_attempts += 1
    row.uncertain = row.uncertain or error.uncertain
    text = f"{row.channel}: {error}"
    if error.partial:
        row.done_parts = {str(k): v for k, v in error.partial.items()}
        row.concat_ref = error.concat_ref
    if row.attempts >= policy.max_attempts:
        _finish(row, lc.FAILED, f"{text} (gave up after {row.attempts} attempts)", now)
        return row.state
    move = isinstance(error, Rejected | ChannelDown) or (
        row.channel_attempts >= policy.fallback_after
    )
    target = policy.after(row.channel) if move else None
    if target is not None:
        _finish(row, lc.QUEUED, f"{text}; trying {target}", now)
        row.channel, row.channel_attempts, row.next_attempt_ts = target, 0, now
        row.done_parts = row.concat_ref = None  # another channel sends the whole text
        return row.state
    if isinstance(error, Rejected):
        _finish(row, lc.FAILED, text, now)
        return row.state
    _finish(row, lc.QUEUED, text, now)
    row.next_attempt_ts = now + policy.backoff_s(row.channel_attempts)
    return row.state


def report(session: Session, item: DeliveryReport, now: int) -> int | None:
    """Apply a delivery report; the message's id, or None when no message has that reference."""
    return report_batch(session, [(item, now)])[0]


def report_batch(session: Session, items: Sequence[tuple[DeliveryReport, int]]) -> list[int | None]:
    """Apply delivery reports, many at once; per report the message's id (None: unknown)."""
    if not items:
        return []
    r = table_of(OutboxRef)
    oldest = min(now for _, now in items) - REPORT_WINDOW_S
    candidates: dict[tuple[str, str], list[Any]] = {}
    for row in session.execute(
        select(r.c.id, r.c.message_id, r.c.channel, r.c.ref, r.c.recipient)
        .where(
            r.c.channel.in_({i.channel for i, _ in items}),
            r.c.ref.in_({i.ref for i, _ in items}),
            r.c.created_ts >= oldest,
        )
        .order_by(r.c.id.desc())
    ):
        candidates.setdefault((row.channel, row.ref), []).append(row)
    out: list[int | None] = []
    ref_updates, touched, stamp = [], set(), {}
    for item, now in items:
        wanted = digits(item.recipient) if item.recipient else ""
        match = next(
            (c for c in candidates.get((item.channel, item.ref), [])
             if not wanted or digits(c.recipient) == wanted),
            None,
        )  # fmt: skip
        out.append(match.message_id if match is not None else None)
        if match is None:
            continue
        ref_updates.append({"b_id": match.id, "b_outcome": item.outcome,
                            "b_status": item.status[:32], "b_now": now})  # fmt: skip
        touched.add(match.message_id)
        stamp[match.message_id] = (now, item.status)
    if ref_updates:
        session.execute(
            update(r)
            .where(r.c.id == bindparam("b_id"))
            .values(outcome=bindparam("b_outcome"), status=bindparam("b_status"),
                    report_ts=bindparam("b_now"))
            .execution_options(synchronize_session=False),
            ref_updates,
        )  # fmt: skip
        _settle_reported(session, touched, stamp)
    return out


def _settle_reported(session: Session, ids: set[int], stamp: dict[int, tuple[int, str]]) -> None:
    """A message is delivered when every segment's newest reference is; failed when one is."""
    t, r = table_of(OutboxMessage), table_of(OutboxRef)
    latest: dict[int, dict[int, tuple[int, str | None]]] = {}
    for ref in session.execute(
        select(r.c.id, r.c.message_id, r.c.seq, r.c.outcome).where(r.c.message_id.in_(ids))
    ):
        seqs = latest.setdefault(ref.message_id, {})
        if ref.seq not in seqs or ref.id > seqs[ref.seq][0]:  # a segment sent twice: the newest
            seqs[ref.seq] = (ref.id, ref.outcome)
    changes = []
    for row in session.execute(
        select(t.c.id, t.c.parts).where(t.c.id.in_(ids), t.c.state == lc.SENT)
    ):
        outcomes = [o for _, o in latest.get(row.id, {}).values()]
        now, status = stamp[row.id]
        if "failed" in outcomes:
            changes.append({"b_id": row.id, "b_state": lc.FAILED, "b_now": now, "b_delivered": None,
                            "b_error": f"delivery failed: status {status}"})  # fmt: skip
        elif len(outcomes) >= row.parts and all(o == "delivered" for o in outcomes):
            changes.append({"b_id": row.id, "b_state": lc.DELIVERED, "b_now": now,
                            "b_delivered": now, "b_error": None})  # fmt: skip
    if changes:
        session.execute(
            update(t)
            .where(t.c.id == bindparam("b_id"), t.c.state == lc.SENT)
            .values(
                state=bindparam("b_state"),
                updated_ts=bindparam("b_now"),
                delivered_ts=bindparam("b_delivered", type_=BigInteger),
                finished_ts=case((bindparam("b_state") == lc.FAILED, bindparam("b_now")),
                                 else_=t.c.finished_ts),
                error=bindparam("b_error", type_=String),
            )
            .execution_options(synchronize_session=False),
            changes,
        )  # fmt: skip
