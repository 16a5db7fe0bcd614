"""Import the park from spreadsheets (F11, F43): sites, collectors, units, meters.

Files: CSV (one kind per file), XLSX (one kind per sheet, any number of sheets), or the JSON
record ``gridvend provision gateway`` writes for the cloud (``<gateway>.cloud.json``: the
collector, its buses and meters). The kind of a table is told by its key column: ``meter_id``
→ meters, ``unit_no`` → units, ``gateway_id`` → collectors, ``site_id`` → sites. Tables are
applied in the order sites, collectors, units, meters, whatever order the files come in; an
existing id is updated.

All or nothing: every row is checked and applied inside the caller's transaction; each bad row
is reported by file, row number (the header is row 1) and column, and if there is any, the
caller rolls everything back (``ImportRejected`` lists them all). Money columns are in yuan
(``alarm1_yuan``, ``price_yuan_per_kwh``, …), parsed exactly (decimal, at most 6 places).

Columns (``*`` required):

=========== ===================================================================================
sites       site_id*, name*, timezone (default Asia/Shanghai), and the site's defaults (F13)
            for meters without their own: price_yuan_per_kwh, alarm1_yuan, alarm2_yuan,
            hoarding_cap_yuan, overload_power_w
collectors  gateway_id*, site_id*, key_hex* (64 hex digits), key_id (default 1), name,
            mqtt_username, building, floor
units       site_id*, building*, floor*, unit_no*, name
meters      meter_id*, gateway_id*, bus*, address*, model*, name, unit_no, ct_ratio, pt_ratio,
            prepaid (yes/no), tariff_id, price_yuan_per_kwh, alarm1_yuan, alarm2_yuan,
            hoarding_cap_yuan, overload_power_w
=========== ===================================================================================
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.errors import ServiceError
from cloud.models import Site
from cloud.park import inventory
from cloud.park.imports.schema import (
    COLUMNS,
    INT_COLUMNS,
    KEY_COLUMN,
    KINDS,
    YUAN_COLUMNS,
    RowError,
)
from cloud.park.imports.sheets import IF_MISSING, read_tables


class ImportRejected(ServiceError):
    """The import had bad rows; nothing was imported (the caller rolls back)."""

    status = 422
    code = "import_rejected"

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        shown = "\n".join(f"  {e}" for e in errors[:50])
        more = f"\n  … and {len(errors) - 50} more" if len(errors) > 50 else ""
        first = errors[0]
        super().__init__(
            f"{len(errors)} bad row(s); nothing was imported:\n{shown}{more}", first.column
        )


@dataclass
class Summary:
    """What an import did: rows applied per kind."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def __str__(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in self.counts.items())


# -- cell values -----------------------------------------------------------------------------


class _CellError(ValueError):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def _int(value: Any, column: str) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise _CellError(column, f"must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise _CellError(column, f"must be a whole number, got {value!r}")


def _yuan(value: Any, column: str) -> int | None:
    """Yuan as text or a spreadsheet number → exact micro-yuan."""
    if value in (None, ""):
        return None
    # A float from a spreadsheet: its shortest repr is the number the user typed.
    text = repr(value) if isinstance(value, float) else str(value)
    try:
        amount = decimal.Decimal(text.replace(",", ""))
    except decimal.InvalidOperation:
        raise _CellError(column, f"must be an amount in yuan like 12.50, got {value!r}") from None
    micro = amount * 1_000_000
    if micro != micro.to_integral_value() or not amount.is_finite():
        raise _CellError(column, f"{value!r} has more than 6 decimal places")
    if micro < 0:
        raise _CellError(column, f"must not be negative, got {value!r}")
    return int(micro)


def _bool(value: Any, column: str) -> bool | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "y", "true", "1", "是"):
        return True
    if text in ("no", "n", "false", "0", "否"):
        return False
    raise _CellError(column, f"must be yes or no, got {value!r}")


