"""归档 (F03): the archive job's runs (when, up to which cut-off, readings and charges moved,
where the file is, whether it is there and intact), and an archived month read back from its
files: per meter and day the energy and charges recomputed from the archived readings beside
the rollups the reports use (``cloud.reporting.restore``); the month's readings exported
(in the background: a month of a park is many rows)."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from cloud.errors import ServiceError
from cloud.reporting import filters, restore
from cloud.reporting.exports import Column
from cloud.web.office.lists import arg
from cloud.web.office.reports import bp
from cloud.web.office.reports.common import export, filter_message, site_today, workbook
from cloud.web.office.security import current, db, page

RUN_COLUMNS = (
    Column("created_ts", _l("Run at"), "datetime"),
    Column("cutoff_ts", _l("Readings before"), "datetime"),
    Column("first_day", _l("From")),
    Column("last_day", _l("To")),
    Column("rows", _l("Readings moved"), "int"),
    Column("charges_micro_yuan", _l("Charges moved (yuan)"), "yuan"),
    Column("path", _l("File"), width=60),
    Column("sha256", _l("SHA-256"), width=66),
    Column("intact", _l("Intact")),
)
READING_COLUMNS = (
    Column("meter_id", _l("Meter no.")),
    Column("ts", _l("Reading time"), "datetime"),
    Column("energy_wh", _l("Register (kWh)"), "kwh"),
    Column("power_w", _l("Power (W)"), "int"),
    Column("charge_micro_yuan", _l("Charge (yuan)"), "yuan"),
    Column("balance_micro_yuan", _l("Balance (yuan)"), "yuan"),
    Column("gateway_id", _l("Collector")),
)


def _month() -> tuple[dict[str, Any] | None, str | None]:
    if not arg("month"):
        return None, None
    site, _tz, _today = site_today()
    try:
        first = filters.parse_month(arg("month"))
        assert first is not None
        return restore.month(db(), first, site_id=site, scope=current().scope), None
    except filters.FilterError as exc:
        return None, filter_message(exc)
    except ServiceError as exc:
        return None, _("The archive file cannot be read: %(reason)s", reason=exc.message)


@page(bp, "/archive", "reports.read", endpoint="archive")
def archive_page() -> Any:
    restored, error = _month()
    chart = None
    if restored is not None:
        per_day: dict[str, int] = {}
        for r in restored["rows"]:
            per_day[r["day"].isoformat()] = per_day.get(r["day"].isoformat(), 0) + r["energy_wh"]
        chart = {"kind": "bars", "unit": "kwh", "labels": sorted(per_day),
                 "series": [{"name": _("Energy read back"), "values": [per_day[d] for d in sorted(per_day)]}]}  # fmt: skip
    return render_template(
        "office/reports/archive.html", runs=restore.runs(db(), check=bool(arg("check"))),
        restored=restored, error=error, chart=chart,
    ), (200 if error is None else 422)  # fmt: skip


@page(bp, "/archive/export", "reports.read", endpoint="archive_export")
def archive_export() -> Any:
    site, _tz, _today = site_today()
    scope = current().scope
    try:
        first = filters.parse_month(arg("month") or "")
    except filters.FilterError as exc:
        return render_template(
            "office/reports/archive.html", runs=[], restored=None, error=filter_message(exc),
            chart=None,
        ), 422  # fmt: skip
    if first is None:  # no month: the runs themselves
        title = _("Archive runs")
        listed = [
            {**r, "intact": _("Yes") if r["intact"] else _("No")}
            for r in restore.runs(db(), check=True)
        ]
        return workbook(title, [(title, RUN_COLUMNS, listed, None)])
    count = sum(
        r.rows for r in restore.covering(db(), site, first, filters.month_end(first))
    )  # at most this many: the month's share of the files

    def rows(s: Session) -> Any:
        return restore.month_readings(s, first, site_id=site, scope=scope)

    return export(
        _("Archived readings %(month)s", month=arg("month")), READING_COLUMNS, rows, count=count,
        permission="reports.read", filters_shown=[(_("Month"), arg("month"))],
    )  # fmt: skip
