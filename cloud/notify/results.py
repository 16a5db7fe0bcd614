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

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.models import OutboxMessage, OutboxRef
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
    row = session.get(OutboxMessage, message_id)
    if row is None or row.state != lc.SENDING:
        return
    known = {int(k) for k in (row.done_parts or {})}
    refs = receipt.refs or (receipt.provider_id,)
    done = dict(row.done_parts or {})
    for seq, ref in enumerate(refs, 1):
        if seq not in known:
            _ref(session, row, seq, ref, now)
        done[str(seq)] = ref
    state = lc.DELIVERED if receipt.delivered else lc.SENT
    _finish(row, state, None, now)
    row.attempts += 1
    row.provider_id, row.parts, row.done_parts = receipt.provider_id[:200], receipt.parts, done
    row.concat_ref = receipt.concat_ref if receipt.concat_ref is not None else row.concat_ref
    row.sent_ts, row.error = now, None
    if receipt.delivered:
        row.delivered_ts = now


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
    q = (
        select(OutboxRef)
        .where(
            OutboxRef.channel == item.channel,
            OutboxRef.ref == item.ref,
            OutboxRef.created_ts >= now - REPORT_WINDOW_S,
        )
        .order_by(OutboxRef.id.desc())
    )
    wanted = digits(item.recipient) if item.recipient else ""
    ref = next(
        (r for r in session.scalars(q.limit(20)) if not wanted or digits(r.recipient) == wanted),
        None,
    )
    if ref is None:
        return None
    ref.outcome, ref.status, ref.report_ts = item.outcome, item.status[:32], now
    row = session.get(OutboxMessage, ref.message_id)
    if row is None or row.state not in (lc.SENT, lc.SENDING):
        return ref.message_id
    refs = list(session.scalars(select(OutboxRef).where(OutboxRef.message_id == row.id)))
    latest: dict[int, OutboxRef] = {}
    for r in refs:  # a segment sent twice: its newest reference counts
        if r.seq not in latest or r.id > latest[r.seq].id:
            latest[r.seq] = r
    outcomes = [r.outcome for r in latest.values()]
    if any(o == "failed" for o in outcomes):
        if row.state == lc.SENT:
            _finish(row, lc.FAILED, f"delivery failed: status {item.status}", now)
    elif (
        row.state == lc.SENT
        and len(latest) >= row.parts
        and all(o == "delivered" for o in outcomes)
    ):
        _finish(row, lc.DELIVERED, None, now)
        row.delivered_ts = now
    return row.id
