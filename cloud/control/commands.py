"""Issuing commands to collectors: one meter, a batch (F18), or the command that carries a
money movement. Each is validated against docs/protocol.md and the engine's own rules before it
is stored; the lifecycle is ``cloud.control.lifecycle``, the send queue ``cloud.control.dispatch``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.control import meter_settings
from cloud.control.lifecycle import PENDING
from cloud.errors import InvalidError, NotFoundError, RuleError
from cloud.models import Command, CommandBatch, Gateway, Meter, Tariff, TariffVersion, now_ts
from cloud.models.base import table_of
from cloud.park import queries
from cloud.values import check_id, check_note
from shared.codec import messages
from shared.codec.errors import CodecError

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


_COMMANDS = table_of(Command)
_INSERT = insert(_COMMANDS).returning(_COMMANDS.c.id)


def enqueue_id(session: Session, **fields: Any) -> int:
    """``enqueue`` for hot paths (a sale): the same row through one Core ``INSERT … RETURNING``
    on the session's transaction, without an ORM instance or a flush; returns its id."""
    return int(session.connection().execute(_INSERT, _pending_row(**fields)).scalar_one())


def enqueue_many(session: Session, commands: list[dict[str, Any]]) -> None:
    """``enqueue_id`` for many commands (each a dict of its keywords) in one multi-row
    ``INSERT`` on the session's transaction; their ids are not returned."""
    if commands:
        session.connection().execute(insert(_COMMANDS), [_pending_row(**f) for f in commands])


def _tariff_versions(session: Session, tariff_id: Any, now: int) -> list[TariffVersion]:
    if not isinstance(tariff_id, str) or session.get(Tariff, tariff_id) is None:
        raise NotFoundError(f"tariff {tariff_id!r} does not exist", field="args.tariff_id")
    versions = list(
        session.scalars(
            select(TariffVersion)
            .where(TariffVersion.tariff_id == tariff_id)
            .order_by(TariffVersion.effective_from_ts)
        )
    )
    if not versions:
        raise RuleError(
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
    """Check a partial settings dict: each value in its range, by the engine's own rules
    (unknown keys named). ``meter_settings.check_for_meter`` also checks the meter as a whole."""
    return meter_settings.check_partial(args, "args")


# The args each office command takes (any other is refused by name, never dropped).
ARGS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(MODE_ACTIONS, ()),
    "read_now": (),
    "clear_overload": (),
    "resolve_anomaly": ("action",),
    "dispatch_tariff": ("tariff_id",),
}


def check_args(action: str, args: Any) -> dict[str, Any]:
    """The args of an office command: an object with only the names ``action`` takes."""
    if action not in ACTIONS:
        raise InvalidError(f"unknown command {action!r}; use one of {', '.join(ACTIONS)}", "op")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise InvalidError("args must be an object", "args")
    if action == "dispatch_settings":
        return validate_settings(args)
    allowed = ARGS[action]
    for name in args:
        if name not in allowed:
            takes = ", ".join(allowed) if allowed else "no args"
            raise InvalidError(
                f"{action} does not take args.{name} (it takes {takes})", f"args.{name}"
            )
    if action == "resolve_anomaly" and args.get("action") not in ("bill", "rebase"):
        raise InvalidError("resolve_anomaly needs args.action: 'bill' or 'rebase'", "args.action")
    if action == "dispatch_tariff":
        check_id(args.get("tariff_id"), "args.tariff_id")
    return dict(args)


def _check_action(meter: Meter, action: str, args: dict[str, Any]) -> None:
    if action in PREPAID_ONLY and not meter.prepaid:
        raise RuleError(
            f"meter {meter.id} is a plain metering instrument: it takes only read_now", "op"
        )


def _wire(meter: Meter, action: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The wire op and args of an office command for one meter; a settings command also
    becomes the meter's desired settings."""
    if action in MODE_ACTIONS:
        return "mode", {"mode": MODE_ACTIONS[action]}
    if action in ("dispatch_settings", "dispatch_tariff"):
        merged = dict(meter.settings or {})
        merged.update(args)
        meter.settings = merged
        for name in SETTING_COLUMNS:
            if name in args:
                setattr(meter, name, args[name])
        return "settings", args
    if action == "resolve_anomaly":
        return action, {"action": args["action"]}
    return action, {}


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
    args = check_args(action, args)
    for meter in meters:
        _check_action(meter, action, args)
    created: list[Command] = []
    versions = (
        _tariff_versions(session, args.get("tariff_id"), stamp)
        if action == "dispatch_tariff"
        else []
    )
    if action in ("dispatch_settings", "dispatch_tariff"):
        # Checked for every meter before anything is stored or sent.
        wanted = {"tariff_id": args["tariff_id"]} if action == "dispatch_tariff" else args
        for meter in meters:
            args = meter_settings.check_for_meter(session, meter, wanted)
    for gateway_id in sorted({m.gateway_id for m in meters}) if versions else ():
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
    for meter in meters:
        before = {"mode": meter.mode, "settings": dict(meter.settings or {})}
        op, wire_args = _wire(meter, action, args)
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
    reason: str = "",
    now: int | None = None,
) -> tuple[CommandBatch, list[Command]]:
    """A batch operation (F18): one command per selected meter (plus tariff versions). The
    ``reason`` an operator gives (the office asks one for trips and closes) goes to the
    operation log with the batch."""
    stamp = now if now is not None else now_ts()
    reason = check_note(reason, "reason", 500)
    meters = queries.select_meters(session, selection)
    if not meters:
        raise NotFoundError("the selection matches no meter", "meters")
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
    record(session, actor, "command.batch", "command_batch", group.id,
           after={"op": action, "args": group.args, "meters": len(meters), "reason": reason},
           now=stamp)  # fmt: skip
    return group, created


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


def ping_gateway(
    session: Session, gateway_id: str, actor: Actor, *, now: int | None = None
) -> Command:
    """The office's 测试通讯: a round trip to a collector. It is a ``time`` command (harmless:
    the collector only compares clocks), so its result (applied, or still pending while the
    collector is unreachable) answers whether the collector hears the cloud."""
    gateway_exists(session, gateway_id)
    command = enqueue(
        session, gateway_id=gateway_id, meter_id=None, op="time", action="ping", now=now
    )
    command.operator_id = actor.operator_id
    record(session, actor, "gateway.ping", "gateway", gateway_id, after={"command": command.id})
    return command
