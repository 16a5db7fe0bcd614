"""实时报警 (F25) and 报警记录 (F33): alarms with the meter's unit, building and balance, in the
operator's scope; the live list is the active alarms, the history every alarm raised in a date
range, with who handled it (``cloud.monitoring.alarms.acknowledge``) and when it cleared.

An alarm of a meter is in scope when its meter is; a collector's alarm when the collector is
(``Scope.gateways``). Both lists are one statement (``statement``) so the page, its totals and
its export read the same rows; ``counts`` groups them by kind for the chart.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from cloud.access.scope import EVERYTHING, Scope
from cloud.localtime import day_bounds, site_zone
from cloud.models import Alarm, Building, Floor, Gateway, Meter, Unit
from cloud.reporting import filters

Rows = Select[*tuple[Any, ...]]  # a statement of several columns

STATES = ("", "open", "handled", "cleared")


def statement(
    session: Session,
    *,
    scope: Scope = EVERYTHING,
    site_id: str | None = None,
    active: bool | None = None,
    rng: filters.Range | None = None,
    kind: str = "",
    building: int | None = None,
    meter: str | None = None,
    state: str = "",
) -> Rows:
    """Alarms with (meter, unit number, building name, balance) beside each, filtered."""
    site, zone = site_zone(session, site_id)
    stmt: Rows = (
        select(
            Alarm,
            Unit.number.label("unit"),
            Building.name.label("building"),
            Meter.balance_micro_yuan.label("balance"),
        )
        .outerjoin(Meter, Alarm.meter_id == Meter.id)
        .outerjoin(Unit, Meter.unit_id == Unit.id)
        .outerjoin(Floor, Unit.floor_id == Floor.id)
        .outerjoin(Building, Floor.building_id == Building.id)
    )
    if not scope.everything or site is not None:
        meters = filters.meter_ids(scope, site)
        collectors = scope.gateways(select(Gateway.id))
        if site is not None:
            collectors = collectors.where(Gateway.site_id == site)
        stmt = stmt.where(
            or_(
                Alarm.meter_id.in_(meters),
                and_(Alarm.meter_id.is_(None), Alarm.gateway_id.in_(collectors)),
            )
        )
    if active is not None:
        stmt = stmt.where(Alarm.active.is_(active))
    if rng is not None:
        t0, _ = day_bounds(rng.start, zone)
        _, t1 = day_bounds(rng.end, zone)
        stmt = stmt.where(Alarm.raised_ts >= t0, Alarm.raised_ts < t1)
    if kind:
        stmt = stmt.where(Alarm.kind == kind[:32])
    if building is not None:
        stmt = stmt.where(Floor.building_id == building)
    if meter:
        stmt = stmt.where(Alarm.meter_id == meter)
    if state == "open":
        stmt = stmt.where(Alarm.active.is_(True), Alarm.ack_ts.is_(None))
    elif state == "handled":
        stmt = stmt.where(Alarm.ack_ts.is_not(None))
    elif state == "cleared":
        stmt = stmt.where(Alarm.active.is_(False))
    return stmt


ORDER = (Alarm.raised_ts.desc(), Alarm.id.desc())


def row(found: Any, now: int) -> dict[str, Any]:
    """One alarm as the pages and exports show it."""
    alarm: Alarm = found[0]
    return {
        "id": alarm.id,
        "kind": alarm.kind,
        "meter": alarm.meter_id or "",
        "gateway": alarm.gateway_id or "",
        "unit": found.unit or "",
        "building": found.building or "",
        "balance_micro_yuan": found.balance if alarm.meter_id else None,
        "raised_ts": alarm.raised_ts,
        "for_s": (alarm.cleared_ts or now) - alarm.raised_ts,
        "active": alarm.active,
        "cleared_ts": alarm.cleared_ts,
        "cleared_by": alarm.cleared_by or "",
        "ack_ts": alarm.ack_ts,
        "ack_by": alarm.ack_by or "",
        "ack_note": alarm.ack_note or "",
    }


def counts(session: Session, stmt: Rows) -> list[tuple[str, int]]:
    """(kind, number of alarms) over a statement's rows, most frequent first."""
    sub = stmt.order_by(None).subquery()
    return [
        (kind, int(n))
        for kind, n in session.execute(
            select(sub.c.kind, func.count()).group_by(sub.c.kind).order_by(func.count().desc())
        )
    ]


def in_scope(session: Session, scope: Scope, alarm: Alarm) -> bool:
    """Whether the operator may see (and handle) one alarm."""
    if scope.everything:
        return True
    if alarm.meter_id is not None:
        return bool(
            session.scalar(scope.meters(select(Meter.id).where(Meter.id == alarm.meter_id)))
        )
    return bool(
        session.scalar(scope.gateways(select(Gateway.id).where(Gateway.id == alarm.gateway_id)))
    )
