"""Reports (F26–F31): sales per day / month / year, energy by date range and place, lost
contact. Days, months and years are the site's local ones (its time zone).

Sales report rules: a sale counts on the day it was made unless the collector rejected it
(``pending`` ones are counted and also shown apart: the money was taken at the counter); refunds
and reversals count on the day the collector confirmed them (only then was money paid back).

Energy report: per local day, from the daily rollups (``cloud.reporting.archive``) where they exist, and
computed from the raw readings for days not rolled up yet (today). Energy is counter-based
(last − previous day's last); money figures come from the charges the edge reported and are
exact.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import InvalidError, NotFoundError, RuleError
from cloud.localtime import site_zone, today
from cloud.models import (
    Alarm,
    Building,
    DailyRollup,
    Floor,
    Gateway,
    Meter,
    Unit,
)
from cloud.reporting import archive, sales_report

PERIODS = ("day", "month", "year")
MAX_DAYS = 3700


def _check_range(start: dt.date, end: dt.date) -> None:
    if end < start:
        raise RuleError(f"to ({end}) is before from ({start})", "to")
    if (end - start).days > MAX_DAYS:
        raise RuleError(f"a report spans at most {MAX_DAYS} days", "from")


# A report's window when the request gives no ``from``: the bucket of ``to`` and the ones
# before it, so every bucket shown is whole (the last up to today).
DEFAULT_BUCKETS = {"day": 31, "month": 12, "year": 1}
ENERGY_DEFAULT_DAYS = 8


def default_dates(
    session: Session,
    site_id: str | None,
    period: str,
    start: dt.date | None,
    end: dt.date | None,
    *,
    now: int | None = None,
) -> tuple[dt.date, dt.date]:
    """The dates a report covers, from the site's local calendar (not UTC: at 07:00 in
    Shanghai the UTC date is still yesterday): ``to`` defaults to today at the site; ``from``
    to 30 days before it (day), the first of the month eleven months before (month), or the
    first of January of its year (year); ``period="energy"`` gives the 8 days up to ``to``."""
    _, zone = site_zone(session, site_id)
    last = end if end is not None else today(zone, now)
    if start is not None:
        return start, last
    if period == "month":
        months = last.year * 12 + last.month - 1 - (DEFAULT_BUCKETS["month"] - 1)
        return dt.date(months // 12, months % 12 + 1, 1), last
    if period == "year":
        return dt.date(last.year, 1, 1), last
    days = ENERGY_DEFAULT_DAYS if period == "energy" else DEFAULT_BUCKETS["day"]
    return last - dt.timedelta(days=days - 1), last


def _bucket(day: dt.date, period: str) -> str:
    if period == "day":
        return day.isoformat()
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    return f"{day.year:04d}"


def _site_meter_ids(session: Session, site_id: str | None) -> Any:
    q = select(Meter.id)
    if site_id is not None:
        q = q.join(Gateway, Meter.gateway_id == Gateway.id).where(Gateway.site_id == site_id)
    return q


def sales(
    session: Session,
    period: str,
    start: dt.date,
    end: dt.date,
    site_id: str | None = None,
) -> dict[str, Any]:
    """Sales, refunds and reversals per day / month / year over local dates ``start..end``
    (inclusive). Rows only for periods with activity; totals over the whole range. The
    counting is ``sales_report.compute``'s (the report centre's and the cashier close's)."""
    if period not in PERIODS:
        raise InvalidError(f"period must be day, month or year; got {period!r}", "period")
    _check_range(start, end)
    found = sales_report.compute(session, period, start, end, site_id=site_id)
    keys = (
        "sales_count",
        "sales_micro_yuan",
        "pending_count",
        "pending_micro_yuan",
        "refunds_count",
        "refunds_micro_yuan",
        "reversals_count",
        "reversals_micro_yuan",
    )
    rows = [
        {"period": r["period"], **{k: r[k] for k in keys}, "net_micro_yuan": r["net_micro_yuan"]}
        for r in found["rows"]
        if r["count"]
    ]
    totals = {k: found["totals"][k] for k in keys}
    totals["net_micro_yuan"] = found["totals"]["net_micro_yuan"]
    return {
        "period": period,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "site": found["site"],
        "rows": rows,
        "totals": totals,
    }


