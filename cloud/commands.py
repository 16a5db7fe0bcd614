"""Commands to collectors: issuing them (one meter, a batch, a money movement), the lifecycle
(B03) and the send queue the bridge drains.

Lifecycle, as a table (``LIFECYCLE``)::

    pending ──sent──► sent ──applied──► applied ──verified──► verified
       │                │ ▲                (a later reading of the meter; for a relay mode,
       │                │ └─held (credit waiting for a missing purchase number)
       └──applied/rejected (a result may overtake mark_sent) ──► applied | rejected

A repeated result with the same outcome changes nothing; a result contradicting an earlier one
raises ``IllegalTransition`` (the ingest quarantines it and raises an alarm).

Order (``next_to_send``): commands travel in *lanes*, one per meter plus one per collector for
collector-wide commands. A lane sends nothing new while one of its commands is out without a
result, so a retry can never overtake a later command (trip then restore stays in that order).
Pending commands of a free lane go out together, in id order, and belong in one envelope.
A ``held`` credit does not block its lane (the missing purchase it waits for must pass).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cloud import queries
from cloud.audit import Actor, record
from cloud.errors import InvalidError, NotFoundError
from cloud.models import Command, CommandBatch, Gateway, Meter, Tariff, TariffVersion, now_ts
from shared.codec import messages
from shared.codec.errors import CodecError

PENDING, SENT, APPLIED, REJECTED, VERIFIED = "pending", "sent", "applied", "rejected", "verified"
OPEN_STATUSES = (PENDING, SENT)

LIFECYCLE: dict[tuple[str, str], str] = {
    (PENDING, "sent"): SENT,
    (SENT, "sent"): SENT,
    (PENDING, "applied"): APPLIED,
    (SENT, "applied"): APPLIED,
    (PENDING, "rejected"): REJECTED,
    (SENT, "rejected"): REJECTED,
    (PENDING, "held"): SENT,
    (SENT, "held"): SENT,
    (APPLIED, "verified"): VERIFIED,
    # repeats and races that change nothing
    (APPLIED, "applied"): APPLIED,
    (VERIFIED, "applied"): VERIFIED,
    (REJECTED, "rejected"): REJECTED,
    (APPLIED, "sent"): APPLIED,
    (VERIFIED, "sent"): VERIFIED,
    (REJECTED, "sent"): REJECTED,
    (APPLIED, "held"): APPLIED,
    (VERIFIED, "held"): VERIFIED,
}


class IllegalTransition(ValueError):
    """A lifecycle event the command's status does not allow (e.g. rejected after applied)."""


def transition(command: Command, event: str) -> str:
    """Move ``command`` through the lifecycle table; returns the new status."""
    new = LIFECYCLE.get((command.status, event))
    if new is None:
        raise IllegalTransition(
            f"command {command.id} ({command.op}) is {command.status}; cannot take {event!r}"
        )
    command.status = new
    return new


# The office's command names (API ``POST /meters/{id}/commands``) → the wire op and args.
# ``close`` lifts a trip: back to prepaid mode, so the relay closes when the balance allows
# (``keep_power`` forces it closed whatever the balance).
MODE_ACTIONS = {
    "trip": "forced_off",
    "close": "prepaid",
    "keep_power": "keep_power",
    "restore_prepaid": "prepaid",
}
ACTIONS = (
    *MODE_ACTIONS,
    "dispatch_tariff",
    "dispatch_settings",
    "read_now",
    "clear_overload",
    "resolve_anomaly",
)
# Actions a plain metering instrument (no relay, no wallet) cannot take.
PREPAID_ONLY = (*MODE_ACTIONS, "dispatch_tariff", "dispatch_settings", "clear_overload")
# Meter columns mirrored from settings of the same name.
SETTING_COLUMNS = (
    "tariff_id",
    "price_override_micro_yuan_per_kwh",
    "alarm1_micro_yuan",
    "alarm2_micro_yuan",
    "hoarding_cap_micro_yuan",
    "overload_power_w",
)
DEFAULT_RETRY_AFTER_S = 30


