"""仪表批量导入: download the template, upload a sheet, see every row checked (errors like
"第 3 行 表号：重复"), confirm. The preview is the importer's own ``check`` (every rule of the
import, nothing written), so it finds what the import would refuse; nothing is written while any
row is wrong, and the confirm step imports the same uploaded file (``cloud.park.imports``)."""

from __future__ import annotations

import io
import re
import secrets
from pathlib import Path
from typing import Any

from flask import current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from openpyxl import Workbook

from cloud.park.imports import importer
from cloud.park.imports.importer import ImportRejected, import_files
from cloud.park.imports.schema import COLUMNS, RowError
from cloud.park.imports.sheets import read_tables
from cloud.web.office.forms import translate
from cloud.web.office.security import current, db, page
from cloud.web.office.settings import bp

MANAGE = "park.manage"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# Each import column's name on the page (the sheet keeps the importer's English column names).
LABELS: dict[str, Any] = {
    "meter_id": _l("Meter no."),
    "gateway_id": _l("Collector"),
    "bus": _l("Bus"),
    "address": _l("Comm address"),
    "model": _l("Model"),
    "name": _l("Meter name"),
    "unit_no": _l("Unit no."),
    "ct_ratio": _l("CT ratio"),
    "pt_ratio": _l("PT ratio"),
    "prepaid": _l("Prepaid"),
    "tariff_id": _l("Tariff"),
    "price_yuan_per_kwh": _l("Price (yuan/kWh)"),
    "alarm1_yuan": _l("Alarm amount 1 (yuan)"),
    "alarm2_yuan": _l("Alarm amount 2 (yuan)"),
    "hoarding_cap_yuan": _l("Max stored credit (yuan)"),
    "overload_power_w": _l("Overload power (W)"),
}
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def describe(error: RowError) -> str:
    """A row error in the page's language: 第 3 行 表号：重复（与第 2 行相同）."""
    column = str(LABELS.get(error.column or "", error.column or ""))
    message = translate(error.message)
    if column:
        return _(
            "Row %(row)d %(column)s: %(message)s", row=error.row, column=column, message=message
        )
    return _("Row %(row)d: %(message)s", row=error.row, message=message)


def _folder() -> Path:
    folder = Path(current_app.instance_path) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _stored(token: str) -> Path | None:
    if not _TOKEN.match(token or ""):
        return None
    for path in _folder().glob(f"{token}.*"):
        return path
    return None


@page(bp, "/meters/import", MANAGE, methods=("GET",))
def meter_import() -> Any:
    return render_template(
        "office/settings/meter_import.html", columns=COLUMNS["meters"], labels=LABELS, preview=None
    )


@page(bp, "/meters/import/template", MANAGE)
def meter_import_template() -> Any:
    """The sheet to fill in: the importer's column names in row 1 (required ones first)."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "meters"
    required, optional = COLUMNS["meters"]
    ws.append([*required, *optional])
    ws.freeze_panes = "A2"
    out = io.BytesIO()
    wb.save(out)
    out.seek(0)
    return send_file(
        out,
        as_attachment=True,
        download_name="meters-template.xlsx",
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


def _check(path: Path) -> dict[str, Any]:
    """Read and dry-run the file: its meter rows and every problem (nothing stays written)."""
    errors: list[RowError] = []
    tables = read_tables([path], errors)
    other = [t for t in tables if t.kind != "meters"]
    for t in other:
        errors.append(RowError(t.source, 1, None, f"this page imports meters; found {t.kind}"))
    rows = [(n, v) for t in tables if t.kind == "meters" for n, v in t.rows]
    if not errors:
        try:
            importer.check(db(), [path])  # every rule the import applies; writes nothing
        except ImportRejected as exc:
            errors.extend(exc.errors)
    by_row: dict[int, list[str]] = {}
    for e in errors:
        by_row.setdefault(e.row, []).append(describe(e))
    required, optional = COLUMNS["meters"]
    return {
        "rows": rows[:500],
        "more": max(0, len(rows) - 500),
        "count": len(rows),
        "errors": [describe(e) for e in errors],
        "by_row": by_row,
        "columns": [*required, *optional],
    }


@page(bp, "/meters/import", MANAGE, methods=("POST",), endpoint="meter_import_upload")
def meter_import_upload() -> Any:
    upload = request.files.get("file")
    problem = None
    suffix = Path(upload.filename or "").suffix.lower() if upload else ""
    if upload is None or not upload.filename:
        problem = _("Choose a file to upload.")
    elif suffix not in (".xlsx", ".csv"):
        problem = _("Upload an .xlsx or .csv file.")
    if problem is not None:
        return render_template(
            "office/settings/meter_import.html",
            columns=COLUMNS["meters"],
            labels=LABELS,
            preview=None,
            problem=problem,
        ), 422
    assert upload is not None
    token = secrets.token_urlsafe(18)
    path = _folder() / f"{token}{suffix}"
    data = upload.stream.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        problem = _("The file is larger than 10 MB.")
        return render_template(
            "office/settings/meter_import.html",
            columns=COLUMNS["meters"],
            labels=LABELS,
            preview=None,
            problem=problem,
        ), 422
    path.write_bytes(data)
    preview = _check(path)
    if preview["errors"]:
        path.unlink(missing_ok=True)
    status = 422 if preview["errors"] else 200
    return render_template(
        "office/settings/meter_import.html",
        columns=COLUMNS["meters"],
        labels=LABELS,
        preview=preview,
        token=token,
        filename=upload.filename,
    ), status


@page(bp, "/meters/import/confirm", MANAGE, methods=("POST",))
def meter_import_confirm() -> Any:
    path = _stored(request.form.get("token", ""))
    if path is None:
        flash(_("The upload expired; upload the file again."), "error")
        return redirect(url_for("office_settings.meter_import"))
    try:
        with db().begin_nested():
            summary = import_files(db(), [path], current().actor)
    except ImportRejected as exc:
        preview = _check(path) if path.exists() else None
        path.unlink(missing_ok=True)
        flash(_("Nothing was imported: %(n)d row(s) are wrong now.", n=len(exc.errors)), "error")
        return render_template(
            "office/settings/meter_import.html",
            columns=COLUMNS["meters"],
            labels=LABELS,
            preview=preview,
            token=None,
        ), 422
    path.unlink(missing_ok=True)
    flash(_("%(n)d meters imported.", n=summary.counts["meters"]), "success")
    return redirect(url_for("office_settings.meters"))
