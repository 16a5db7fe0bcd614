"""Readings, alarms and reports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from cloud.errors import InvalidError, NotFoundError
from cloud.models import Alarm, Reading, now_ts
from cloud.monitoring import alarms
from cloud.reporting import reports
from cloud.web.api import Ctx, Param, endpoint, reject_unknown
from cloud.web.api.schemas import BOOL, INT, OBJ, STR, array, enum, obj, ref


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
        Param("meter", STR, "the meter (required)", required=True),
        Param("from", STR, "at or after (epoch seconds or ISO 8601)"),
        Param("to", STR, "before (epoch seconds or ISO 8601)"),
        Param("after", INT, "only readings with id above this (the previous page's next_after)"),
        Param("limit", INT, "at most this many (default 1000, max 10000)"),
    ],
    response=obj({"readings": array(ref("Reading")), "next_after": {"type": ["integer", "null"]}}),
)
def list_readings(ctx: Ctx) -> Any:
    meter = ctx.arg("meter")
    if meter is None:
        raise InvalidError("meter is required: GET /api/v1/readings?meter=ID", "meter")
    limit = ctx.int_arg("limit", 1000, 1, 10_000)
    assert limit is not None
    q = select(Reading).where(Reading.meter_id == meter)
    start, end = ctx.ts_arg("from"), ctx.ts_arg("to")
    if start is not None:
        q = q.where(Reading.ts >= start)
    if end is not None:
        q = q.where(Reading.ts < end)
    after = ctx.int_arg("after", None, 0)
    if after is not None:
        q = q.where(Reading.id > after)
    rows = list(ctx.session.scalars(q.order_by(Reading.id).limit(limit)))
    return {
        "readings": [_reading(r) for r in rows],
        "next_after": rows[-1].id if len(rows) == limit else None,
    }


@endpoint(
    "/alarms",
    "GET",
    "alarms.read",
    "Alarms: active ones (F25) or history (F33), newest first",
    tag="alarms",
    params=[
        Param("active", BOOL, "true: active only; false: cleared only; absent: both"),
        Param("meter", STR, "only this meter"),
        Param("gateway", STR, "only this collector"),
        Param("kind", STR, "only this kind"),
        Param("limit", INT, "at most this many (default 500, max 5000)"),
    ],
    response=obj({"alarms": array(ref("Alarm"))}),
)
def list_alarms(ctx: Ctx) -> Any:
    q = select(Alarm).order_by(Alarm.id.desc())
    active = ctx.bool_arg("active")
    if active is not None:
        q = q.where(Alarm.active.is_(active))
    for name, column in (
        ("meter", Alarm.meter_id),
        ("gateway", Alarm.gateway_id),
        ("kind", Alarm.kind),
    ):
        if ctx.arg(name):
            q = q.where(column == ctx.arg(name))
    rows = ctx.session.scalars(q.limit(ctx.int_arg("limit", 500, 1, 5000)))
    return {"alarms": [alarms.to_dict(a) for a in rows]}


@endpoint(
    "/alarms/<int:alarm_id>/clear",
    "POST",
    "alarms.clear",
    "Clear an alarm by hand (it moves to history)",
    tag="alarms",
    body=obj({"note": STR}),
    response=ref("Alarm"),
)
def clear_alarm(ctx: Ctx, alarm_id: int) -> Any:
    from cloud.audit import record

    reject_unknown(ctx.body, {"note"})
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
            {**alarms.to_dict(alarm), "note": str(ctx.body.get("note", ""))[:500]},
        )
    return alarms.to_dict(alarm)


def _range(ctx: Ctx, default_days: int) -> tuple[dt.date, dt.date]:
    today = dt.datetime.now(dt.UTC).date()
    end = ctx.date_arg("to", today)
    assert end is not None
    start = ctx.date_arg("from", end - dt.timedelta(days=default_days))
    assert start is not None
    return start, end


@endpoint(
    "/reports/sales",
    "GET",
    "reports.read",
    "Sales per day (F26), month (F27) or year (F28) in the site's local time",
    tag="reports",
    params=[
        Param("period", enum("day", "month", "year"), "the bucket (default day)"),
        Param("from", STR, "first local date YYYY-MM-DD (default: 30 days before to)"),
        Param("to", STR, "last local date YYYY-MM-DD, inclusive (default: today)"),
        Param("site", STR, "the site (needed when there are several)"),
    ],
    response=obj({"period": STR, "rows": array(OBJ), "totals": OBJ}),
)
def sales_report(ctx: Ctx) -> Any:
    start, end = _range(ctx, 30)
    return reports.sales(ctx.session, ctx.arg("period", "day"), start, end, ctx.arg("site"))


@endpoint(
    "/reports/energy",
    "GET",
    "reports.read",
    "Energy and charges per day for a place and date range (F31, F32)",
    tag="reports",
    params=[
        Param("from", STR, "first local date YYYY-MM-DD (default: 7 days before to)"),
        Param("to", STR, "last local date YYYY-MM-DD, inclusive (default: today)"),
        Param("building", INT, "a building id"),
        Param("floor", INT, "a floor id"),
        Param("unit", INT, "a unit id"),
        Param("site", STR, "the site (needed when there are several)"),
    ],
    response=obj({"days": array(OBJ), "meters": array(OBJ), "total_energy_wh": INT}),
)
def energy_report(ctx: Ctx) -> Any:
    start, end = _range(ctx, 7)
    return reports.energy(
        ctx.session,
        start,
        end,
        site_id=ctx.arg("site"),
        building=ctx.int_arg("building"),
        floor=ctx.int_arg("floor"),
        unit=ctx.int_arg("unit"),
    )


@endpoint(
    "/reports/lost-contact",
    "GET",
    "reports.read",
    "Meters (F29) or collectors (F30) out of contact",
    tag="reports",
    params=[Param("kind", enum("meter", "gateway"), "meter (default) or gateway")],
    response=obj({"kind": STR, "items": array(OBJ)}),
)
def lost_contact_report(ctx: Ctx) -> Any:
    return reports.lost_contact(ctx.session, ctx.arg("kind", "meter"))
