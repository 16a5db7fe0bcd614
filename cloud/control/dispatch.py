"""The send queue the bridge drains: which commands go to a collector now, cut into envelopes.

Order (``next_to_send``): commands travel in *lanes*, one per meter plus one per collector for
collector-wide commands. A lane sends nothing new while one of its commands is out without a
result, so a retry can never overtake a later command (trip then restore stays in that order).
Pending commands of a free lane go out together, in id order, and belong in one envelope.
A ``held`` credit does not block its lane (the missing purchase it waits for must pass).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from cloud.control.commands import enqueue
from cloud.control.lifecycle import LIFECYCLE, OPEN_STATUSES, SENT, transition
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
    return next_to_send_many(
        session, [gateway_id], limit, now=now, retry_after_s=retry_after_s
    ).get(gateway_id, [])


def next_to_send_many(
    session: Session,
    gateway_ids: list[str],
    limit: int = 100,
    *,
    now: int | None = None,
    retry_after_s: int = DEFAULT_RETRY_AFTER_S,
) -> dict[str, list[dict[str, Any]]]:
    """``next_to_send`` for many collectors in one query: ``{gateway: messages}``, only the
    collectors with something to send, at most ``limit`` messages each."""
    stamp = now if now is not None else now_ts()
    out: dict[str, list[dict[str, Any]]] = {}
    if not gateway_ids:
        return out
    rows = session.scalars(
        select(Command)
        .where(Command.gateway_id.in_(sorted(set(gateway_ids))), Command.status.in_(OPEN_STATUSES))
        .order_by(Command.gateway_id, Command.id)
    )
    blocked: set[str] = set()  # lanes; a collector-wide lane names its collector
    for command in rows:
        msgs = out.setdefault(command.gateway_id, [])
        if len(msgs) >= limit:
            continue
        lane = _lane(command)
        if lane in blocked:
            continue
        if command.status == SENT:
            if command.result_status == "held":
                continue  # waits for the missing purchase; must not block it
            if (command.last_sent_ts or 0) > stamp - retry_after_s:
                blocked.add(lane)  # out, not yet due for a retry: nothing after it goes
                continue
        msgs.append(to_message(command, stamp))
    return {gw: msgs for gw, msgs in out.items() if msgs}


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
    """Record that these commands were published (first send or a retry), in one statement,
    through the lifecycle table (a result that overtook the send keeps its status)."""
    ids = sorted(set(command_ids))
    if not ids:
        return
    stamp = now if now is not None else now_ts()
    moves = {old: new for (old, ev), new in LIFECYCLE.items() if ev == "sent"}
    done = session.execute(
        update(Command)
        .where(Command.id.in_(ids), Command.status.in_(list(moves)))
        .values(
            status=case(moves, value=Command.status),
            sent_ts=func.coalesce(Command.sent_ts, stamp),
            last_sent_ts=stamp,
            send_count=Command.send_count + 1,
        )
        .returning(Command.id)
        .execution_options(synchronize_session="fetch")
    ).scalars()
    missing = set(ids) - set(done)
    if missing:
        command = session.get(Command, min(missing))
        if command is not None:
            transition(command, "sent")  # raises IllegalTransition, naming it


def due_again(session: Session, gateway_id: str) -> int:
    """The collector says it is online: its commands still out without a final result are
    due at once, not at their retry time (sent while it was away, they may have been dropped
    with its broker session). A ``held`` credit stays as it is (it waits for a purchase, not
    for the link). Returns how many."""
    return due_again_many(session, [gateway_id])


def due_again_many(session: Session, gateway_ids: list[str]) -> int:
    """``due_again`` for many collectors, in one statement."""
    ids = sorted(set(gateway_ids))
    if not ids:
        return 0
    done = session.execute(
        update(Command)
        .where(
            Command.gateway_id.in_(ids),
            Command.status == SENT,
            or_(Command.result_status.is_(None), Command.result_status != "held"),
        )
        .values(last_sent_ts=None)
        .returning(Command.id)
        .execution_options(synchronize_session="fetch")
    ).scalars()
    return len(list(done))


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
