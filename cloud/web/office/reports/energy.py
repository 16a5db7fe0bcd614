"""能耗分析 (F31): a place from the tree (site → building → floor → unit), a date range, a scale
(day, month, year) and a comparison (同比 year on year, 环比 period on period): key figures,
stacked bars of the time-of-use bands with the comparison as a line, the bands' table (kWh,
cost, share) and the periods' table. The figures are ``cloud.reporting.energy_report``'s:
the daily rollups (and the raw readings for days not rolled up yet), the cost being the
charges the collectors reported."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from cloud.park import places
from cloud.reporting import bands, energy_report, filters
from cloud.reporting.exports import Column
from cloud.web.office.lists import arg
from cloud.web.office.reports import bp
from cloud.web.office.reports.common import (
    BAND_LABELS,
    COMPARE_LABELS,
    SCALE_LABELS,
    date_range,
    filter_message,
    site_today,
    workbook,
)
from cloud.web.office.security import current, db, page

PERIOD_COLUMNS = (
    Column("period", _l("Period")),
    Column("energy_wh", _l("Energy (kWh)"), "kwh"),
    Column("cost_micro_yuan", _l("Cost (yuan)"), "yuan"),
    Column("share_bp", _l("Share"), "bp"),
    *(Column(f"band_{b}", BAND_LABELS[b], "kwh") for b in bands.CATEGORIES),
    Column("base_period", _l("Compared with")),
    Column("base_energy_wh", _l("Energy then (kWh)"), "kwh"),
    Column("change_bp", _l("Change vs. comparison"), "bp"),
)
BAND_COLUMNS = (
    Column("band", _l("Band")),
    Column("energy_wh", _l("Energy (kWh)"), "kwh"),
    Column("cost_micro_yuan", _l("Cost (yuan)"), "yuan"),
    Column("share_bp", _l("Share"), "bp"),
)


def _defaults(scale: str, today: dt.date) -> tuple[dt.date, dt.date]:
    if scale == "month":
        return dt.date(today.year, 1, 1), today
    if scale == "year":
        return dt.date(today.year - filters.MAX_YEARS + 1, 1, 1), today
    return today - dt.timedelta(days=29), today


def _analysis() -> tuple[dict[str, Any] | None, str | None, filters.Place | None, str, str]:
    scale = arg("scale") if arg("scale") in energy_report.SCALES else "day"
    compare = arg("compare") if arg("compare") in energy_report.COMPARISONS else "none"
    site, _tz, today = site_today()
    try:
        where = filters.place(db(), current().scope, arg("place"))
        rng = date_range(*_defaults(scale, today))
        report = energy_report.analysis(
            db(), rng, scale, compare, site_id=site, scope=current().scope, where=where
        )
    except filters.FilterError as exc:
        return None, filter_message(exc), None, scale, compare
    return report, None, where, scale, compare


def _chart(report: dict[str, Any]) -> dict[str, Any]:
    rows = report["rows"]
    used = [c for c in bands.CATEGORIES if any(r["bands"][c] for r in rows)]
    series: list[dict[str, Any]] = [
        {"name": str(BAND_LABELS[c]), "values": [r["bands"][c] for r in rows], "stack": "bands",
         "band": c}
        for c in used
    ]  # fmt: skip
    if any(r["unsplit_wh"] for r in rows):
        series.append({"name": str(BAND_LABELS["unsplit"]), "values": [r["unsplit_wh"] for r in rows],
                       "stack": "bands", "band": "unsplit"})  # fmt: skip
    if report["compare"] != "none":
        series.append({"name": str(COMPARE_LABELS[report["compare"]]),
                       "values": [r["base_energy_wh"] or 0 for r in rows], "line": True})  # fmt: skip
    return {
        "kind": "stacked",
        "unit": "kwh",
        "labels": [r["period"] for r in rows],
        "series": series,
    }


@page(bp, "/energy", "reports.read", endpoint="energy")
def energy_page() -> Any:
    report, error, where, scale, compare = _analysis()
    return render_template(
        "office/reports/energy.html", report=report, error=error, where=where, scale=scale,
        compare=compare, chart=_chart(report) if report else None,
        tree=places.tree(db(), current().scope), scales=energy_report.SCALES,
        comparisons=energy_report.COMPARISONS, categories=bands.CATEGORIES,
        band_labels=BAND_LABELS,
    ), (200 if error is None else 422)  # fmt: skip


@page(bp, "/energy/export", "reports.read", endpoint="energy_export")
def energy_export() -> Any:
    report, error, where, scale, compare = _analysis()
    if report is None:
        return render_template(
            "office/reports/energy.html", report=None, error=error, where=None, scale=scale,
            compare=compare, chart=None, tree={}, scales=energy_report.SCALES,
            comparisons=energy_report.COMPARISONS, categories=bands.CATEGORIES,
            band_labels=BAND_LABELS,
        ), 422  # fmt: skip
    rows = [{**r, **{f"band_{c}": r["bands"][c] for c in bands.CATEGORIES}} for r in report["rows"]]
    band_rows = [{**b, "band": str(BAND_LABELS[b["band"]])} for b in report["bands"]]
    total = {
        "energy_wh": report["total_energy_wh"],
        "cost_micro_yuan": report["total_cost_micro_yuan"],
    }
    shown = [
        (_("Place"), where.label if where is not None and where.label else _("Whole site")),
        (_("From"), report["from"]), (_("To"), report["to"]),
        (_("Scale"), SCALE_LABELS[scale]), (_("Comparison"), COMPARE_LABELS[compare]),
    ]  # fmt: skip
    title = _("Energy analysis")
    return workbook(
        title,
        [(title, PERIOD_COLUMNS, rows, total), (_("By band"), BAND_COLUMNS, band_rows, total)],
        shown,
    )
