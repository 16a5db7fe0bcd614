"""Alarms (F25, F33): raised and cleared from edge events, from the cloud's own checks (charge
gaps, ledger mismatches) and from lost-contact evaluation (F29, F30, F44).

At most one active alarm per (kind, meter) or (kind, collector): raising an active one again
only refreshes its detail. Clearing moves it to history (``active`` false, ``cleared_ts``).

Event → alarm table (docs/protocol.md event kinds):

=================  ======================================================================
event kind         effect
=================  ======================================================================
alarm1/alarm2      raise that credit level; clear the other credit levels (one at a time)
arrears            raise ``arrears``; clear ``alarm1``/``alarm2``
alarm_clear        clear every credit level
lost_contact       raise ``lost_contact`` (the bus lost the meter); meter marked lost
contact_restored   clear ``lost_contact``; meter no longer lost
overload,          raise; cleared by the command that resolves it (``clear_overload``,
jump_held,         ``resolve_anomaly``, ``time``, ``settings`` e.g. a tariff id) once
clock_drift,       applied, or by an operator
unrated
anomaly_resolved   clear ``jump_held``
relay_fault,       raise; cleared by an operator (``POST /api/v1/alarms/{id}/clear``)
counter_reset,
counter_wrap,
clock_back,
command_failed
trip, close        no alarm (recorded as events)
anything else      no alarm (the event is kept: the engine may grow kinds, protocol.md)
=================  ======================================================================
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.errors import InvalidError
from cloud.models import Alarm, Gateway, Meter, SiteDefaults, now_ts
from cloud.values import check_line

CREDIT_LEVELS = ("alarm1", "alarm2", "arrears")

# kind -> (alarm to raise or None, alarms to clear)
EVENT_ALARMS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "alarm1": ("alarm1", ("alarm2", "arrears")),
    "alarm2": ("alarm2", ("alarm1", "arrears")),
    "arrears": ("arrears", ("alarm1", "alarm2")),
    "alarm_clear": (None, CREDIT_LEVELS),
    "lost_contact": ("lost_contact", ()),
    "contact_restored": (None, ("lost_contact",)),
    "overload": ("overload", ()),
    "jump_held": ("jump_held", ()),
    "clock_drift": ("clock_drift", ()),
    "relay_fault": ("relay_fault", ()),
    "counter_reset": ("counter_reset", ()),
    "counter_wrap": ("counter_wrap", ()),
    "command_failed": ("command_failed", ()),
    "clock_back": ("clock_back", ()),
    "unrated": ("unrated", ()),
    "anomaly_resolved": (None, ("jump_held",)),
    "trip": (None, ()),
    "close": (None, ()),
}

# An applied command of this op clears these alarms on its meter (or collector).
COMMAND_CLEARS: dict[str, tuple[str, ...]] = {
    "clear_overload": ("overload",),
    "resolve_anomaly": ("jump_held",),
    "time": ("clock_drift",),
    "settings": ("unrated",),
}

# Cloud-side alarm kinds (not from edge events).
CHARGE_GAP = "charge_gap"
LEDGER_MISMATCH = "ledger_mismatch"
GATEWAY_LOST = "gateway_lost_contact"
UNKNOWN_METER = "unknown_meter"
RESULT_CONFLICT = "result_conflict"
DUPLICATE_RESULT = "duplicate_result"
PURCHASE_MISSING = "purchase_missing"


def _active_query(kind: str, meter_id: str | None, gateway_id: str | None) -> Any:
    q = select(Alarm).where(Alarm.active.is_(True), Alarm.kind == kind)
    if meter_id is not None:
        return q.where(Alarm.meter_id == meter_id)
    return q.where(Alarm.meter_id.is_(None), Alarm.gateway_id == gateway_id)


def raise_alarm(
    session: Session,
    kind: str,
    *,
    meter_id: str | None = None,
    gateway_id: str | None = None,
    detail: dict[str, Any] | None = None,
    now: int | None = None,
) -> tuple[Alarm, bool]:
    """Raise ``kind`` on a meter (or a collector when ``meter_id`` is None). Returns the alarm
    and whether it is new (an active one is kept, its detail refreshed)."""
    existing = session.scalars(_active_query(kind, meter_id, gateway_id).limit(1)).first()
    if existing is not None:
        if detail is not None:
            existing.detail = detail
        return existing, False
    alarm = Alarm(
        kind=kind,
        meter_id=meter_id,
        gateway_id=gateway_id,
        detail=detail,
        active=True,
        raised_ts=now if now is not None else now_ts(),
    )
    session.add(alarm)
    return alarm, True


def clear_alarms(
    session: Session,
    kinds: tuple[str, ...] | list[str],
    *,
    meter_id: str | None = None,
    gateway_id: str | None = None,
    by: str,
    now: int | None = None,
) -> list[Alarm]:
    """Clear the active alarms of ``kinds`` on a meter (or collector); returns those cleared."""
    if not kinds:
        return []
    q = select(Alarm).where(Alarm.active.is_(True), Alarm.kind.in_(list(kinds)))
    if meter_id is not None:
        q = q.where(Alarm.meter_id == meter_id)
    else:
        q = q.where(Alarm.meter_id.is_(None), Alarm.gateway_id == gateway_id)
    cleared = list(session.scalars(q))
    stamp = now if now is not None else now_ts()
    for alarm in cleared:
        alarm.active = False
        alarm.cleared_ts = stamp
        alarm.cleared_by = by
    return cleared


def apply_event(
    session: Session,
    kind: str,
    *,
    meter: Meter | None,
    gateway_id: str,
    detail: Any,
    event_ts: int,
    now: int,
) -> list[tuple[Alarm, str]]:
    """Raise/clear alarms for one edge event (the table above). Returns ``(alarm, "raised" |
    "cleared")`` pairs, flushed (ids set)."""
    raise_kind, clear_kinds = EVENT_ALARMS.get(kind, (None, ()))
    meter_id = meter.id if meter is not None else None
    changed: list[tuple[Alarm, str]] = [
        (alarm, "cleared")
        for alarm in clear_alarms(
            session,
            clear_kinds,
            meter_id=meter_id,
            gateway_id=gateway_id,
            by=f"event:{kind}",
            now=now,
        )
    ]
    if raise_kind is not None:
        info = {"event_ts": event_ts, "detail": detail}
        alarm, new = raise_alarm(
            session, raise_kind, meter_id=meter_id, gateway_id=gateway_id, detail=info, now=now
        )
        if new:
            changed.append((alarm, "raised"))
    if meter is not None and kind == "lost_contact":
        meter.lost_contact = True
    if meter is not None and kind == "contact_restored":
        meter.lost_contact = False
    if changed:
        session.flush()
    return changed


ACK_NOTE_MAX = 500


def acknowledge(
    session: Session, alarm: Alarm, note: str, actor: Actor, now: int | None = None
) -> Alarm:
    """An operator has handled (处理) ``alarm``: who, when and a note (required, one line, at
    most 500 characters) are kept, and the operation log records it. The alarm stays active
    until its cause clears (a lost meter stays lost until it is heard again); acknowledging
    again replaces the note."""
    text = check_line((note or "").strip(), "note", max_len=ACK_NOTE_MAX)
    if not text:
        raise InvalidError("note is required: say what was done about the alarm", "note")
    before = {"ack_ts": alarm.ack_ts, "ack_by": alarm.ack_by, "ack_note": alarm.ack_note}
    alarm.ack_ts = now if now is not None else now_ts()
    alarm.ack_by = actor.name[:64]
    alarm.ack_note = text
    after = {"ack_ts": alarm.ack_ts, "ack_by": alarm.ack_by, "ack_note": alarm.ack_note}
    record(
        session, actor, "alarm.acknowledge", "alarm", alarm.id, before, {**to_dict(alarm), **after}
    )
    return alarm


def notice(alarm: Alarm, what: str) -> dict[str, Any]:
    """The notice the bridge republishes north for an alarm raised or cleared."""
    return {"type": "alarm", "what": what, "alarm": to_dict(alarm)}


def to_dict(alarm: Alarm) -> dict[str, Any]:
    """The API/north shape of an alarm."""
    return {
        "id": alarm.id,
        "kind": alarm.kind,
        "meter": alarm.meter_id,
        "gateway": alarm.gateway_id,
        "active": alarm.active,
        "detail": alarm.detail,
        "raised_ts": alarm.raised_ts,
        "cleared_ts": alarm.cleared_ts,
        "cleared_by": alarm.cleared_by,
    }


def _defaults(session: Session) -> dict[str, SiteDefaults]:
    return {d.site_id: d for d in session.scalars(select(SiteDefaults))}


METER_LOST_AFTER_S = 900
GATEWAY_LOST_AFTER_S = 120


def evaluate_lost_contact(
    session: Session,
    now: int | None = None,
    meter_lost_after_s: int | None = None,
    gateway_lost_after_s: int | None = None,
) -> dict[str, list[str]]:
    """Mark meters with no reading, and collectors with no heartbeat, for longer than the site's
    thresholds (``SiteDefaults``; the arguments override them) as lost, raising alarms.
    Returns the ids newly lost: ``{"meters": [...], "gateways": [...]}``. Contact comes back
    with the next reading / heartbeat (``cloud.uplink.ingest``)."""
    stamp = now if now is not None else now_ts()
    defaults = _defaults(session)
    lost_meters: list[str] = []
    lost_gateways: list[str] = []
    gateways = {g.id: g for g in session.scalars(select(Gateway))}
    for gw in gateways.values():
        d = defaults.get(gw.site_id)
        limit = gateway_lost_after_s or (d.gateway_lost_after_s if d else GATEWAY_LOST_AFTER_S)
        seen = gw.last_heartbeat_ts if gw.last_heartbeat_ts is not None else gw.created_ts
        if not gw.lost_contact and stamp - seen > limit:
            gw.lost_contact = True
            gw.online = False
            raise_alarm(
                session,
                GATEWAY_LOST,
                gateway_id=gw.id,
                detail={"last_heartbeat_ts": gw.last_heartbeat_ts, "after_s": limit},
                now=stamp,
            )
            lost_gateways.append(gw.id)
    candidates = session.scalars(
        select(Meter).where(or_(Meter.lost_contact.is_(False), Meter.lost_contact.is_(None)))
    )
    for meter in candidates:
        gw = gateways[meter.gateway_id]
        d = defaults.get(gw.site_id)
        limit = meter_lost_after_s or (d.meter_lost_after_s if d else METER_LOST_AFTER_S)
        seen = meter.last_seen_ts if meter.last_seen_ts is not None else meter.created_ts
        if stamp - seen > limit:
            meter.lost_contact = True
            raise_alarm(
                session,
                "lost_contact",
                meter_id=meter.id,
                gateway_id=meter.gateway_id,
                detail={"source": "cloud", "last_seen_ts": meter.last_seen_ts, "after_s": limit},
                now=stamp,
            )
            lost_meters.append(meter.id)
    return {"meters": lost_meters, "gateways": lost_gateways}
