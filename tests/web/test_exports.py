"""The one .xlsx exporter (cloud/reporting/exports.py), read back with openpyxl: money and energy
are exact decimals with the accounting formats, times are real date-times in the site's zone, a
title row names the site and the filter, the header is frozen, the sheet name is Excel-legal,
totals close the sheet, and the rows stream (write-only mode)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import openpyxl
import pytest
from openpyxl import Workbook

from cloud.reporting.exports import Column, sheet_name, write_sheet, write_workbook

COLUMNS = (
    Column("meter", "表号"),
    Column("balance", "剩余金额（元）", "yuan"),
    Column("energy", "用电量（kWh）", "kwh"),
    Column("ts", "时间", "datetime"),
    Column("day", "日期", "date"),
    Column("count", "笔数", "int"),
)


def _book(rows: list[dict[str, object]], **options: object) -> openpyxl.Workbook:
    out = io.BytesIO()
    write_workbook(out, "售电记录", COLUMNS, rows, **options)  # type: ignore[arg-type]
    out.seek(0)
    return openpyxl.load_workbook(out)


def test_money_and_energy_are_exact_with_their_formats_and_times_are_local() -> None:
    rows = [
        {
            "meter": "m-1",
            "balance": 1_234_567_890,  # 1,234.56789 yuan: kept exact, shown to the fen
            "energy": 1_234_567,  # 1,234.567 kWh
            "ts": 1_767_225_600,  # 2026-01-01T00:00:00Z = 08:00 in Shanghai
            "day": dt.date(2026, 1, 1),
            "count": 3,
        }
    ]
    ws = _book(rows, site_name="影视基地", filters=[("楼栋", "A"), ("空", "")])["售电记录"]
    assert ws["A1"].value == "影视基地 · 售电记录  (楼栋: A)"
    assert [c.value for c in ws[2]] == [c.title for c in COLUMNS]
    assert ws.freeze_panes == "A3"
    balance, energy, ts, day, count = (ws.cell(3, i) for i in range(2, 7))
    assert Decimal(str(balance.value)) == Decimal("1234.56789")
    assert balance.number_format == "#,##0.00"
    assert Decimal(str(energy.value)) == Decimal("1234.567")
    assert energy.number_format == "#,##0.000"
    assert ts.value == dt.datetime(2026, 1, 1, 8, 0, 0)
    assert ts.is_date
    assert day.value == dt.datetime(2026, 1, 1)
    assert count.value == 3


def test_totals_close_the_sheet_and_empty_values_stay_empty() -> None:
    rows = [{"meter": "m-1", "balance": 500_000}, {"meter": "m-2", "balance": None}]
    ws = _book(rows, totals={"balance": 500_000}, totals_label="合计")["售电记录"]
    assert ws.max_row == 5
    assert ws.cell(4, 2).value is None
    assert ws.cell(5, 1).value == "合计"
    assert Decimal(str(ws.cell(5, 2).value)) == Decimal("0.5")


def test_sheet_names_are_excel_legal() -> None:
    assert sheet_name("售电/退电 [2026]: 日报?") == "售电 退电  2026   日报"
    assert len(sheet_name("x" * 40)) == 31


def test_rows_stream_from_a_generator_and_are_counted() -> None:
    wb = Workbook(write_only=True)
    count = write_sheet(wb, "Meters", COLUMNS, ({"meter": f"m-{i}"} for i in range(2500)))
    out = io.BytesIO()
    wb.save(out)
    assert count == 2500
    out.seek(0)
    assert sum(1 for _ in openpyxl.load_workbook(out, read_only=True)["Meters"].iter_rows()) == 2502


def test_an_unknown_column_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown column kind"):
        Column("x", "X", "money")
