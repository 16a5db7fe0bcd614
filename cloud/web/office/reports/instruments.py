"""计量仪表能耗 (F32): plain metering instruments of a place over a date range: the counter at
the start and at the end, the difference, the charges reported, the latest remote reading
(``cloud.reporting.instruments``). ``?all=1`` lists prepaid meters too."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from cloud.park import places
from cloud.reporting import filters, instruments
from cloud.reporting.exports import Column
from cloud.web.office.lists import arg
from cloud.web.office.reports import bp
from cloud.web.office.reports.common import date_range, filter_message, site_today, workbook
from cloud.web.office.security import current, db, page

COLUMNS = (
    Column("meter", _l("Meter no.")),
    Column("name", _l("Name")),
    Column("building", _l("Building")),
    Column("unit", _l("Unit no.")),
    Column("start_ts", _l("Start reading time"), "datetime"),
    Column("start_wh", _l("Start reading (kWh)"), "kwh"),
    Column("end_ts", _l("End reading time"), "datetime"),
    Column("end_wh", _l("End reading (kWh)"), "kwh"),
    Column("energy_wh", _l("Energy (kWh)"), "kwh"),
    Column("charge_micro_yuan", _l("Charges (yuan)"), "yuan"),
    Column("latest_ts", _l("Latest reading"), "datetime"),
    Column("latest_power_w", _l("Power (W)"), "int"),
)


def _report() -> tuple[dict[str, Any] | None, str | None, filters.Place | None]:
    site, _tz, today = site_today()
    try:
        where = filters.place(db(), current().scope, arg("place"))
        rng = date_range(today.replace(day=1), today)
        report = instruments.report(
            db(), rng, site_id=site, scope=current().scope, where=where,
            include_prepaid=arg("all") == "1",
        )  # fmt: skip
    except filters.FilterError as exc:
        return None, filter_message(exc), None
    return report, None, where


@page(bp, "/instruments", "reports.read", endpoint="instruments")
def instruments_page() -> Any:
    report, error, where = _report()
    chart = None
    if report is not None:
        chart = {
            "kind": "bars", "unit": "kwh",
            "labels": [r["meter"] for r in report["rows"]],
            "series": [{"name": _("Energy"), "values": [r["energy_wh"] or 0 for r in report["rows"]]}],
        }  # fmt: skip
    return render_template(
        "office/reports/instruments.html", report=report, error=error, where=where, chart=chart,
        tree=places.tree(db(), current().scope),
    ), (200 if error is None else 422)  # fmt: skip


@page(bp, "/instruments/export", "reports.read", endpoint="instruments_export")
def instruments_export() -> Any:
    report, error, where = _report()
    if report is None:
        return render_template(
            "office/reports/instruments.html", report=None, error=error, where=None, chart=None,
            tree={},
        ), 422  # fmt: skip
    rows = [
        {**r, "latest_ts": (r["latest"] or {}).get("ts"),
         "latest_power_w": (r["latest"] or {}).get("power_w")}
        for r in report["rows"]
    ]  # fmt: skip
    title = _("Instrument energy")
    shown = [(_("Place"), where.label if where is not None and where.label else _("Whole site")),
             (_("From"), report["from"]), (_("To"), report["to"])]  # fmt: skip
    return workbook(title, [(title, COLUMNS, rows, report["totals"])], shown)
