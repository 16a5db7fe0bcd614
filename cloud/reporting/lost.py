"""失联表计 (F29) and 失联通讯管理机 (F30): what is out of contact now, since when (the alarm
raised when it was noticed), the last values the cloud holds, where it is, and counts per
building, within the operator's scope.

A meter is lost when its bus lost it or the cloud heard nothing of it for the site's
``meter_lost_after_s``; a collector when its heartbeat stopped for ``gateway_lost_after_s``
(``cloud.monitoring.alarms.evaluate_lost_contact``). A collector's buildings are where it is
placed, else the buildings of the meters it serves.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cloud.access.scope import EVERYTHING, Scope
from cloud.localtime import site_zone
from cloud.models import Alarm, Building, Floor, Gateway, Meter, Unit
from cloud.monitoring.alarms import GATEWAY_LOST
from cloud.reporting import filters

Rows = Select[*tuple[Any, ...]]  # a statement of several columns


def _place_of_meters() -> Rows:
    stmt: Rows = (
        select(Meter, Unit.number, Building.id, Building.name)
        .outerjoin(Unit, Meter.unit_id == Unit.id)
        .outerjoin(Floor, Unit.floor_id == Floor.id)
        .outerjoin(Building, Floor.building_id == Building.id)
    )
    return stmt


def _counts(items: list[dict[str, Any]], key: str = "building") -> list[dict[str, Any]]:
    counter = Counter(i[key] or "" for i in items)
    return [{"building": name, "count": n} for name, n in sorted(counter.items())]


def meters(
    session: Session,
    *,
    site_id: str | None = None,
    scope: Scope = EVERYTHING,
    building: int | None = None,
    now: int,
) -> dict[str, Any]:
    """Meters out of contact: id, name, unit, building, collector, address, last seen, since,
    for how long, balance, last counter and power."""
    site, _ = site_zone(session, site_id)
    where = filters.Place("building", building, "") if building is not None else None
    ids = filters.meter_ids(scope, site, where)
    since = dict(
        session.execute(
            select(Alarm.meter_id, func.min(Alarm.raised_ts))
            .where(Alarm.active.is_(True), Alarm.kind == "lost_contact")
            .group_by(Alarm.meter_id)
        ).all()
    )
    items = []
    for m, unit, _building_id, building_name in session.execute(
        _place_of_meters().where(Meter.lost_contact.is_(True), Meter.id.in_(ids)).order_by(Meter.id)
    ):
        seen = m.last_seen_ts
        items.append(
            {
                "id": m.id,
                "name": m.name,
                "unit": unit or "",
                "building": building_name or "",
                "gateway": m.gateway_id,
                "address": m.address,
                "last_seen_ts": seen,
                "since_ts": since.get(m.id),
                "lost_for_s": now - seen if seen is not None else None,
                "balance_micro_yuan": m.balance_micro_yuan,
                "energy_wh": m.energy_wh,
                "power_w": m.power_w,
                "prepaid": m.prepaid,
            }
        )
    return {"site": site, "items": items, "by_building": _counts(items), "total": len(items)}


def gateways(
    session: Session,
    *,
    site_id: str | None = None,
    scope: Scope = EVERYTHING,
    building: int | None = None,
    now: int,
) -> dict[str, Any]:
    """Collectors out of contact: id, name, last heartbeat, since, for how long, the meters
    they serve and their buildings."""
    site, _ = site_zone(session, site_id)
    stmt = scope.gateways(select(Gateway).where(Gateway.lost_contact.is_(True)))
    if site is not None:
        stmt = stmt.where(Gateway.site_id == site)
    found = list(session.scalars(stmt.order_by(Gateway.id)))
    ids = [g.id for g in found]
    since = dict(
        session.execute(
            select(Alarm.gateway_id, func.min(Alarm.raised_ts))
            .where(Alarm.active.is_(True), Alarm.kind == GATEWAY_LOST, Alarm.gateway_id.in_(ids))
            .group_by(Alarm.gateway_id)
        ).all()
    )
    served: dict[str, Counter[str]] = defaultdict(Counter)
    served_ids: dict[str, set[int]] = defaultdict(set)
    meter_counts: Counter[str] = Counter()
    for m, _unit, building_id, building_name in session.execute(
        _place_of_meters().where(Meter.gateway_id.in_(ids))
    ):
        meter_counts[m.gateway_id] += 1
        if building_id is not None:
            served[m.gateway_id][building_name] += 1
            served_ids[m.gateway_id].add(building_id)
    placed = {
        g.id: (b_id, b_name)
        for g, b_id, b_name in session.execute(
            select(Gateway, Building.id, Building.name)
            .join(Floor, Gateway.floor_id == Floor.id)
            .join(Building, Floor.building_id == Building.id)
            .where(Gateway.id.in_(ids))
        )
    }
    items = []
    for g in found:
        if g.id in placed:
            names, building_ids = [placed[g.id][1]], {placed[g.id][0]}
        else:
            names, building_ids = sorted(served[g.id]), served_ids[g.id]
        if building is not None and building not in building_ids:
            continue
        seen = g.last_heartbeat_ts
        items.append(
            {
                "id": g.id,
                "name": g.name,
                "site": g.site_id,
                "building": " / ".join(names),
                "last_heartbeat_ts": seen,
                "since_ts": since.get(g.id),
                "lost_for_s": now - seen if seen is not None else None,
                "meters": meter_counts[g.id],
            }
        )
    return {"site": site, "items": items, "by_building": _counts(items), "total": len(items)}
