"""One side of ``gridvend bench reports``' export race, in a process of its own so that its
peak memory (``getrusage``) is the export's: ``python -m bench.reports_export ours|openpyxl
ROWS OUT``. ``ours`` writes the rows through ``cloud.reporting.exports.write_workbook``;
``openpyxl`` appends the same cell values (Decimal yuan and kWh, local date-times) to an
openpyxl write-only sheet and nothing else. Prints ``{"seconds", "rss_mb"}``."""

from __future__ import annotations

import datetime as dt
import json
import resource
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook

from cloud.reporting.exports import Column, write_workbook

TZ = ZoneInfo("Asia/Shanghai")

EXPORT_COLUMNS = (
    Column("meter", "表号"),
    Column("ts", "抄表时间", "datetime"),
    Column("energy_wh", "示值（kWh）", "kwh"),
    Column("charge", "电费（元）", "yuan"),
    Column("balance", "剩余金额（元）", "yuan"),
    Column("power_w", "功率（W）", "int"),
    Column("gateway", "通讯管理机"),
)


def _source(rows: int) -> Iterator[dict[str, Any]]:
    t0 = 1_767_225_600
    for i in range(rows):
        yield {"meter": f"m{i % 1000:04d}", "ts": t0 + i * 60, "energy_wh": 1_000_000 + i * 37,
               "charge": i * 1_234 + 5, "balance": 500_000_000 - i * 999, "power_w": 800 + i % 400,
               "gateway": f"gw{i % 20:02d}"}  # fmt: skip


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not getrusage's ru_maxrss: Linux carries that
    over the exec from the parent, whose own peak (a seeded database) would be counted."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(mode: str, rows: int, out: str) -> None:
    t0 = time.perf_counter()
    if mode == "ours":
        with open(out, "wb") as f:
            write_workbook(f, "抄表记录", EXPORT_COLUMNS, _source(rows), site_name="Bench park",
                           filters=[("月份", "2026-01")], totals={"charge": 0}, totals_label="合计")  # fmt: skip
    else:
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("抄表记录")
        million, thousand = Decimal(1_000_000), Decimal(1000)
        for r in _source(rows):
            ws.append([r["meter"], dt.datetime.fromtimestamp(r["ts"], TZ).replace(tzinfo=None),
                       Decimal(r["energy_wh"]) / thousand, Decimal(r["charge"]) / million,
                       Decimal(r["balance"]) / million, r["power_w"], r["gateway"]])  # fmt: skip
        wb.save(out)
    elapsed = time.perf_counter() - t0
    rss_mb = _peak_rss_mb()
    print(json.dumps({"seconds": elapsed, "rss_mb": rss_mb}))


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]), sys.argv[3])