def place_meters(
    session: Session,
    site_id: str | None,
    building: int | None = None,
    floor: int | None = None,
    unit: int | None = None,
) -> list[Meter]:
    """Meters of a place (site, building, floor or unit)."""
    q = select(Meter).order_by(Meter.id)
    if site_id is not None:
        q = q.join(Gateway, Meter.gateway_id == Gateway.id).where(Gateway.site_id == site_id)
    if unit is not None:
        q = q.where(Meter.unit_id == unit)
    elif floor is not None:
        q = q.where(Meter.unit_id.in_(select(Unit.id).where(Unit.floor_id == floor)))
    elif building is not None:
        q = q.where(
            Meter.unit_id.in_(
                select(Unit.id)
                .join(Floor, Unit.floor_id == Floor.id)
                .where(Floor.building_id == building)
            )
        )
    return list(session.scalars(q))


def energy(
    session: Session,
    start: dt.date,
    end: dt.date,
    *,
    site_id: str | None = None,
    building: int | None = None,
    floor: int | None = None,
    unit: int | None = None,
) -> dict[str, Any]:
    """Energy (Wh) and charges (micro-yuan) per local day over ``start..end`` for a place, with
    per-meter totals (F31, F32: plain meters included, flagged)."""
    _check_range(start, end)
    site, zone = site_zone(session, site_id)
    if building is not None and session.get(Building, building) is None:
        raise NotFoundError(f"building {building} does not exist", "building")
    meters = place_meters(session, site, building, floor, unit)
    ids = [m.id for m in meters]
    per_day: dict[dt.date, dict[str, int]] = {}
    per_meter: dict[str, dict[str, int]] = {
        m: {"energy_wh": 0, "charge_micro_yuan": 0} for m in ids
    }
    stored = (
        {
            (r.meter_id, r.day): r
            for r in session.scalars(
                select(DailyRollup).where(
                    DailyRollup.meter_id.in_(ids), DailyRollup.day >= start, DailyRollup.day <= end
                )
            )
        }
        if ids
        else {}
    )
    day = start
    while day <= end:
        missing = [m for m in ids if (m, day) not in stored]
        live = archive.compute_day(session, missing, day, zone) if missing else {}
        total = {"energy_wh": 0, "charge_micro_yuan": 0}
        for meter_id in ids:
            values = stored.get((meter_id, day)) or live.get(meter_id)
            if values is None:
                continue
            e = values.energy_wh if isinstance(values, DailyRollup) else values["energy_wh"]
            c = (
                values.charge_micro_yuan
                if isinstance(values, DailyRollup)
                else values["charge_micro_yuan"]
            )
            total["energy_wh"] += e
            total["charge_micro_yuan"] += c
            per_meter[meter_id]["energy_wh"] += e
            per_meter[meter_id]["charge_micro_yuan"] += c
        per_day[day] = total
        day += dt.timedelta(days=1)
    prepaid = {m.id: m.prepaid for m in meters}
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "site": site,
        "place": {"building": building, "floor": floor, "unit": unit},
        "days": [{"day": d.isoformat(), **v} for d, v in per_day.items()],
        "meters": [{"meter": m, "prepaid": prepaid[m], **v} for m, v in per_meter.items()],
        "total_energy_wh": sum(v["energy_wh"] for v in per_day.values()),
        "total_charge_micro_yuan": sum(v["charge_micro_yuan"] for v in per_day.values()),
    }


def lost_contact(session: Session, kind: str) -> dict[str, Any]:
    """Meters (F29) or collectors (F30) out of contact now, with when it was noticed."""
    if kind not in ("meter", "gateway"):
        raise InvalidError(f"kind must be meter or gateway; got {kind!r}", "kind")
    if kind == "meter":
        since = dict(
            session.execute(
                select(Alarm.meter_id, Alarm.raised_ts).where(
                    Alarm.active.is_(True), Alarm.kind == "lost_contact"
                )
            ).all()
        )
        meters = session.scalars(
            select(Meter).where(Meter.lost_contact.is_(True)).order_by(Meter.id)
        )
        return {
            "kind": kind,
            "items": [
                {
                    "id": m.id,
                    "name": m.name,
                    "gateway": m.gateway_id,
                    "address": m.address,
                    "last_seen": m.last_seen_ts,
                    "since": since.get(m.id),
                }
                for m in meters
            ],
        }
    since = dict(
        session.execute(
            select(Alarm.gateway_id, Alarm.raised_ts).where(
                Alarm.active.is_(True), Alarm.kind == "gateway_lost_contact"
            )
        ).all()
    )
    gws = session.scalars(
        select(Gateway).where(Gateway.lost_contact.is_(True)).order_by(Gateway.id)
    )
    return {
        "kind": kind,
        "items": [
            {
                "id": g.id,
                "name": g.name,
                "site": g.site_id,
                "online": g.online,
                "last_heartbeat": g.last_heartbeat_ts,
                "since": since.get(g.id),
            }
            for g in gws
        ],
    }
