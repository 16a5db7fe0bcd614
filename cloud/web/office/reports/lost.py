"""失联表计 (F29) and 失联通讯管理机 (F30): what is out of contact now (``?kind=meter`` or
``gateway``), since when, the last values, where; counts per building as a chart. The figures
are ``cloud.reporting.lost``'s, in the operator's buildings."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from cloud.models import Building
from cloud.reporting import filters, lost
from cloud.reporting.exports import Column
from cloud.web.office.formatting import duration
from cloud.web.office.lists import arg
from cloud.web.office.reports import bp
from cloud.web.office.reports.common import building_id, filter_message, now, site_today, workbook
from cloud.web.office.security import current, db, page

METER_COLUMNS = (
    Column("id", _l("Meter no.")),
    Column("name", _l("Name")),
    Column("building", _l("Building")),
    Column("unit", _l("Unit no.")),
    Column("gateway", _l("Collector")),
    Column("address", _l("Comm address")),
    Column("last_seen_ts", _l("Last seen"), "datetime"),
    Column("since_ts", _l("Lost since"), "datetime"),
    Column("lost_for", _l("Offline duration")),
    Column("balance_micro_yuan", _l("Balance (yuan)"), "yuan"),
    Column("energy_wh", _l("Last register (kWh)"), "kwh"),
)
GATEWAY_COLUMNS = (
    Column("id", _l("Collector")),
    Column("name", _l("Name")),
    Column("building", _l("Building")),
    Column("meters", _l("Meters"), "int"),
    Column("last_heartbeat_ts", _l("Last heartbeat"), "datetime"),
    Column("since_ts", _l("Lost since"), "datetime"),
    Column("lost_for", _l("Offline duration")),
)
COUNT_COLUMNS = (Column("building", _l("Building")), Column("count", _l("Count"), "int"))


def _report() -> tuple[str, dict[str, Any] | None, str | None]:
    kind = "gateway" if arg("kind") == "gateway" else "meter"
    site, _tz, _today = site_today()
    try:
        building = building_id()
    except filters.FilterError as exc:
        return kind, None, filter_message(exc)
    make = lost.gateways if kind == "gateway" else lost.meters
    return kind, make(db(), site_id=site, scope=current().scope, building=building, now=now()), None


def _page(kind: str, report: dict[str, Any] | None, error: str | None) -> Any:
    chart = None
    if report is not None:
        chart = {
            "kind": "bars",
            "labels": [c["building"] or _("No building") for c in report["by_building"]],
            "series": [{"name": _("Out of contact"), "values": [c["count"] for c in report["by_building"]]}],
        }  # fmt: skip
    buildings = db().scalars(
        select(Building).where(current().scope.building_ids_in(Building.id)).order_by(Building.name)
    )
    return render_template(
        "office/reports/lost.html", kind=kind, report=report, error=error, chart=chart,
        buildings=list(buildings),
    ), (200 if error is None else 422)  # fmt: skip


@page(bp, "/lost", "reports.read", endpoint="lost_contact")
def lost_page() -> Any:
    return _page(*_report())


@page(bp, "/lost/export", "reports.read", endpoint="lost_contact_export")
def lost_export() -> Any:
    kind, report, error = _report()
    if report is None:
        return _page(kind, None, error)
    rows = [{**i, "lost_for": duration(i["lost_for_s"])} for i in report["items"]]
    counts = [{**c, "building": c["building"] or _("No building")} for c in report["by_building"]]
    title = _("Collectors out of contact") if kind == "gateway" else _("Meters out of contact")
    columns = GATEWAY_COLUMNS if kind == "gateway" else METER_COLUMNS
    totals = {"count": report["total"]}
    return workbook(
        title,
        [(title, columns, rows, None), (_("Per building"), COUNT_COLUMNS, counts, totals)],
        [(_("Building"), arg("building"))],
    )
