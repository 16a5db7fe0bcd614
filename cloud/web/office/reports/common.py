"""What every report page shares: its filters read from the query string and refused in the
page's language (``cloud.reporting.filters`` raises, this module words the refusal), the labels
of bands, scales and comparisons, the chart data, and 导出 Excel: through the one exporter,
in the request for a small export and in the background (``cloud.reporting.export_jobs``) for
one of more than ``THRESHOLD_ROWS`` rows, whose request returns at once with the job's page.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from flask import current_app, redirect, send_file, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from openpyxl import Workbook
from sqlalchemy.orm import Session

from cloud.localtime import site_zone, today
from cloud.models import now_ts
from cloud.reporting import export_jobs, filters
from cloud.reporting.exports import Column, sheet_name, write_sheet, write_workbook, xlsx_response
from cloud.web.i18n import current_locale
from cloud.web.office.lists import arg, site_name
from cloud.web.office.security import current, database, db

BAND_LABELS: dict[str, Any] = {
    "sharp": _l("Critical peak"),
    "peak": _l("Peak"),
    "flat": _l("Flat"),
    "valley": _l("Valley"),
    "deep_valley": _l("Deep valley"),
    "single": _l("Single price"),
    "unsplit": _l("Not split by band"),
}
PERIOD_LABELS: dict[str, Any] = {"day": _l("Daily"), "month": _l("Monthly"), "year": _l("Yearly")}
SCALE_LABELS: dict[str, Any] = {"day": _l("Day"), "month": _l("Month"), "year": _l("Year")}
COMPARE_LABELS: dict[str, Any] = {
    "none": _l("No comparison"),
    "yoy": _l("Year on year"),
    "pop": _l("Period on period"),
}


def filter_message(exc: filters.FilterError) -> str:
    """A refused filter in the page's language, naming what was wrong and what to do."""
    p = exc.params
    if exc.code == "end_before_start":
        return _(
            "The end date %(end)s is before the start date %(start)s: choose an end on or after the start.",
            **p,
        )
    if exc.code == "range_too_long":
        return _(
            "A report covers at most %(years)d years; %(start)s to %(end)s is longer. Choose a shorter range.",
            **p,
        )
    if exc.code == "bad_date":
        return _("%(value)s is not a date; use the form YYYY-MM-DD (a month: YYYY-MM).", **p)
    if exc.code == "unknown_building":
        return _(
            "Building %(value)s does not exist (or is not one of yours). Choose a building from the list.",
            **p,
        )
    if exc.code == "unknown_floor":
        return _("Floor %(value)s does not exist (or is not in your buildings).", **p)
    if exc.code == "unknown_unit":
        return _("Unit %(value)s does not exist (or is not in your buildings).", **p)
    if exc.code == "unknown_meter":
        return _("Meter %(value)s does not exist (or is not in your buildings).", **p)
    if exc.code == "unknown_place":
        return _("%(value)s is not a place of the tree; choose one from the tree.", **p)
    return exc.message  # pragma: no cover - every code above


def site_today() -> tuple[str | None, dt.tzinfo, dt.date]:
    """The site (``?site=`` or the only one), its zone and its local today."""
    site, tz = site_zone(db(), arg("site") or None)
    return site, tz, today(tz)


def date_range(default_start: dt.date, default_end: dt.date) -> filters.Range:
    """``?from=&to=`` (defaults when absent), checked: FilterError when refused."""
    start = filters.parse_date(arg("from"), "from") or default_start
    end = filters.parse_date(arg("to"), "to") or default_end
    return filters.date_range(start, end)


def building_id() -> int | None:
    """``?building=`` checked against the operator's buildings (FilterError when unknown)."""
    found = filters.building(db(), current().scope, arg("building"))
    return found.id if found is not None else None


def viewer() -> export_jobs.Viewer:
    user = current()
    return export_jobs.Viewer(user.operator.id, user.permissions, user.scope.building_ids)


def jobs() -> export_jobs.ExportJobs:
    """The app's background exports (config ``EXPORTS_DIR``, else ``<instance>/exports``)."""
    app = current_app
    found = app.extensions.get("gridvend.export_jobs")
    if found is None:
        folder = app.config.get("EXPORTS_DIR") or Path(app.instance_path) / "exports"
        found = export_jobs.ExportJobs(folder)
        app.extensions["gridvend.export_jobs"] = found
    assert isinstance(found, export_jobs.ExportJobs)
    return found


def export(
    title: object,
    columns: Sequence[Column],
    rows: Callable[[Session], Iterable[Mapping[str, Any]]],
    *,
    count: int,
    permission: str | None,
    filters_shown: Sequence[tuple[object, object]] = (),
    totals: Mapping[str, Any] | None = None,
) -> Any:
    """导出 Excel: a download now, or a background job (more than ``THRESHOLD_ROWS`` rows)
    whose page shows the progress. ``rows(session)`` makes the rows (in the request's session,
    or in the job's own); ``totals`` closes the sheet."""
    options: dict[str, Any] = {
        "site_name": site_name(),
        "filters": [(str(k), str(v)) for k, v in filters_shown if v not in ("", None)],
        "totals": totals,
        "totals_label": _("Total"),
    }
    name = f"{sheet_name(title)}-{dt.date.today().isoformat()}.xlsx"
    if count <= export_jobs.THRESHOLD_ROWS:
        return xlsx_response(title, columns, rows(db()), filename=name, **options)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    lang, store, heading = current_locale(), database(), str(title)

    def work(out: IO[bytes], progress: Callable[[int], None]) -> int:
        with app.app_context(), force_locale(lang), store.session(readonly=True) as s:
            return write_workbook(out, heading, columns, rows(s), progress=progress, **options)

    job = jobs().start(
        owner=viewer(), permission=permission, title=heading, filename=name, total=count, work=work
    )
    return redirect(url_for("office_reports.export_job", job_id=job), 303)


def workbook(
    title: object,
    sheets: Sequence[
        tuple[object, Sequence[Column], Iterable[Mapping[str, Any]], Mapping[str, Any] | None]
    ],
    filters_shown: Sequence[tuple[object, object]] = (),
) -> Any:
    """A report of several tables as one workbook, a sheet each (title, columns, rows, totals),
    each with the site, its title and the filter in its title row."""
    wb = Workbook(write_only=True)
    shown = [(str(k), str(v)) for k, v in filters_shown if v not in ("", None)]
    for sheet_title, columns, rows, totals in sheets:
        write_sheet(
            wb, sheet_title, columns, rows, site_name=site_name(), filters=shown, totals=totals,
            totals_label=_("Total"),
        )  # fmt: skip
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    wb.save(spool)
    spool.seek(0)
    return send_file(
        spool,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"{sheet_name(title)}-{dt.date.today().isoformat()}.xlsx",
        max_age=0,
    )


def now() -> int:
    return now_ts()