def _text(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a meter address typed as a number
    return str(value)


# Meter setting names whose site default is named differently (the site's price is its
# default price, not an override).
SITE_DEFAULT_NAMES = {"price_override_micro_yuan_per_kwh": "price_micro_yuan_per_kwh"}


def _apply(session: Session, kind: str, v: dict[str, Any]) -> bool:
    """Apply one row; False when it changed nothing (a record's site that already exists)."""
    for col in v:
        if col in INT_COLUMNS:
            v[col] = _int(v[col], col)
    for col in COLUMNS[kind][0]:
        if v.get(col) in (None, ""):
            raise _CellError(col, "is required")
    if kind == "sites":
        if v.get(IF_MISSING) and session.get(Site, _text(v["site_id"]) or "") is not None:
            return False
        site_id = _text(v["site_id"]) or ""
        inventory.upsert_site(
            session, site_id, _text(v["name"]) or "", _text(v.get("timezone")) or "Asia/Shanghai"
        )
        # The same yuan columns as a meter's, as the site's defaults (a meter's own value wins).
        site_defaults: dict[str, Any] = {}
        for col, name in YUAN_COLUMNS.items():
            value = _yuan(v.get(col), col)
            if value is not None:
                site_defaults[SITE_DEFAULT_NAMES.get(name, name)] = value
        if v.get("overload_power_w") is not None:
            site_defaults["overload_power_w"] = v["overload_power_w"]
        if site_defaults:
            inventory.set_defaults(session, site_id, **site_defaults)
    elif kind == "collectors":
        inventory.upsert_gateway(
            session,
            _text(v["gateway_id"]) or "",
            _text(v["site_id"]) or "",
            _text(v["key_hex"]) or "",
            key_id=v.get("key_id") if v.get("key_id") is not None else 1,
            name=_text(v.get("name")) or "",
            mqtt_username=_text(v.get("mqtt_username")),
            building=_text(v.get("building")),
            floor=_text(v.get("floor")),
        )
    elif kind == "units":
        inventory.upsert_unit(
            session,
            _text(v["site_id"]) or "",
            _text(v["building"]) or "",
            _text(v["floor"]) or "",
            _text(v["unit_no"]) or "",
            _text(v.get("name")) or "",
        )
    else:
        fields: dict[str, Any] = {
            "name": _text(v.get("name")),
            "unit_no": _text(v.get("unit_no")),
            "ct_ratio": v.get("ct_ratio"),
            "pt_ratio": v.get("pt_ratio"),
            "prepaid": _bool(v.get("prepaid"), "prepaid"),
            "tariff_id": _text(v.get("tariff_id")),
            "overload_power_w": v.get("overload_power_w"),
        }
        for col, name in YUAN_COLUMNS.items():
            fields[name] = _yuan(v.get(col), col)
        inventory.upsert_meter(
            session,
            _text(v["meter_id"]) or "",
            _text(v["gateway_id"]) or "",
            _text(v["bus"]) or "",
            _text(v["address"]) or "",
            _text(v["model"]) or "",
            **{k: val for k, val in fields.items() if val is not None},
        )
    return True


def _column(field_name: str | None) -> str | None:
    """The spreadsheet column a service error's field refers to (yuan columns are renamed)."""
    for col, name in YUAN_COLUMNS.items():
        if name == field_name:
            return col
    return field_name


def import_files(session: Session, paths: list[str | Path], actor: Actor) -> Summary:
    """Check and apply every row of ``paths`` in the caller's transaction. Raises
    ``ImportRejected`` listing every bad row (the caller must roll back: nothing is kept)."""
    errors: list[RowError] = []
    tables = read_tables([Path(p) for p in paths], errors)
    summary = Summary()
    for kind in KINDS:
        first_row: dict[str, tuple[str, int]] = {}  # key -> (source, row) where it came first
        key = KEY_COLUMN[kind]
        for table in (t for t in tables if t.kind == kind):
            for number, values in table.rows:
                # The same id twice in one import is a mistake (the later row would silently
                # overwrite the earlier one): name the row it repeats.
                ident = _text(values.get(key))
                if ident is not None and not values.get(IF_MISSING):
                    seen = first_row.get(ident)
                    if seen is not None:
                        errors.append(
                            RowError(table.source, number, key, f"duplicate of row {seen[1]}")
                        )
                        continue
                    first_row[ident] = (table.source, number)
                try:
                    with session.begin_nested():
                        applied = _apply(session, kind, dict(values))
                    summary.counts[kind] += 1 if applied else 0
                except _CellError as exc:
                    errors.append(RowError(table.source, number, exc.column, str(exc)))
                except ServiceError as exc:
                    errors.append(RowError(table.source, number, _column(exc.field), exc.message))
    if errors:
        errors.sort(key=lambda e: (e.source, e.row))
        raise ImportRejected(errors)
    record(
        session,
        actor,
        "import",
        "files",
        ",".join(Path(p).name for p in paths)[:64],
        after=dict(summary.counts),
    )
    return summary
