"""操作日志: every state-changing action (the audit log), filtered by time, operator, action and
object; one entry's before/after; the filtered set exported to Excel."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import abort, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, or_, select

from cloud.models import AuditEntry, Operator
from cloud.reporting.exports import Column, xlsx_response
from cloud.web.office.access import bp
from cloud.web.office.lists import (
    arg,
    date_arg,
    day_start_ts,
    every_row,
    int_arg,
    paginate,
    site_name,
)
from cloud.web.office.security import db, page

PERMISSION = "audit.read"
COLUMNS = (
    Column("ts", _l("Time"), "datetime"),
    Column("operator", _l("Operator")),
    Column("action", _l("Action"), width=24),
    Column("target_type", _l("Object type")),
    Column("target_id", _l("Object")),
    Column("summary", _l("Summary"), width=60),
)


def _query() -> Select[Any]:
    stmt = select(AuditEntry)
    start, end = date_arg("from"), date_arg("to")
    if start:
        stmt = stmt.where(AuditEntry.ts >= day_start_ts(start))
    if end:
        stmt = stmt.where(AuditEntry.ts < day_start_ts(end + dt.timedelta(days=1)))
    if int_arg("operator") is not None:
        stmt = stmt.where(AuditEntry.operator_id == int_arg("operator"))
    if arg("action"):
        stmt = stmt.where(AuditEntry.action.like(f"{arg('action')}%"))
    if arg("object"):
        stmt = stmt.where(
            or_(
                AuditEntry.target_id == arg("object"),
                AuditEntry.target_id.like(f"{arg('object')}%"),
            )
        )
    return stmt


def _filters_shown() -> list[tuple[object, object]]:
    return [
        (_("From"), arg("from")),
        (_("To"), arg("to")),
        (_("Operator"), arg("operator")),
        (_("Action"), arg("action")),
        (_("Object"), arg("object")),
    ]


def _summary(entry: AuditEntry) -> str:
    return json.dumps(
        entry.after if entry.after is not None else entry.before or {},
        ensure_ascii=False,
        sort_keys=True,
    )[:300]


@page(bp, "/log", PERMISSION, endpoint="oplog")
def oplog_list() -> Any:
    listing = paginate(_query(), order_by=AuditEntry.id.desc())
    ops = list(db().scalars(select(Operator).order_by(Operator.username)))
    return render_template(
        "office/access/oplog.html", listing=listing, operators=ops, summary=_summary
    )


@page(bp, "/log/<int:entry_id>", PERMISSION)
def oplog_detail(entry_id: int) -> Any:
    entry = db().get(AuditEntry, entry_id)
    if entry is None:
        abort(404)

    def pretty(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)

    return render_template("office/access/oplog_detail.html", entry=entry, pretty=pretty)


@page(bp, "/log/export", PERMISSION)
def oplog_export() -> Any:
    rows = (
        {
            "ts": e.ts,
            "operator": e.actor,
            "action": e.action,
            "target_type": e.target_type,
            "target_id": e.target_id,
            "summary": _summary(e),
        }
        for e in every_row(_query(), order_by=AuditEntry.id.desc())
    )
    return xlsx_response(
        _("Operation log"), COLUMNS, rows, filters=_filters_shown(), site_name=site_name()
    )
