"""计量仪表能耗 (F32): plain metering instruments (not prepaid: read, never vended or tripped),
one row per circuit: the counter at the start of the period and at its end, the difference,
the charges the collector reported (none for a meter nobody pays through), and the latest
remote reading (time, counter, power, voltages, currents).

The start reading is the counter at the end of the day before the period: the last reading
before it, else that day's rollup (the readings may be archived, F03), else the first reading
of the period (a meter installed during it). The end reading is the last counter up to the end
of the period, from the readings or the rollups, whichever is later. Difference = end − start.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.access.scope import EVERYTHING, Scope
from cloud.localtime import day_bounds, site_zone
from cloud.models import Building, DailyRollup, Floor, Meter, Reading, Unit
from cloud.reporting import filters


def _reading_before(session: Session, meter_id: str, ts: int) -> tuple[int, int] | None:
    found = session.execute(
        select(Reading.ts, Reading.energy_wh)
        .where(Reading.meter_id == meter_id, Reading.ts < ts, Reading.energy_wh.is_not(None))
        .order_by(Reading.ts.desc(), Reading.id.desc())
        .limit(1)
    ).first()
    if found is None or found[1] is None:
        return None
    return int(found[0]), int(found[1])


def _rollup_upto(
    session: Session, meter_id: str, last_day: dt.date, zone: dt.tzinfo
) -> tuple[int, int] | None:
    found = session.scalars(
        select(DailyRollup)
        .where(
            DailyRollup.meter_id == meter_id,
            DailyRollup.day <= last_day,
            DailyRollup.last_energy_wh.is_not(None),
        )
        .order_by(DailyRollup.day.desc())
        .limit(1)
    ).first()
    if found is None or found.last_energy_wh is None:
        return None
    when = found.last_reading_ts or day_bounds(found.day, zone)[1] - 1
    return when, found.last_energy_wh


def _later(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a[0] >= b[0] else b


def _first_in(
    session: Session, meter_id: str, rng: filters.Range, zone: dt.tzinfo
) -> tuple[int, int] | None:
    t0, _ = day_bounds(rng.start, zone)
    _, t1 = day_bounds(rng.end, zone)
    found = session.execute(
        select(Reading.ts, Reading.energy_wh)
        .where(
            Reading.meter_id == meter_id,
            Reading.ts >= t0,
            Reading.ts < t1,
            Reading.energy_wh.is_not(None),
        )
        .order_by(Reading.ts, Reading.id)
        .limit(1)
    ).first()
    if found is not None and found[1] is not None:
        return int(found[0]), int(found[1])
    rolled = session.scalars(
        select(DailyRollup)
        .where(
            DailyRollup.meter_id == meter_id,
            DailyRollup.day >= rng.start,
            DailyRollup.day <= rng.end,
            DailyRollup.first_energy_wh.is_not(None),
        )
        .order_by(DailyRollup.day)
        .limit(1)
    ).first()
    if rolled is None or rolled.first_energy_wh is None:
        return None
    return day_bounds(rolled.day, zone)[0], rolled.first_energy_wh


def _charges(
    session: Session,
    meter_id: str,
    rolled: tuple[int, dt.date] | None,
    t0: int,
    t1: int,
    zone: dt.tzinfo,
) -> int:
    """The charges reported in ``[t0, t1)``: the rollups, then the raw readings after the last
    day rolled up (today, or days the archive job has not reached)."""
    total, since = 0, t0
    if rolled is not None:
        total = rolled[0]
        since = max(t0, day_bounds(rolled[1], zone)[1])
    live = session.scalar(
        select(func.coalesce(func.sum(Reading.charge_micro_yuan), 0)).where(
            Reading.meter_id == meter_id, Reading.ts >= since, Reading.ts < t1
        )
    )
    return total + int(live or 0)


def _latest(session: Session, meter_id: str) -> dict[str, Any] | None:
    r = session.scalars(
        select(Reading)
        .where(Reading.meter_id == meter_id)
        .order_by(Reading.ts.desc(), Reading.id.desc())
        .limit(1)
    ).first()
    if r is None:
        return None
    return {
        "ts": r.ts,
        "energy_wh": r.energy_wh,
        "power_w": r.power_w,
        "voltages_dv": r.voltages_dv,
        "currents_ma": r.currents_ma,
    }


def report(
    session: Session,
    rng: filters.Range,
    *,
    site_id: str | None = None,
    scope: Scope = EVERYTHING,
    where: filters.Place | None = None,
    include_prepaid: bool = False,
) -> dict[str, Any]:
    """The instrument report over local dates ``rng`` (see the module doc)."""
    filters.date_range(rng.start, rng.end)
    site, zone = site_zone(session, site_id)
    t0, _ = day_bounds(rng.start, zone)
    _, t1 = day_bounds(rng.end, zone)
    ids = filters.meter_ids(scope, site, where)
    stmt = (
        select(Meter, Unit.number, Building.name)
        .outerjoin(Unit, Meter.unit_id == Unit.id)
        .outerjoin(Floor, Unit.floor_id == Floor.id)
        .outerjoin(Building, Floor.building_id == Building.id)
        .where(Meter.id.in_(ids))
        .order_by(Meter.id)
    )
    if not include_prepaid:
        stmt = stmt.where(Meter.prepaid.is_(False))
    rolled = {
        meter_id: (int(total or 0), last)
        for meter_id, total, last in session.execute(
            select(
                DailyRollup.meter_id,
                func.sum(DailyRollup.charge_micro_yuan),
                func.max(DailyRollup.day),
            )
            .where(
                DailyRollup.meter_id.in_(ids),
                DailyRollup.day >= rng.start,
                DailyRollup.day <= rng.end,
            )
            .group_by(DailyRollup.meter_id)
        )
    }
    rows = []
    totals = {"energy_wh": 0, "charge_micro_yuan": 0}
    for meter, unit, building in session.execute(stmt):
        start = _later(
            _reading_before(session, meter.id, t0),
            _rollup_upto(session, meter.id, rng.start - dt.timedelta(days=1), zone),
        ) or _first_in(session, meter.id, rng, zone)
        end = _later(
            _reading_before(session, meter.id, t1),
            _rollup_upto(session, meter.id, rng.end, zone),
        )
        if end is not None and end[0] < t0:
            end = None  # nothing read during the period
        diff = end[1] - start[1] if start is not None and end is not None else None
        charge = _charges(session, meter.id, rolled.get(meter.id), t0, t1, zone)
        rows.append(
            {
                "meter": meter.id,
                "name": meter.name,
                "unit": unit or "",
                "building": building or "",
                "gateway": meter.gateway_id,
                "address": meter.address,
                "prepaid": meter.prepaid,
                "ct_ratio": meter.ct_ratio,
                "start_ts": start[0] if start else None,
                "start_wh": start[1] if start else None,
                "end_ts": end[0] if end else None,
                "end_wh": end[1] if end else None,
                "energy_wh": diff,
                "charge_micro_yuan": charge,
                "latest": _latest(session, meter.id),
            }
        )
        totals["energy_wh"] += diff or 0
        totals["charge_micro_yuan"] += charge
    return {
        "site": site,
        "from": rng.start.isoformat(),
        "to": rng.end.isoformat(),
        "rows": rows,
        "totals": totals,
    }
