"""`gridvend bench import`: importing a park of 10,000 meters on 50 collectors (issue 9 target:
at most 10 s on SQLite, with progress on the terminal).

In one run, each on a fresh migrated SQLite database:

- ``raw_bulk_insert_s`` (the anchor): the same rows — units, meters, purchase sequences, already
  as column dicts — inserted with one ``executemany`` per table: what the database itself needs.
- ``cli_import_s``: ``gridvend cloud import sites.csv collectors.csv units.csv meters.csv`` as a
  person runs it (a process of its own: start-up, reading the CSVs, checking every row against
  the others and the database, writing, commit), wall time; its progress goes to stderr.
- ``import_over_raw`` = cli_import_s / raw_bulk_insert_s.

Checks that fail the run: the import must bring in every row (counted in the database), and the
same sheets with three bad rows (a duplicate meter id, a Modbus address 999, an unknown model)
must be refused with all three named and nothing imported.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from cloud.db import Database
from cloud.models import Meter, PurchaseSequence, Unit
from cloud.park import inventory

TARGET_S = 10.0
KEY = "ab" * 32
MODEL = "acrel-ddsy1352"


def _line(name: str, value: Any) -> None:
    print(f"{name}: {value}", flush=True)


def write_park(folder: Path, meters: int, collectors: int, buses: int = 2) -> list[Path]:
    """CSV sheets of a park: one site, ``collectors`` collectors, a unit per meter."""
    per_gateway = -(-meters // collectors)
    per_bus = -(-per_gateway // buses)
    if per_bus > 247:
        raise SystemExit(f"{per_bus} meters per bus; a Modbus bus takes at most 247")
    sites = "site_id,name,timezone,price_yuan_per_kwh\nbench,Bench Park,Asia/Shanghai,1.2\n"
    gws = ["gateway_id,site_id,key_hex,key_id,name"]
    gws += [f"gw-{g:03d},bench,{KEY},1,Floor {g}" for g in range(collectors)]
    units = ["site_id,building,floor,unit_no,name"]
    rows = ["meter_id,gateway_id,bus,address,model,unit_no,ct_ratio,alarm1_yuan"]
    for i in range(meters):
        g, k = divmod(i, per_gateway)
        bus, address = divmod(k, per_bus)
        units.append(f"bench,B{g // 10},{g % 10},U-{i:05d},Unit {i}")
        rows.append(f"m-{i:05d},gw-{g:03d},bus{bus + 1},{address + 1},{MODEL},U-{i:05d},1,50")
    paths = []
    for name, text in (
        ("sites", sites),
        ("collectors", "\n".join(gws) + "\n"),
        ("units", "\n".join(units) + "\n"),
        ("meters", "\n".join(rows) + "\n"),
    ):
        path = folder / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _fresh(url: str) -> Any:
    database = Database(url)
    database.upgrade()
    return database


def raw_bulk_insert(url: str, meters: int, collectors: int) -> float:
    """The anchor: the same units, meters and purchase sequences as column dicts, one
    executemany per table (the site, collectors, buses and floors made first, untimed)."""
    database = _fresh(url)
    per_gateway = -(-meters // collectors)
    per_bus = -(-per_gateway // 2)
    try:
        with database.session() as s:
            inventory.upsert_site(s, "bench", "Bench Park")
            floors, buses = {}, {}
            for g in range(collectors):
                inventory.upsert_gateway(s, f"gw-{g:03d}", "bench", KEY)
                floors[g] = inventory.upsert_place(s, "bench", f"B{g // 10}", str(g % 10))[1].id
                for b in (1, 2):
                    buses[(g, b)] = inventory.upsert_bus(s, f"gw-{g:03d}", f"bus{b}").id
        units = [
            {"site_id": "bench", "floor_id": floors[i // per_gateway], "number": f"U-{i:05d}",
             "name": f"Unit {i}"}
            for i in range(meters)
        ]  # fmt: skip
        started = time.perf_counter()
        with database.session() as s:
            s.execute(insert(Unit), units)
            ids = dict(s.execute(select(Unit.number, Unit.id)).all())
            rows = []
            for i in range(meters):
                g, k = divmod(i, per_gateway)
                rows.append(
                    {"id": f"m-{i:05d}", "gateway_id": f"gw-{g:03d}",
                     "bus_id": buses[(g, k // per_bus + 1)], "address": str(k % per_bus + 1),
                     "model": MODEL, "unit_id": ids[f"U-{i:05d}"], "settings": {},
                     "alarm1_micro_yuan": 50_000_000}
                )  # fmt: skip
            s.execute(insert(Meter), rows)
            s.execute(insert(PurchaseSequence), [{"meter_id": r["id"], "last_no": 0} for r in rows])
        return time.perf_counter() - started
    finally:
        database.dispose()


def cli_import(url: str, paths: list[Path]) -> tuple[float, subprocess.CompletedProcess[str]]:
    _fresh(url).dispose()
    script = Path(sys.executable).with_name("gridvend")
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "gridvend.cli"]
    command = [*launcher, "cloud", "import", "--database", url]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *map(str, paths)], capture_output=True, text=True, timeout=600, check=False
    )
    return time.perf_counter() - started, done


def _count_meters(url: str) -> int:
    database = Database(url)
    try:
        with database.session(readonly=True) as s:
            return int(s.scalar(select(func.count()).select_from(Meter)) or 0)
    finally:
        database.dispose()


def _spoil(meters_csv: Path) -> None:
    """Three bad rows: row 3 repeats row 2's meter id, row 5 has address 999, row 7 a model
    nobody knows."""
    lines = meters_csv.read_text(encoding="utf-8").splitlines()
    first_id = lines[1].split(",")[0]
    cells = lines[2].split(",")
    lines[2] = ",".join([first_id, *cells[1:]])
    cells = lines[4].split(",")
    lines[4] = ",".join([*cells[:3], "999", *cells[4:]])
    cells = lines[6].split(",")
    lines[6] = ",".join([*cells[:4], "acme-9000", *cells[5:]])
    meters_csv.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridvend bench import", description=__doc__)
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--collectors", type=int, default=50)
    args = parser.parse_args(argv)
    status = 0
    with tempfile.TemporaryDirectory(prefix="gv-bench-import-") as tmp:
        folder = Path(tmp)
        paths = write_park(folder, args.meters, args.collectors)
        raw = raw_bulk_insert(f"sqlite:///{folder / 'raw.db'}", args.meters, args.collectors)
        url = f"sqlite:///{folder / 'import.db'}"
        took, done = cli_import(url, paths)
        sys.stderr.write(done.stderr)
        _line("meters", args.meters)
        _line("collectors", args.collectors)
        _line("raw_bulk_insert_s", f"{raw:.3f} (anchor)")
        _line("cli_import_s", f"{took:.2f} (target <= {TARGET_S:.0f})")
        _line("import_over_raw", f"{took / raw:.1f}")
        imported = _count_meters(url) if done.returncode == 0 else 0
        _line("meters_imported", imported)
        if done.returncode != 0 or imported != args.meters:
            _line("check_import", f"FAILED (exit {done.returncode}): {done.stderr[-500:]}")
            status = 1
        if took > TARGET_S:
            status = 1
        _spoil(paths[-1])
        bad_url = f"sqlite:///{folder / 'bad.db'}"
        bad_took, bad = cli_import(bad_url, paths)
        named = all(f"row {n}," in bad.stderr for n in (3, 5, 7))
        nothing = _count_meters(bad_url) == 0
        _line("bad_sheet_s", f"{bad_took:.2f}")
        _line("bad_sheet_refused", f"{int(bad.returncode == 1 and named and nothing)} "
                                   "(exit 1, rows 3, 5 and 7 named, nothing imported)")  # fmt: skip
        if not (bad.returncode == 1 and named and nothing):
            _line("check_bad_sheet", f"FAILED: {bad.stderr[-800:]}")
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
