"""Credit runway (B07): prepaid meters of open accounts by the days of credit left, fewest
first, with the tenant's name and phone so the office can call; a chart of how many meters
have how many days; ``?within=`` keeps those with at most that many days."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from cloud.models import Building
from cloud.reporting import filters, runway
from cloud.reporting.exports import Column
from cloud.web.office.lists import arg, int_arg
from cloud.web.office.reports import bp
from cloud.web.office.reports.common import building_id, filter_message, now, site_today, workbook
from cloud.web.office.reports.labels import RUNWAY
from cloud.web.office.security import current, db, page

COLUMNS = (
    Column("runway_days", _l("Days of credit left"), "int"),
    Column("meter", _l("Meter no.")),
    Column("building", _l("Building")),
    Column("unit", _l("Unit no.")),
    Column("account", _l("Account")),
    Column("customer", _l("Tenant")),
    Column("phone", _l("Phone")),
    Column("balance_micro_yuan", _l("Balance (yuan)"), "yuan"),
    Column("today_wh", _l("Today (kWh)"), "kwh"),
)


def _report() -> tuple[dict[str, Any] | None, str | None]:
    site, _tz, _today = site_today()
    within = int_arg("within")
    try:
        building = building_id()
    except filters.FilterError as exc:
        return None, filter_message(exc)
    return runway.runway_list(
        db(), site_id=site, scope=current().scope, building=building,
        within_days=within if within is not None and 0 <= within <= 3650 else None, now=now(),
    ), None  # fmt: skip


@page(bp, "/runway", "reports.read", endpoint="runway")
def runway_page() -> Any:
    report, error = _report()
    chart = None
    if report is not None:
        chart = {"kind": "bars", "labels": [str(RUNWAY[b["bucket"]]) for b in report["buckets"]],
                 "series": [{"name": _("Meters"), "values": [b["count"] for b in report["buckets"]]}]}  # fmt: skip
    buildings = db().scalars(
        select(Building).where(current().scope.building_ids_in(Building.id)).order_by(Building.name)
    )
    return render_template(
        "office/reports/runway.html", report=report, error=error, chart=chart,
        buildings=list(buildings),
    ), (200 if error is None else 422)  # fmt: skip


@page(bp, "/runway/export", "reports.read", endpoint="runway_export")
def runway_export() -> Any:
    report, error = _report()
    if report is None:
        return render_template(
            "office/reports/runway.html", report=None, error=error, chart=None, buildings=[]
        ), 422
    title = _("Credit runway")
    shown = [(_("Building"), arg("building")), (_("At most days left"), arg("within"))]
    totals = {"balance_micro_yuan": sum(i["balance_micro_yuan"] for i in report["items"])}
    return workbook(title, [(title, COLUMNS, report["items"], totals)], shown)
