"""Reading the import files into tables: CSV (one table), XLSX (one table per sheet), the
provisioning record JSON (a collector, its buses and meters). Problems are appended to the
caller's error list, never raised (``cloud.park.imports.importer`` reports them all at once)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import openpyxl

from cloud.park.imports.schema import COLUMNS, KEY_COLUMN, MAX_ROWS, RowError, Table


def _kind_of(header: list[str], source: str, errors: list[RowError]) -> str | None:
    for kind in ("meters", "units", "collectors", "sites"):
        if KEY_COLUMN[kind] in header:
            return kind
    errors.append(
        RowError(
            source,
            1,
            None,
            "cannot tell what this table holds: it needs a key column "
            "meter_id (meters), unit_no (units), gateway_id (collectors) or site_id (sites)",
        )
    )
    return None


def _table(
    source: str, header_raw: list[Any], body: list[tuple[int, list[Any]]], errors: list[RowError]
) -> Table | None:
    header = [str(h).strip().lower() if h is not None else "" for h in header_raw]
    while header and header[-1] == "":
        header.pop()
    kind = _kind_of(header, source, errors)
    if kind is None:
        return None
    required, optional = COLUMNS[kind]
    known = set(required) | set(optional)
    bad = False
    for col in header:
        if col not in known:
            errors.append(
                RowError(
                    source,
                    1,
                    col or "(blank)",
                    f"unknown column for {kind}; known: {', '.join(sorted(known))}",
                )
            )
            bad = True
    for col in required:
        if col not in header:
            errors.append(RowError(source, 1, col, f"required column missing for {kind}"))
            bad = True
    if len(set(header)) != len(header):
        errors.append(RowError(source, 1, None, "a column appears twice"))
        bad = True
    if bad:
        return None
    table = Table(source, kind)
    for number, cells in body:
        values = {col: cells[i] if i < len(cells) else None for i, col in enumerate(header)}
        values = {k: (v.strip() if isinstance(v, str) else v) for k, v in values.items()}
        if all(v in (None, "") for v in values.values()):
            continue  # blank line
        table.rows.append((number, values))
    return table


def _read_csv(path: Path, errors: list[RowError]) -> list[Table]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        errors.append(RowError(path.name, 1, None, "not UTF-8 text; save the CSV as UTF-8"))
        return []
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        errors.append(RowError(path.name, 1, None, "the file is empty"))
        return []
    if len(rows) > MAX_ROWS:
        errors.append(RowError(path.name, 1, None, f"more than {MAX_ROWS} rows; split the file"))
        return []
    table = _table(path.name, rows[0], list(enumerate(rows[1:], start=2)), errors)
    return [table] if table else []


def _read_xlsx(path: Path, errors: list[RowError]) -> list[Table]:
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        errors.append(RowError(path.name, 1, None, f"cannot read the workbook: {exc}"))
        return []
    tables = []
    try:
        for sheet in book.worksheets:
            rows = [list(r) for r in sheet.iter_rows(values_only=True)]
            source = f"{path.name}:{sheet.title}"
            if not rows or all(c is None for c in rows[0]):
                continue
            if len(rows) > MAX_ROWS:
                errors.append(RowError(source, 1, None, f"more than {MAX_ROWS} rows"))
                continue
            table = _table(source, rows[0], list(enumerate(rows[1:], start=2)), errors)
            if table:
                tables.append(table)
    finally:
        book.close()
    return tables


# A row marked so is applied only when its id is not there yet (a provisioning record's site).
IF_MISSING = "_if_missing"
# A provisioning record's collector row carries its buses ({name: model}) under this key.
BUSES = "_buses"


def _read_record(path: Path, errors: list[RowError]) -> list[Table]:
    """A provisioning record (or a list of them): a collector, its buses and meters."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        errors.append(RowError(path.name, 1, None, f"not a JSON file: {exc}"))
        return []
    records = data if isinstance(data, list) else [data]
    sites = Table(path.name, "sites")
    collectors = Table(path.name, "collectors")
    meters = Table(path.name, "meters")
    for i, rec in enumerate(records, start=1):
        if not isinstance(rec, dict):
            errors.append(RowError(path.name, i, None, "a record must be an object"))
            continue
        # The collector's site, made if the cloud does not know it yet (never renamed here: a
        # sites sheet is where names and zones are kept). A fixed offset such as "+08:00" is
        # not a zone name: such a site starts with the default zone (Asia/Shanghai).
        models = {
            str(b.get("name")): str(b.get("model"))
            for b in rec.get("buses") or []
            if isinstance(b, dict) and b.get("name") and b.get("model")
        }
        zone = rec.get("timezone")
        if not isinstance(zone, str) or zone[:1] in ("+", "-"):
            zone = None
        sites.rows.append(
            (i, {"site_id": rec.get("site"), "name": rec.get("site"), "timezone": zone,
                 IF_MISSING: True})
        )  # fmt: skip
        collectors.rows.append(
            (
                i,
                {
                    "gateway_id": rec.get("id"),
                    "site_id": rec.get("site"),
                    "key_hex": rec.get("key_hex"),
                    "key_id": rec.get("key_id", 1),
                    "mqtt_username": rec.get("mqtt_username"),
                    "name": rec.get("name"),
                    # The collector's buses as its edge.toml has them: meters go on these only.
                    BUSES: models,
                },
            )
        )
        for m in rec.get("meters") or []:
            if not isinstance(m, dict):
                errors.append(RowError(path.name, i, "meters", "a meter must be an object"))
                continue
            meters.rows.append(
                (
                    i,
                    {
                        "meter_id": m.get("id"),
                        "gateway_id": rec.get("id"),
                        "bus": m.get("bus"),
                        "address": m.get("address"),
                        "model": m.get("model") or models.get(str(m.get("bus"))),
                    },
                )
            )
    return [t for t in (sites, collectors, meters) if t.rows]


def read_tables(paths: list[Path], errors: list[RowError]) -> list[Table]:
    """Read every file into tables (errors appended, never raised)."""
    tables: list[Table] = []
    for path in paths:
        suffix = path.suffix.lower()
        if not path.is_file():
            errors.append(RowError(str(path), 1, None, "no such file"))
        elif suffix == ".csv":
            tables.extend(_read_csv(path, errors))
        elif suffix in (".xlsx", ".xlsm"):
            tables.extend(_read_xlsx(path, errors))
        elif suffix == ".json":
            tables.extend(_read_record(path, errors))
        else:
            errors.append(
                RowError(
                    path.name, 1, None, "unknown file type; use .csv, .xlsx or a provisioning .json"
                )
            )
    return tables
