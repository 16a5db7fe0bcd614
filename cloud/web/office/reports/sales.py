"""售电日报 / 月报 / 年报 (F26, F27, F28): sales, refunds, reversals and net per day, month or
year of a range, by payment method and by operator, in the operator's buildings (or one);
a bar chart of each bucket; the export holds the three tables as three sheets. The figures are
``cloud.reporting.sales_report``'s, counted as the cashier's daily close counts, so a day of
this report and that day's close agree to the fen."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from cloud.models import Building
from cloud.reporting import filters, sales_report
from cloud.reporting.exports import Column
from cloud.web.office import receipts as money_labels
from cloud.web.office.lists import arg
from cloud.web.office.reports import bp
from cloud.web.office.reports.common import (
    PERIOD_LABELS,
    building_id,
    date_range,
    filter_message,
    site_today,
    workbook,
)
from cloud.web.office.security import current, db, page

MONEY = (
    Column("count", _l("Documents"), "int"),
    Column("sales_micro_yuan", _l("Sales (yuan)"), "yuan"),
    Column("pending_micro_yuan", _l("Of which not yet applied (yuan)"), "yuan"),
    Column("refunds_micro_yuan", _l("Refunds (yuan)"), "yuan"),
    Column("reversals_micro_yuan", _l("Reversals (yuan)"), "yuan"),
    Column("net_micro_yuan", _l("Net (yuan)"), "yuan"),
)
PERIOD_COLUMNS = (Column("period", _l("Period")), *MONEY)
METHOD_COLUMNS = (Column("method", _l("Payment method")), *MONEY)
OPERATOR_COLUMNS = (Column("operator", _l("Operator"), width=22), *MONEY)


def _defaults(period: str, today: dt.date) -> tuple[dt.date, dt.date]:
    if period == "month":
        return dt.date(today.year, 1, 1), dt.date(today.year, 12, 31)
    if period == "year":
        return dt.date(today.year - filters.MAX_YEARS + 1, 1, 1), dt.date(today.year, 12, 31)
    return today.replace(day=1), today


def _report() -> tuple[str, dict[str, Any] | None, str | None, filters.Range | None]:
    period = arg("period") if arg("period") in sales_report.PERIODS else "day"
    site, _tz, today = site_today()
    try:
        rng = date_range(*_defaults(period, today))
        report = sales_report.report(
            db(), period, rng, site_id=site, scope=current().scope, building_id=building_id()
        )
    except filters.FilterError as exc:
        return period, None, filter_message(exc), None
    return period, report, None, rng


def _chart(report: dict[str, Any]) -> dict[str, Any]:
    rows = report["rows"]
    return {
        "kind": "bars",
        "unit": "yuan",
        "labels": [r["period"] for r in rows],
        "series": [
            {"name": _("Sales"), "values": [r["sales_micro_yuan"] for r in rows]},
            {"name": _("Refunds and reversals"),
             "values": [r["refunds_micro_yuan"] + r["reversals_micro_yuan"] for r in rows]},
            {"name": _("Net"), "values": [r["net_micro_yuan"] for r in rows]},
        ],
    }  # fmt: skip


@page(bp, "/sales", "reports.read", endpoint="sales")
def sales_page() -> Any:
    period, report, error, rng = _report()
    buildings = db().scalars(
        select(Building).where(current().scope.building_ids_in(Building.id)).order_by(Building.name)
    )
    return render_template(
        "office/reports/sales.html", period=period, report=report, error=error, rng=rng,
        chart=_chart(report) if report else None, buildings=list(buildings),
        periods=sales_report.PERIODS,
    ), (200 if error is None else 422)  # fmt: skip


@page(bp, "/sales/export", "reports.read", endpoint="sales_export")
def sales_export() -> Any:
    period, report, error, rng = _report()
    if report is None or rng is None:
        return render_template(
            "office/reports/sales.html", period=period, report=None, error=error, rng=None,
            chart=None, buildings=[], periods=sales_report.PERIODS,
        ), 422  # fmt: skip
    title = _("Sales report (%(period)s)", period=PERIOD_LABELS[period])
    methods = [{**m, "method": money_labels.method(m["method"])} for m in report["by_method"]]
    ops = [{**o, "operator": o["operator"] or "—"} for o in report["by_operator"]]
    shown = [(_("From"), rng.start.isoformat()), (_("To"), rng.end.isoformat()),
             (_("Building"), arg("building"))]  # fmt: skip
    return workbook(
        title,
        [
            (title, PERIOD_COLUMNS, report["rows"], report["totals"]),
            (_("By payment method"), METHOD_COLUMNS, methods, report["totals"]),
            (_("By operator"), OPERATOR_COLUMNS, ops, report["totals"]),
        ],
        shown,
    )
