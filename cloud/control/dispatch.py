"""The send queue the bridge drains: which commands go to a collector now, cut into envelopes.

Order (``next_to_send``): commands travel in *lanes*, one per meter plus one per collector for
collector-wide commands. A lane sends nothing new while one of its commands is out without a
result, so a retry can never overtake a later command (trip then restore stays in that order).
Pending commands of a free lane go out together, in id order, and belong in one envelope.
A ``held`` credit does not block its lane (the missing purchase it waits for must pass).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.control.commands import enqueue
from cloud.control.lifecycle import OPEN_STATUSES, SENT, transition
from cloud.models import Command, now_ts
from shared.codec import messages

DEFAULT_RETRY_AFTER_S = 30


def _lane(command: Command) -> str:
    return command.meter_id if command.meter_id is not None else f"@{command.gateway_id}"


def next_to_send(
    session: Session,
    gateway_id: str,
    limit: int = 100,
    *,
    now: int | None = None,
    retry_after_s: int = DEFAULT_RETRY_AFTER_S,
) -> list[dict[str, Any]]:
    """The ``cmd`` messages to send to ``gateway_id`` now, in order (see the module docstring):
    new commands of free lanes, and commands out longer than ``retry_after_s`` without a
    result. Changes nothing; call ``mark_sent`` with their ids once published."""
    stamp = now if now is not None else now_ts()
    rows = session.scalars(
        select(Command)
        .where(Command.gateway_id == gateway_id, Command.status.in_(OPEN_STATUSES))
        .order_by(Command.id)
    )
    out: list[dict[str, Any]] = []
    blocked: set[str] = set()
    for command in rows:
        if len(out) >= limit:
            break
        lane = _lane(command)
        if lane in blocked:
            continue
        if command.status == SENT:
            if command.result_status == "held":
                continue  # waits for the missing purchase; must not block it
            if (command.last_sent_ts or 0) > stamp - retry_after_s:
                blocked.add(lane)  # out, not yet due for a retry: nothing after it goes
                continue
        out.append(to_message(command, stamp))
    return out


def envelopes(msgs: list[dict[str, Any]], per: int) -> list[list[dict[str, Any]]]:
    """``next_to_send``'s messages in order, cut into envelopes of about ``per`` commands, never
    inside a lane: a lane's commands must arrive together or not at all, else a lost envelope
    lets a later command of the lane run before an earlier one (whose resend comes after)."""
    last: dict[Any, int] = {}
    for i, msg in enumerate(msgs):
        last[msg["meter"]] = i  # one collector per call: its collector-wide lane is meter None
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    reach = -1  # the last index of any lane in the current envelope
    for i, msg in enumerate(msgs):
        if len(current) >= per and reach < i:
            out.append(current)
            current = []
        current.append(msg)
        reach = max(reach, last[msg["meter"]])
    if current:
        out.append(current)
    return out


def to_message(command: Command, now: int) -> dict[str, Any]:
    """The wire ``cmd`` message of a command (``time`` gets the clock at send time)."""
    args = dict(command.args or {})
    if command.op == "time":
        args["utc"] = now
    return messages.cmd(command.id, command.meter_id, command.op, args)


def mark_sent(session: Session, command_ids: list[int], *, now: int | None = None) -> None:
    """Record that these commands were published (first send or a retry)."""
    stamp = now if now is not None else now_ts()
    for command in session.scalars(select(Command).where(Command.id.in_(list(command_ids)))):
        transition(command, "sent")
        if command.sent_ts is None:
            command.sent_ts = stamp
        command.last_sent_ts = stamp
        command.send_count += 1


def due_again(session: Session, gateway_id: str) -> int:
    """The collector says it is online: its commands still out without a final result are
    due at once, not at their retry time (sent while it was away, they may have been dropped
    with its broker session). A ``held`` credit stays as it is (it waits for a purchase, not
    for the link). Returns how many."""
    rows = session.scalars(
        select(Command).where(Command.gateway_id == gateway_id, Command.status == SENT)
    )
    n = 0
    for command in rows:
        if command.result_status != "held":
            command.last_sent_ts = None
            n += 1
    return n


def enqueue_time(session: Session, gateway_id: str, now: int | None = None) -> Command | None:
    """Queue a ``time`` command (clock sync) unless one is already waiting."""
    waiting = session.scalars(
        select(Command.id).where(
            Command.gateway_id == gateway_id,
            Command.op == "time",
            Command.status.in_(OPEN_STATUSES),
        )
    ).first()
    if waiting is not None:
        return None
    return enqueue(session, gateway_id=gateway_id, meter_id=None, op="time", now=now)