def _pending_row(
    *,
    gateway_id: str,
    meter_id: str | None,
    op: str,
    args: dict[str, Any] | None = None,
    action: str | None = None,
    ref: tuple[str, int] | None = None,
    batch_id: int | None = None,
    actor: Actor | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """The columns of one new pending command, validated against docs/protocol.md."""
    args = dict(args or {})
    probe = {"t": "cmd", "id": 1, "meter": meter_id, "op": op, "args": args}
    if op == "time":
        probe["args"] = {"utc": 0, **args}
    try:
        messages.validate_down(probe)
    except (CodecError, ValueError) as exc:
        raise InvalidError(f"cannot send this command: {exc}", field="op") from None
    return {
        "gateway_id": gateway_id,
        "meter_id": meter_id,
        "op": op,
        "action": action or op,
        "args": args,
        "status": PENDING,
        "ref_kind": ref[0] if ref else None,
        "ref_id": ref[1] if ref else None,
        "batch_id": batch_id,
        "operator_id": actor.operator_id if actor else None,
        "created_ts": now if now is not None else now_ts(),
    }


def enqueue(session: Session, **fields: Any) -> Command:
    """Add one pending command (validated against docs/protocol.md) and flush it for its id.
    Keywords: ``gateway_id``, ``meter_id``, ``op``, ``args``, ``action`` (default: ``op``),
    ``ref`` (``(kind, id)`` of a money record), ``batch_id``, ``actor``, ``now``."""
    command = Command(**_pending_row(**fields))
    session.add(command)
    session.flush()
    return command


_INSERT = insert(Command.__table__).returning(Command.__table__.c.id)


def enqueue_id(session: Session, **fields: Any) -> int:
    """``enqueue`` for hot paths (a sale): the same row through one Core ``INSERT … RETURNING``
    on the session's transaction, without an ORM instance or a flush; returns its id."""
    return int(session.connection().execute(_INSERT, _pending_row(**fields)).scalar_one())


def _tariff_versions(session: Session, tariff_id: Any, now: int) -> list[TariffVersion]:
    if not isinstance(tariff_id, str) or session.get(Tariff, tariff_id) is None:
        raise InvalidError(f"tariff {tariff_id!r} does not exist", field="args.tariff_id")
    versions = list(
        session.scalars(
            select(TariffVersion)
            .where(TariffVersion.tariff_id == tariff_id)
            .order_by(TariffVersion.effective_from_ts)
        )
    )
    if not versions:
        raise InvalidError(
            f"tariff {tariff_id!r} has no versions; add one before dispatching it",
            field="args.tariff_id",
        )
    # The version in force now and every later one: the edge rates from each one's instant.
    in_force = [v for v in versions if v.effective_from_ts <= now]
    start = in_force[-1].effective_from_ts if in_force else versions[0].effective_from_ts
    return [v for v in versions if v.effective_from_ts >= start]


def tariff_args(version: TariffVersion) -> dict[str, Any]:
    """The ``tariff`` command's args for one stored version."""
    body = dict(version.body)
    body["version"] = version.version
    body["effective_from"] = version.effective_from_ts
    return {"tariff_id": version.tariff_id, "version": body}


def validate_settings(args: Any) -> dict[str, Any]:
    """Check a partial settings dict with the engine's own rules (unknown keys named)."""
    from edge.core import settings as engine_settings
    from edge.core.errors import EngineError

    if not isinstance(args, dict) or not args:
        raise InvalidError("dispatch_settings needs args: a non-empty settings object", "args")
    try:
        engine_settings.validate(args, "args", allow_null_removal=True)
    except EngineError as exc:
        raise InvalidError(str(exc), field="args") from None
    return dict(args)


def _check_action(meter: Meter, action: str, args: dict[str, Any]) -> None:
    if action not in ACTIONS:
        raise InvalidError(f"unknown command {action!r}; use one of {', '.join(ACTIONS)}", "op")
    if action in PREPAID_ONLY and not meter.prepaid:
        raise InvalidError(
            f"meter {meter.id} is a plain metering instrument: it takes only read_now", "op"
        )
    if action == "resolve_anomaly" and args.get("action") not in ("bill", "rebase"):
        raise InvalidError("resolve_anomaly needs args.action: 'bill' or 'rebase'", "args.action")


def issue(
    session: Session,
    meters: list[Meter],
    action: str,
    args: dict[str, Any] | None,
    actor: Actor,
    *,
    batch_id: int | None = None,
    now: int | None = None,
) -> list[Command]:
    """Issue an office command (``ACTIONS``) to each meter. ``dispatch_tariff`` sends the tariff
    versions once per collector, then the ``tariff_id`` setting to each meter."""
    stamp = now if now is not None else now_ts()
    args = dict(args or {})
    for meter in meters:
        _check_action(meter, action, args)
    created: list[Command] = []
    if action == "dispatch_tariff":
        versions = _tariff_versions(session, args.get("tariff_id"), stamp)
        for gateway_id in sorted({m.gateway_id for m in meters}):
            for version in versions:
                created.append(
                    enqueue(
                        session,
                        gateway_id=gateway_id,
                        meter_id=None,
                        op="tariff",
                        args=tariff_args(version),
                        action=action,
                        batch_id=batch_id,
                        actor=actor,
                        now=stamp,
                    )
                )
        args = {"tariff_id": args["tariff_id"]}
    if action in ("dispatch_settings", "dispatch_tariff"):
        args = validate_settings(args)
    for meter in meters:
        before = {"mode": meter.mode, "settings": dict(meter.settings or {})}
        if action in MODE_ACTIONS:
            op, wire_args = "mode", {"mode": MODE_ACTIONS[action]}
        elif action in ("dispatch_settings", "dispatch_tariff"):
            op, wire_args = "settings", args
            merged = dict(meter.settings or {})
            merged.update(args)
            meter.settings = merged
            for name in SETTING_COLUMNS:
                if name in args:
                    setattr(meter, name, args[name])
        elif action == "resolve_anomaly":
            op, wire_args = action, {"action": args["action"]}
        else:
            op, wire_args = action, {}
        command = enqueue(
            session,
            gateway_id=meter.gateway_id,
            meter_id=meter.id,
            op=op,
            args=wire_args,
            action=action,
            batch_id=batch_id,
            actor=actor,
            now=stamp,
        )
        created.append(command)
        record(
            session,
            actor,
            f"command.{action}",
            "meter",
            meter.id,
            before=before,
            after={"command": command.id, "op": op, "args": wire_args},
            now=stamp,
        )
    return created


def batch(
    session: Session,
    action: str,
    args: dict[str, Any] | None,
    selection: dict[str, Any],
    actor: Actor,
    *,
    now: int | None = None,
) -> tuple[CommandBatch, list[Command]]:
    """A batch operation (F18): one command per selected meter (plus tariff versions)."""
    stamp = now if now is not None else now_ts()
    meters = queries.select_meters(session, selection)
    if not meters:
        raise InvalidError("the selection matches no meter", "meters")
    if action in PREPAID_ONLY:
        meters = [m for m in meters if m.prepaid] if selection.get("all") else meters
    group = CommandBatch(
        op=action, args=dict(args or {}), selection=selection, operator_id=actor.operator_id
    )
    group.created_ts = stamp
    session.add(group)
    session.flush()
    created = issue(session, meters, action, args, actor, batch_id=group.id, now=stamp)
    group.count = len(created)
    return group, created


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


def get(session: Session, command_id: int) -> Command:
    command = session.get(Command, command_id)
    if command is None:
        raise NotFoundError(f"command {command_id} does not exist")
    return command


def to_dict(command: Command) -> dict[str, Any]:
    """The API shape of a command and its lifecycle."""
    return {
        "id": command.id,
        "gateway": command.gateway_id,
        "meter": command.meter_id,
        "action": command.action,
        "op": command.op,
        "args": command.args,
        "status": command.status,
        "ref": {"kind": command.ref_kind, "id": command.ref_id} if command.ref_kind else None,
        "batch_id": command.batch_id,
        "created_ts": command.created_ts,
        "sent_ts": command.sent_ts,
        "last_sent_ts": command.last_sent_ts,
        "send_count": command.send_count,
        "result_ts": command.result_ts,
        "result_status": command.result_status,
        "result_reason": command.result_reason,
        "result_balance_micro_yuan": command.result_balance_micro_yuan,
        "verified_ts": command.verified_ts,
    }


def gateway_exists(session: Session, gateway_id: str) -> Gateway:
    gw = session.get(Gateway, gateway_id)
    if gw is None:
        raise NotFoundError(f"collector {gateway_id!r} does not exist")
    return gw
