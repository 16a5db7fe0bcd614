"""实时报警 (F25) and 报警记录 (F33).

- The live list: every active alarm in the operator's buildings (type, unit, meter or collector,
  balance, since when, handled or not), counts per type as a chart; the list reloads itself
  every 15 seconds (htmx). 处理 opens a small form: the note is required, the alarm stays
  active until its cause clears (``cloud.monitoring.alarms.acknowledge``, logged).
- The history: alarms raised in a date range (default the last 30 days) by type, building,
  meter and state, with who handled them and when they cleared; pages of the list, the whole
  filtered set exported (in the background beyond 10,000 rows).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.errors import ServiceError
from cloud.models import Alarm, Building
from cloud.monitoring import alarms as alarm_service
from cloud.reporting import alarm_report, filters
from cloud.reporting.exports import Column
from cloud.web.office.lists import arg, paginate
from cloud.web.office.reports import bp
from cloud.web.office.reports.common import (
    building_id,
    date_range,
    export,
    filter_message,
    now,
    site_today,
)
from cloud.web.office.reports.labels import ALARMS, STATES, alarm, state
from cloud.web.office.security import current, db, page

COLUMNS = (
    Column("raised_ts", _l("Raised at"), "datetime"),
    Column("kind", _l("Type"), width=24),
    Column("building", _l("Building")),
    Column("unit", _l("Unit no.")),
    Column("meter", _l("Meter no.")),
    Column("gateway", _l("Collector")),
    Column("balance_micro_yuan", _l("Balance (yuan)"), "yuan"),
    Column("state", _l("Status")),
    Column("ack_by", _l("Handled by")),
    Column("ack_ts", _l("Handled at"), "datetime"),
    Column("ack_note", _l("Note"), width=30),
    Column("cleared_ts", _l("Cleared at"), "datetime"),
)
REFRESH_S = 15  # the live list's reload; config ALARM_REFRESH_S changes it (tests)


def _refresh_s() -> int:
    return int(current_app.config.get("ALARM_REFRESH_S", REFRESH_S))


def _buildings() -> list[Building]:
    return list(
        db().scalars(
            select(Building)
            .where(current().scope.building_ids_in(Building.id))
            .order_by(Building.name)
        )
    )


def _filters(history: bool) -> dict[str, Any]:
    """The list's filters from the URL (FilterError when one is refused)."""
    _site, _tz, today = site_today()
    kind = arg("kind") if arg("kind") in ALARMS else ""
    wanted = arg("state") if arg("state") in STATES else ""
    out: dict[str, Any] = {"kind": kind, "state": wanted, "building": building_id()}
    if history:
        out["rng"] = date_range(today - dt.timedelta(days=29), today)
        found = filters.meter(db(), current().scope, arg("meter"))
        out["meter"] = found.id if found is not None else None
    else:
        out["active"] = True
    return out


def _rows(s: Session, stmt: Any) -> Any:
    stamp = now()
    for found in s.execute(stmt.order_by(*alarm_report.ORDER)):
        row = alarm_report.row(found, stamp)
        yield {**row, "kind": alarm(row["kind"]), "state": state(row)}


def _page(history: bool, partial: bool = False) -> Any:
    template = "office/reports/alarm_history.html" if history else "office/reports/alarms.html"
    if partial:
        template = "office/reports/_alarms_live.html"
    try:
        chosen = _filters(history)
    except filters.FilterError as exc:
        return render_template(
            template, error=filter_message(exc), buildings=_buildings(), listing=None,
            rows=[], chart=None, refresh_s=_refresh_s(), rng=None,
        ), 422  # fmt: skip
    stmt = alarm_report.statement(db(), scope=current().scope, **chosen)
    counts = alarm_report.counts(db(), stmt)
    chart = {
        "kind": "bars",
        "labels": [alarm(k) for k, _n in counts],
        "series": [{"name": _("Alarms"), "values": [n for _k, n in counts]}],
    }
    stamp = now()
    listing = None
    if history:
        listing = paginate(stmt, order_by=alarm_report.ORDER, scalars=False)
        rows = [alarm_report.row(r, stamp) for r in listing.rows]
    else:
        rows = [
            alarm_report.row(r, stamp) for r in db().execute(stmt.order_by(*alarm_report.ORDER))
        ]
    return render_template(
        template, rows=rows, listing=listing, chart=chart, counts=counts, error=None,
        buildings=_buildings(), refresh_s=_refresh_s(), total=sum(n for _k, n in counts),
        rng=chosen.get("rng"),
    )  # fmt: skip


@page(bp, "/alarms", "alarms.read", endpoint="alarms")
def live() -> Any:
    return _page(history=False)


@page(bp, "/alarms/live", "alarms.read", endpoint="alarms_live")
def live_part() -> Any:
    return _page(history=False, partial=True)


@page(bp, "/alarms/history", "alarms.read", endpoint="alarm_history")
def history() -> Any:
    return _page(history=True)


def _export(history: bool) -> Any:
    try:
        chosen = _filters(history)
    except filters.FilterError as exc:
        return render_template(
            "office/reports/alarms.html", error=filter_message(exc), buildings=_buildings(),
            listing=None, rows=[], chart=None, refresh_s=_refresh_s(),
        ), 422  # fmt: skip
    scope = current().scope
    stmt = alarm_report.statement(db(), scope=scope, **chosen)
    count = int(db().scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)
    shown: list[tuple[object, object]] = [
        (_("Type"), alarm(chosen["kind"]) if chosen["kind"] else "")
    ]
    if history:
        rng = chosen["rng"]
        shown += [(_("From"), rng.start.isoformat()), (_("To"), rng.end.isoformat())]
    title = _("Alarm history") if history else _("Live alarms")

    def rows(s: Session) -> Any:
        # The job's own session: the statement is built again there (same filters).
        return _rows(s, alarm_report.statement(s, scope=scope, **chosen))

    return export(title, COLUMNS, rows, count=count, permission="alarms.read", filters_shown=shown)


@page(bp, "/alarms/export", "alarms.read", endpoint="alarms_export")
def live_export() -> Any:
    return _export(history=False)


@page(bp, "/alarms/history/export", "alarms.read", endpoint="alarm_history_export")
def history_export() -> Any:
    return _export(history=True)


@page(
    bp, "/alarms/<int:alarm_id>/acknowledge", "alarms.clear", methods=("GET", "POST"),
    endpoint="acknowledge",
)  # fmt: skip
def acknowledge(alarm_id: int) -> Any:
    found = db().get(Alarm, alarm_id)
    if found is None or not alarm_report.in_scope(db(), current().scope, found):
        abort(404)
    error = None
    if request.method == "POST":
        note = request.form.get("note", "")
        try:
            alarm_service.acknowledge(db(), found, note, current().actor)
        except ServiceError:
            error = _("Say what was done about the alarm (one line, at most 500 characters).")
        else:
            flash(_("Alarm %(id)d handled.", id=alarm_id), "success")
            return redirect(url_for("office_reports.alarms"), 303)
    row = next(
        alarm_report.row(r, now())
        for r in db().execute(alarm_report.statement(db()).where(Alarm.id == alarm_id))
    )
    return render_template(
        "office/reports/acknowledge.html", alarm=row, error=error,
        note=request.form.get("note", "") if request.method == "POST" else (found.ack_note or ""),
    ), (422 if error else 200)  # fmt: skip
