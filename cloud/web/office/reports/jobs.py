"""A background export's page (F34): the progress bar while it runs (the page asks for the
state every second, htmx), then the download. Anyone who could have made the same export may
open it (``export_jobs.Viewer``); anyone else gets a 404."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, send_file

from cloud.errors import NotFoundError
from cloud.web.office.reports import bp
from cloud.web.office.reports.common import jobs, viewer
from cloud.web.office.security import page

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _status(job_id: str) -> dict[str, Any]:
    try:
        return jobs().status(job_id, viewer())
    except NotFoundError:
        abort(404)


@page(bp, "/exports/<job_id>", None, endpoint="export_job")
def export_job(job_id: str) -> Any:
    return render_template("office/reports/export_job.html", job=_status(job_id))


@page(bp, "/exports/<job_id>/status", None, endpoint="export_job_status")
def export_job_status(job_id: str) -> Any:
    return render_template("office/reports/_export_progress.html", job=_status(job_id))


@page(bp, "/exports/<job_id>/download", None, endpoint="export_job_download")
def export_job_download(job_id: str) -> Any:
    try:
        path, name = jobs().file(job_id, viewer())
    except NotFoundError:
        abort(404)
    return send_file(path, mimetype=XLSX, as_attachment=True, download_name=name, max_age=0)
