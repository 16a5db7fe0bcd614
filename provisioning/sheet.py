"""The site workbook of ``gridvend provision site``: the cloud's import template (sheets of sites,
collectors, units, meters: ``cloud.park.imports``) plus one sheet the cloud does not hold, the
collectors' **buses**, which only the collector's edge.toml needs.

=========== ==================================================================================
buses       gateway_id*, bus*, url* (``tcp://host:port``, ``modbus-tcp://…`` or a serial device),
            model*, baud, parity (N/E/O), stop_bits. Told apart from the other sheets by its
            ``url`` column.
collectors  as the import template, without ``key_hex`` / ``key_id`` / ``mqtt_username``:
            provisioning makes the key and the broker credentials.
=========== ==================================================================================

:func:`read` splits the workbook: the buses come out parsed, and a copy of the rest (the
collectors' key and user columns filled in, every other cell where it was) is written for the
cloud's importer, so the importer's row numbers are the engineer's row numbers. What the cloud
checks (ids, sites, units, money columns, duplicates) stays the cloud's; :func:`check_meters`
adds what the *collector* needs: the bus exists on that collector, the meter's model is its
bus's model, the address is valid for the protocol and unique on the bus, no CT/PT for a model
that reads its own ratios. Every problem is a ``RowError`` (file:sheet, row, column).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl

from cloud.park.imports.schema import RowError, Table
from cloud.park.imports.sheets import read_tables
from edge import drivers

BUS_COLUMNS = ("gateway_id", "bus", "url", "model", "baud", "parity", "stop_bits")
BUS_REQUIRED = ("gateway_id", "bus", "url", "model")
PROVISIONED = ("key_hex", "key_id", "mqtt_username")


@dataclass
class BusRow:
    row: int
    gateway: str
    spec: dict[str, Any]  # edge.toml [[buses]] keys


@dataclass
class MeterRow:
    source: str
    row: int
    gateway: str
    model: str
    spec: dict[str, Any]  # edge.toml [[meters]] keys


@dataclass
class CollectorRow:
    source: str
    row: int
    gateway: str
    site: str
    buses: list[BusRow] = field(default_factory=list)
    meters: list[MeterRow] = field(default_factory=list)


@dataclass
class Workbook:
    """What :func:`read` found."""

    source: str  # the workbook's file name, as the errors name it
    import_copy: Path  # the sheets for the cloud's importer
    collectors: dict[str, CollectorRow]
    timezones: dict[str, str]  # site -> zone named in the sites sheet
    errors: list[RowError]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _header(sheet: Any) -> list[str]:
    first = next(sheet.iter_rows(min_row=1, max_row=1, values_only=True), ())
    return [_text(c).lower() for c in first]


def _kind(header: list[str]) -> str | None:
    # The import's own rule (cloud.park.imports.sheets): the key column tells the kind.
    if "url" in header:
        return "buses"
    for kind, key in (("meters", "meter_id"), ("units", "unit_no"),
                      ("collectors", "gateway_id"), ("sites", "site_id")):  # fmt: skip
        if key in header:
            return kind
    return None


def _bus(source: str, number: int, values: dict[str, Any], errors: list[RowError]) -> BusRow | None:
    for col in BUS_REQUIRED:
        if not _text(values.get(col)):
            errors.append(RowError(source, number, col, "is required"))
            return None
    spec: dict[str, Any] = {
        "name": _text(values["bus"]),
        "url": _text(values["url"]),
        "model": _text(values["model"]),
    }
    try:
        drivers.driver_class(spec["model"])
    except drivers.ConfigError as exc:
        errors.append(RowError(source, number, "model", str(exc)))
        return None
    for col in ("baud", "stop_bits"):
        raw = _text(values.get(col))
        if raw:
            if not raw.isdigit():
                errors.append(RowError(source, number, col, f"must be a whole number, not {raw!r}"))
                return None
            spec[col] = int(raw)
    parity = _text(values.get("parity")).upper()
    if parity:
        if parity not in ("N", "E", "O"):
            errors.append(RowError(source, number, "parity", f"must be N, E or O, not {parity!r}"))
            return None
        spec["parity"] = parity
    return BusRow(number, _text(values["gateway_id"]), spec)


def _read_buses(sheet: Any, source: str, errors: list[RowError]) -> list[BusRow]:
    rows = list(sheet.iter_rows(values_only=True))
    header = [_text(c).lower() for c in rows[0]]
    while header and not header[-1]:
        header.pop()
    for col in header:
        if col not in BUS_COLUMNS:
            known = ", ".join(BUS_COLUMNS)
            errors.append(RowError(source, 1, col or "(blank)", f"unknown column; known: {known}"))
    for col in BUS_REQUIRED:
        if col not in header:
            errors.append(RowError(source, 1, col, "required column missing for buses"))
    if any(e.source == source for e in errors):
        return []
    out = []
    for number, cells in enumerate(rows[1:], start=2):
        values = {col: cells[i] if i < len(cells) else None for i, col in enumerate(header)}
        if all(_text(v) == "" for v in values.values()):
            continue
        bus = _bus(source, number, values, errors)
        if bus is not None:
            out.append(bus)
    return out


KeyFor = Callable[[str], tuple[int, str]]


def read(path: Path, staging: Path, key_for: KeyFor) -> Workbook:
    """Split ``path`` (see the module docstring). ``key_for(gateway) → (key_id, key_hex)`` is
    asked for every collector row; the import copy goes to ``staging`` under the same name."""
    source = path.name
    errors: list[RowError] = []
    try:
        book = openpyxl.load_workbook(path)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise ValueError(f"cannot read the workbook {path}: {exc}") from None
    buses: list[BusRow] = []
    collector_sheet = None
    for sheet in list(book.worksheets):
        header = _header(sheet)
        kind = _kind(header)
        if kind == "buses":
            buses += _read_buses(sheet, f"{source}:{sheet.title}", errors)
            book.remove(sheet)
        elif kind == "collectors":
            collector_sheet = sheet
            for col in PROVISIONED:
                if col in header:
                    errors.append(RowError(f"{source}:{sheet.title}", 1, col,
                                           "leave it out: provisioning makes each collector's key "
                                           "and broker user"))  # fmt: skip
    if collector_sheet is None:
        errors.append(RowError(source, 1, None, "no collectors sheet (a gateway_id column)"))
    elif not any(e.column in PROVISIONED for e in errors):
        _fill_keys(collector_sheet, key_for)
    staging.mkdir(parents=True, exist_ok=True)
    copy = staging / source
    book.save(copy)
    book.close()
    ignored: list[RowError] = []  # the importer reads the copy again and reports these itself
    tables = read_tables([copy], ignored)
    collectors, timezones = _collectors(tables, errors)
    for bus in buses:
        _attach_bus(bus, collectors, source, errors)
    return Workbook(source, copy, collectors, timezones, errors)


def _fill_keys(sheet: Any, key_for: KeyFor) -> None:
    header = _header(sheet)
    where = header.index("gateway_id") + 1
    first = len(header) + 1
    for offset, col in enumerate(PROVISIONED):
        sheet.cell(row=1, column=first + offset, value=col)
    for r in range(2, sheet.max_row + 1):
        gateway = _text(sheet.cell(row=r, column=where).value)
        if not gateway:
            continue
        key_id, key_hex = key_for(gateway)
        for offset, value in enumerate((key_hex, key_id, gateway)):
            sheet.cell(row=r, column=first + offset, value=value)


def _collectors(
    tables: list[Table], errors: list[RowError]
) -> tuple[dict[str, CollectorRow], dict[str, str]]:
    collectors: dict[str, CollectorRow] = {}
    timezones: dict[str, str] = {}
    for table in tables:
        for number, v in table.rows:
            if table.kind == "sites" and _text(v.get("timezone")):
                timezones[_text(v.get("site_id"))] = _text(v.get("timezone"))
            if table.kind == "collectors" and _text(v.get("gateway_id")):
                gw = _text(v["gateway_id"])
                collectors.setdefault(
                    gw, CollectorRow(table.source, number, gw, _text(v.get("site_id")))
                )
    for table in (t for t in tables if t.kind == "meters"):
        for number, v in table.rows:
            meter = _meter(table.source, number, v, collectors, errors)
            if meter is not None:
                collectors[meter.gateway].meters.append(meter)
    return collectors, timezones


def _meter(
    source: str,
    number: int,
    v: dict[str, Any],
    collectors: dict[str, CollectorRow],
    errors: list[RowError],
) -> MeterRow | None:
    gateway, meter_id = _text(v.get("gateway_id")), _text(v.get("meter_id"))
    if not gateway or not meter_id:
        return None  # the importer names the missing cell
    if gateway not in collectors:
        errors.append(RowError(source, number, "gateway_id",
                               f"collector {gateway!r} is not in the collectors sheet"))  # fmt: skip
        return None
    spec: dict[str, Any] = {"id": meter_id, "bus": _text(v.get("bus")),
                            "address": _text(v.get("address"))}  # fmt: skip
    for col, key in (("ct_ratio", "ct"), ("pt_ratio", "pt")):
        raw = _text(v.get(col))
        if raw and raw != "1":
            spec[key] = raw
    return MeterRow(source, number, gateway, _text(v.get("model")), spec)


def _attach_bus(
    bus: BusRow, collectors: dict[str, CollectorRow], source: str, errors: list[RowError]
) -> None:
    sheet = f"{source}:buses"
    owner = collectors.get(bus.gateway)
    if owner is None:
        errors.append(RowError(sheet, bus.row, "gateway_id",
                               f"collector {bus.gateway!r} is not in the collectors sheet"))  # fmt: skip
        return
    if any(b.spec["name"] == bus.spec["name"] for b in owner.buses):
        errors.append(RowError(sheet, bus.row, "bus",
                               f"bus {bus.spec['name']!r} is listed twice for {bus.gateway}"))  # fmt: skip
        return
    owner.buses.append(bus)


def check_meters(book: Workbook) -> None:
    """The collector's own checks of every meter row (see the module docstring); problems
    are appended to ``book.errors``."""
    for collector in book.collectors.values():
        models = {b.spec["name"]: b.spec["model"] for b in collector.buses}
        if not collector.buses:
            book.errors.append(RowError(collector.source, collector.row, "gateway_id",
                                        f"collector {collector.gateway} has no row in the buses "
                                        "sheet"))  # fmt: skip
            continue
        places: dict[tuple[str, str], int] = {}
        for meter in collector.meters:
            _check_meter(book, meter, models, places)


def _check_meter(
    book: Workbook, meter: MeterRow, models: dict[str, str], places: dict[tuple[str, str], int]
) -> None:
    where = meter.source
    spec, model = meter.spec, meter.model
    if spec["bus"] not in models:
        book.errors.append(RowError(where, meter.row, "bus",
                                    f"collector {meter.gateway} has no bus {spec['bus']!r} "
                                    f"(buses sheet: {', '.join(sorted(models))})"))  # fmt: skip
        return
    if model and model != models[spec["bus"]]:
        book.errors.append(RowError(where, meter.row, "model",
                                    f"{model} on bus {spec['bus']}, whose model is "
                                    f"{models[spec['bus']]}"))  # fmt: skip
        return
    driver = drivers.get(models[spec["bus"]])
    try:
        address = driver.parse_address(spec["address"])
    except drivers.ConfigError as exc:
        book.errors.append(RowError(where, meter.row, "address", str(exc)))
        return
    spec["address"] = address
    place = (spec["bus"], str(address))
    if place in places:
        book.errors.append(RowError(where, meter.row, "address",
                                    f"address {address} on bus {spec['bus']} is also on row "
                                    f"{places[place]}"))  # fmt: skip
        return
    places[place] = meter.row
    for key, col in (("ct", "ct_ratio"), ("pt", "pt_ratio")):
        if key not in spec:
            continue
        if not str(spec[key]).isdigit() or int(spec[key]) < 1:
            book.errors.append(RowError(where, meter.row, col, "must be a whole number ≥ 1"))
            return
        spec[key] = int(spec[key])
        if driver.reads_own_ratios:
            book.errors.append(RowError(where, meter.row, col,
                                        f"{models[spec['bus']]} reads its own PT/CT ratios; "
                                        "leave it empty (set the ratio on the meter)"))  # fmt: skip
            return
