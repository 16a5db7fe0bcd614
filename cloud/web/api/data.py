"""Readings, alarms and reports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from cloud.audit import record
from cloud.errors import NotFoundError
from cloud.models import Alarm, Reading, now_ts
from cloud.monitoring import alarms
from cloud.reporting import reports
from cloud.values import SHORT_NOTE_MAX
from cloud.web.api import Ctx, Param, endpoint
from cloud.web.api.schemas import (
    BOOL,
    DATE,
    ID_STR,
    INT,
    LIMIT_5000,
    OBJ,
    RECORD_ID,
    STR,
    WHEN,
    array,
    enum,
    integer,
    note,
    obj,
    ref,
)


def _reading(r: Reading) -> dict[str, Any]:
    return {
        "id": r.id,
        "meter": r.meter_id,
        "gateway": r.gateway_id,
        "reading_id": r.reading_id,
        "ts": r.ts,
        "energy_wh": r.energy_wh,
        "power_w": r.power_w,
        "relay": r.relay,
        "band_energy_wh": r.band_energy_wh,
        "voltages_dv": r.voltages_dv,
        "currents_ma": r.currents_ma,
        "charge_micro_yuan": r.charge_micro_yuan,
        "balance_micro_yuan": r.balance_micro_yuan,
        "credits_micro_yuan": r.credits_micro_yuan,
        "refunds_micro_yuan": r.refunds_micro_yuan,
        "charges_micro_yuan": r.charges_micro_yuan,
    }


@endpoint(
    "/readings",
    "GET",
    "readings.read",
    "A meter's reading history (F19), oldest first; page with after=next_after",
    tag="readings",
    params=[
        Param("meter", ID_STR, "the meter (required)", required=True),
        Param("from", WHEN, "at or after (epoch seconds or ISO 8601)"),
        Param("to", WHEN, "before (epoch seconds or ISO 8601)"),
        Param(
            "after", integer(0), "only readings with id above this (the previous page's next_after)"
        ),
        Param("limit", integer(1, 10_000), "at most this many (default 1000, max 10000)"),
    ],
    response=obj(
        {"readings": array(ref("Reading")), "next_after": {"type": ["integer", "null"]}},
        ["readings", "next_after"],
    ),
)
def list_readings(ctx: Ctx) -> Any:
    p = ctx.params
    limit = p.get("limit", 1000)
    q = select(Reading).where(Reading.meter_id == p["meter"])
    start, end = ctx.ts_arg("from"), ctx.ts_arg("to")
    if start is not None:
        q = q.where(Reading.ts >= start)
    if end is not None:
        q = q.where(Reading.ts < end)
    if "after" in p:
        q = q.where(Reading.id > p["after"])
    rows = list(ctx.session.scalars(q.order_by(Reading.id).limit(limit)))
    return {
        "readings": [_reading(r) for r in rows],
        "next_after": rows[-1].id if len(rows) == limit else None,
    }


ALARM_KIND = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": "^[a-z][a-z0-9_]*$",
    "x-rule": "an alarm kind such as lost_contact (lower-case letters, digits, _)",
}


@endpoint(
    "/alarms",
    "GET",
    "alarms.read",
    "Alarms: active ones (F25) or history (F33), newest first",
    tag="alarms",
    params=[
        Param("active", BOOL, "true: active only; false: cleared only; absent: both"),
        Param("meter", ID_STR, "only this meter"),
        Param("gateway", ID_STR, "only this collector"),
        Param("kind", ALARM_KIND, "only this kind"),
        Param("limit", LIMIT_5000, "at most this many (default 500, max 5000)"),
    ],
    response=obj({"alarms": array(ref("Alarm"))}, ["alarms"]),
)
def list_alarms(ctx: Ctx) -> Any:
    p = ctx.params
    q = select(Alarm).order_by(Alarm.id.desc())
    if "active" in p:
        q = q.where(Alarm.active.is_(p["active"]))
    for name, column in (
        ("meter", Alarm.meter_id),
        ("gateway", Alarm.gateway_id),
        ("kind", Alarm.kind),
    ):
        if name in p:
            q = q.where(column == p[name])
    rows = ctx.session.scalars(q.limit(p.get("limit", 500)))
    return {"alarms": [alarms.to_dict(a) for a in rows]}


@endpoint(
    "/alarms/<int:alarm_id>/clear",
    "POST",
    "alarms.clear",
    "Clear an alarm by hand (it moves to history); clearing a cleared one changes nothing",
    tag="alarms",
    body=obj({"note": note(SHORT_NOTE_MAX)}),
    body_required=False,
    response=ref("Alarm"),
)
def clear_alarm(ctx: Ctx, alarm_id: int) -> Any:
    alarm = ctx.session.get(Alarm, alarm_id)
    if alarm is None:
        raise NotFoundError(f"alarm {alarm_id} does not exist")
    if alarm.active:
        before = alarms.to_dict(alarm)
        alarm.active = False
        alarm.cleared_ts = now_ts()
        alarm.cleared_by = ctx.actor.name
        record(
            ctx.session,
            ctx.actor,
            "alarm.clear",
            "alarm",
            alarm.id,
            before,
            {**alarms.to_dict(alarm), "note": ctx.body.get("note", "")},
        )
    return alarms.to_dict(alarm)


def _dates(ctx: Ctx, period: str) -> tuple[dt.date, dt.date]:
    return reports.default_dates(
        ctx.session, ctx.params.get("site"), period, ctx.date_arg("from"), ctx.date_arg("to")
    )


@endpoint(
    "/reports/sales",
    "GET",
    "reports.read",
    "Sales per day (F26), month (F27) or year (F28) in the site's local time. Without from/to: "
    "up to today at the site, from 30 days before (day), the first of the month 11 months "
    "before (month) or the first of January (year)",
    tag="reports",
    params=[
        Param("period", enum(*reports.PERIODS), "the bucket (default day)"),
        Param("from", DATE, "first local date YYYY-MM-DD (default: by period, see above)"),
        Param("to", DATE, "last local date YYYY-MM-DD, inclusive (default: today at the site)"),
        Param("site", ID_STR, "the site (needed when there are several)"),
    ],
    response=obj({"period": STR, "rows": array(OBJ), "totals": OBJ}, ["period", "rows", "totals"]),
)
def sales_report(ctx: Ctx) -> Any:
    period = ctx.params.get("period", "day")
    start, end = _dates(ctx, period)
    return reports.sales(ctx.session, period, start, end, ctx.params.get("site"))


@endpoint(
    "/reports/energy",
    "GET",
    "reports.read",
    "Energy and charges per day for a place and date range (F31, F32), in the site's local days",
    tag="reports",
    params=[
        Param("from", DATE, "first local date YYYY-MM-DD (default: 7 days before to)"),
        Param("to", DATE, "last local date YYYY-MM-DD, inclusive (default: today at the site)"),
        Param("building", RECORD_ID, "a building id"),
        Param("floor", RECORD_ID, "a floor id"),
        Param("unit", RECORD_ID, "a unit id"),
        Param("site", ID_STR, "the site (needed when there are several)"),
    ],
    response=obj(
        {"days": array(OBJ), "meters": array(OBJ), "total_energy_wh": INT},
        ["days", "meters", "total_energy_wh"],
    ),
)
def energy_report(ctx: Ctx) -> Any:
    start, end = _dates(ctx, "energy")
    return reports.energy(
        ctx.session,
        start,
        end,
        site_id=ctx.params.get("site"),
        building=ctx.params.get("building"),
        floor=ctx.params.get("floor"),
        unit=ctx.params.get("unit"),
    )


@endpoint(
    "/reports/lost-contact",
    "GET",
    "reports.read",
    "Meters (F29) or collectors (F30) out of contact",
    tag="reports",
    params=[Param("kind", enum("meter", "gateway"), "meter (default) or gateway")],
    response=obj({"kind": STR, "items": array(OBJ)}, ["kind", "items"]),
)
def lost_contact_report(ctx: Ctx) -> Any:
    return reports.lost_contact(ctx.session, ctx.params.get("kind", "meter"))
