"""The one ``.xlsx`` exporter, for every list and report (F34).

openpyxl write-only mode (rows stream to disk, constant memory), so a 100,000-row export costs
what openpyxl itself costs. Each sheet has a title row (the site's name, the export's title
and the filter in force), a frozen header row, and typed cells:

=========== ============================== =====================================
kind        value given                    cell
=========== ============================== =====================================
``yuan``    integer micro-yuan             exact decimal yuan, ``#,##0.00``
``kwh``     integer Wh                     exact decimal kWh, ``#,##0.000``
``int``     integer                        ``0``
``datetime``UTC epoch seconds              a real date-time in the site's zone
``date``    ``datetime.date``              a real date
``bp``      integer basis points (1/10000) exact decimal fraction, ``0.00%``
``text``    anything                       its text
=========== ============================== =====================================

A formatted data cell is its column's one styled cell with the row's value in it (openpyxl
writes a row out as soon as it is appended, so the cell can be reused); text and integers are
plain values (``@`` and ``0`` are the header's hint, General shows them the same). The formats
cost nothing per row, and an export takes about what openpyxl write-only takes for the same values
(``gridvend bench reports``). ``progress(rows_written)`` is called every ``PROGRESS_EVERY``
rows (background exports show it).

Titles are translated with the same catalog as the pages (pass lazy strings or ``_()``
results; call inside a request, or inside ``flask_babel.force_locale`` in a background job).

    columns = [Column("meter", _l("Meter no.")), Column("balance", _l("Balance (yuan)"), "yuan")]
    return xlsx_response(_("Meters"), columns, rows, site_name=..., filters=[...])
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any
from zoneinfo import ZoneInfo

from flask import send_file
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

FORMATS = {
    "yuan": "#,##0.00",
    "kwh": "#,##0.000",
    "int": "0",
    "datetime": "yyyy-mm-dd hh:mm:ss",
    "date": "yyyy-mm-dd",
    "bp": "0.00%",
    "text": "@",
}
_WIDTHS = {"yuan": 14, "kwh": 14, "int": 10, "datetime": 20, "date": 12, "bp": 10, "text": 18}
PROGRESS_EVERY = 1000
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
_HEADER_FILL = PatternFill("solid", fgColor="DDE5F0")


@dataclass(frozen=True)
class Column:
    """One column: the row key it reads, its (translatable) title, its kind (see the table)."""

    key: str
    title: object
    kind: str = "text"
    width: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FORMATS:
            raise ValueError(f"unknown column kind {self.kind!r}; use one of {', '.join(FORMATS)}")


def sheet_name(title: object) -> str:
    """An Excel-legal sheet name (31 characters, none of []:*?/\\)."""
    name = _BAD_SHEET_CHARS.sub(" ", str(title)).strip() or "Sheet1"
    return name[:31]


def cell_value(kind: str, value: Any, zone: ZoneInfo) -> Any:
    """The cell value for ``value`` of ``kind``: exact decimals for money and energy."""
    if value is None:
        return None
    if kind == "yuan":
        return Decimal(int(value)) / Decimal(1_000_000)
    if kind == "kwh":
        return Decimal(int(value)) / Decimal(1000)
    if kind == "datetime":
        return dt.datetime.fromtimestamp(int(value), zone).replace(tzinfo=None)
    if kind == "int":
        return int(value)
    if kind == "date":
        return value
    if kind == "bp":
        return Decimal(int(value)) / Decimal(10_000)
    return str(value)


_MILLION, _THOUSAND, _TEN_THOUSAND = Decimal(1_000_000), Decimal(1000), Decimal(10_000)
# The kinds whose cells carry a number format; text and integers read right in General.
_STYLED = frozenset({"yuan", "kwh", "datetime", "date", "bp"})


def _converter(kind: str, zone: ZoneInfo) -> Callable[[Any], Any]:
    """``cell_value`` for one kind, as a function (a data cell's value, never None)."""
    if kind == "yuan":
        return lambda v: Decimal(int(v)) / _MILLION
    if kind == "kwh":
        return lambda v: Decimal(int(v)) / _THOUSAND
    if kind == "bp":
        return lambda v: Decimal(int(v)) / _TEN_THOUSAND
    if kind == "datetime":
        return lambda v: dt.datetime.fromtimestamp(int(v), zone).replace(tzinfo=None)
    if kind == "int":
        return int
    if kind == "date":
        return lambda v: v
    return str


def _cell(ws: WriteOnlyWorksheet, value: Any, kind: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value=value)
    cell.number_format = FORMATS[kind]
    return cell


def write_sheet(
    wb: Workbook,
    title: object,
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    site_name: str = "",
    filters: Sequence[tuple[object, object]] = (),
    timezone: str = "Asia/Shanghai",
    totals: Mapping[str, Any] | None = None,
    totals_label: object = "",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Add one sheet to a write-only workbook; returns the number of data rows written."""
    zone = ZoneInfo(timezone)
    ws = wb.create_sheet(sheet_name(title))
    for i, col in enumerate(columns):
        letter = _column_letter(i)
        ws.column_dimensions[letter].width = col.width or _WIDTHS[col.kind]
    ws.freeze_panes = "A3"
    heading = " · ".join(str(p) for p in (site_name, title) if p)
    filter_text = "; ".join(
        f"{label}: {value}" for label, value in filters if value not in ("", None)
    )
    first = WriteOnlyCell(ws, value=f"{heading}  ({filter_text})" if filter_text else heading)
    first.font = Font(bold=True, size=12)
    ws.append([first])
    header = []
    for col in columns:
        c = WriteOnlyCell(ws, value=str(col.title))
        c.font = Font(bold=True)
        c.fill = _HEADER_FILL
        c.alignment = Alignment(horizontal="center")
        header.append(c)
    ws.append(header)
    # One styled cell per formatted column, refilled for every row (see the module docstring);
    # text and integers go in as plain values (General shows them as they are), each column's
    # conversion chosen once.
    cells = [
        (i, _cell(ws, None, c.kind) if c.kind in _STYLED else None, c.key, _converter(c.kind, zone))
        for i, c in enumerate(columns)
    ]
    line: list[Any] = [cell for _i, cell, _key, _conv in cells]
    count = 0
    for row in rows:
        get = row.get
        for i, cell, key, conv in cells:
            value = get(key)
            if cell is None:
                line[i] = None if value is None else conv(value)
            else:
                cell.value = None if value is None else conv(value)
        ws.append(line)
        count += 1
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(count)
    if totals:
        line = []
        for i, col in enumerate(columns):
            if col.key in totals:
                c = _cell(ws, cell_value(col.kind, totals[col.key], zone), col.kind)
            else:
                c = WriteOnlyCell(ws, value=str(totals_label) if i == 0 else None)
            c.font = Font(bold=True)
            line.append(c)
        ws.append(line)
    return count


def _column_letter(index: int) -> str:
    return str(get_column_letter(index + 1))


def write_workbook(
    out: IO[bytes],
    title: object,
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    **options: Any,
) -> int:
    """Write a one-sheet workbook to ``out``; returns the data rows written."""
    wb = Workbook(write_only=True)
    count = write_sheet(wb, title, columns, rows, **options)
    wb.save(out)
    return count


def xlsx_response(
    title: object,
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    filename: str | None = None,
    **options: Any,
) -> Any:
    """A download of the workbook, streamed from a temporary file (spooled in memory up to
    8 MB, then on disk) in chunks. The file name is the title and today's date."""

    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    write_workbook(spool, title, columns, rows, **options)
    spool.seek(0)
    name = filename or f"{sheet_name(title)}-{dt.date.today().isoformat()}.xlsx"
    return send_file(
        spool,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=name,
        max_age=0,
    )
