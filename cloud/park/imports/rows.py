"""A row of an import table as a record: every cell converted and checked on its own (types,
ranges, text, the address a model's protocol can have), each refusal kept with its column so a
row reports all of its problems at once. What depends on other rows or on the database is
``cloud.park.imports.checks``."""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable
from typing import Any

from cloud.errors import ServiceError
from cloud.park import defaults as site_rules
from cloud.park.gateways import check_key_hex
from cloud.park.imports import cells
from cloud.park.imports.cells import CellError
from cloud.park.imports.schema import YUAN_COLUMNS
from cloud.values import MAX_SETTING_MICRO_YUAN
from shared import meter_models

Record = dict[str, Any]
# Yuan columns and the most each may be (micro-yuan).
YUAN_HIGH = {
    "price_yuan_per_kwh": 100 * 1_000_000,
    "alarm1_yuan": MAX_SETTING_MICRO_YUAN,
    "alarm2_yuan": MAX_SETTING_MICRO_YUAN,
    "hoarding_cap_yuan": MAX_SETTING_MICRO_YUAN,
}
OVERLOAD_W = (1, 1_000_000)


class _Row:
    """Collects a row's values and its refusals."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.record: Record = {}
        self.errors: list[CellError] = []

    def take(self, name: str, parse: Callable[[Any], Any]) -> Any:
        try:
            value = parse(self.values.get(name))
        except CellError as exc:
            self.errors.append(exc)
            return None
        self.record[name] = value
        return value


def _zone(value: Any) -> str:
    name = cells.text(value) or "Asia/Shanghai"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CellError(
            "timezone", f"{name!r} is not a known zone name (e.g. Asia/Shanghai)"
        ) from None
    return name


def _key(value: Any) -> str:
    try:
        return check_key_hex(cells.text(value) or "")
    except ServiceError as exc:
        raise CellError("key_hex", exc.message.removeprefix("key_hex ")) from None


def _yuan_cell(value: Any, column: str) -> int | None:
    return cells.yuan(value, column, YUAN_HIGH[column])


def _money(row: _Row) -> dict[str, int]:
    """The yuan columns of a site or meter as micro-yuan, by the meter setting they set."""
    out = {}
    for col, name in YUAN_COLUMNS.items():
        value = row.take(col, functools.partial(_yuan_cell, column=col))
        if value is not None:
            out[name] = value
    overload = row.take(
        "overload_power_w", lambda v: cells.integer(v, "overload_power_w", *OVERLOAD_W)
    )
    if overload is not None:
        out["overload_power_w"] = overload
    price = out.get("price_override_micro_yuan_per_kwh")
    if price is not None and price < 1:
        row.errors.append(CellError("price_yuan_per_kwh", "must be more than 0"))
    return out


def site(values: dict[str, Any]) -> tuple[Record, list[CellError]]:
    row = _Row(values)
    row.take("site_id", lambda v: cells.ident(v, "site_id"))
    row.take("name", lambda v: cells.line(v, "name", 200, required=True))
    row.take("timezone", _zone)
    settings = _money(row)
    # The site's default price is its default, not an override.
    if "price_override_micro_yuan_per_kwh" in settings:
        settings["price_micro_yuan_per_kwh"] = settings.pop("price_override_micro_yuan_per_kwh")
    for name, value in settings.items():
        try:
            site_rules.check_value(name, value)
        except ServiceError as exc:
            row.errors.append(CellError(name, exc.message))
    row.record["defaults"] = settings
    return row.record, row.errors


def collector(values: dict[str, Any]) -> tuple[Record, list[CellError]]:
    row = _Row(values)
    row.take("gateway_id", lambda v: cells.ident(v, "gateway_id"))
    row.take("site_id", lambda v: cells.ident(v, "site_id"))
    row.take("key_hex", _key)
    key_id = row.take("key_id", lambda v: cells.integer(v, "key_id", 0, 255))
    row.record["key_id"] = 1 if key_id is None else key_id
    row.take("name", lambda v: cells.line(v, "name", 200))
    row.take("mqtt_username", lambda v: cells.ident(v, "mqtt_username", required=False))
    building = row.take("building", lambda v: cells.line(v, "building", 100))
    floor = row.take("floor", lambda v: cells.line(v, "floor", 100))
    if (building is None) != (floor is None) and not row.errors:
        row.errors.append(CellError("floor", "give both building and floor, or neither"))
    return row.record, row.errors


def unit(values: dict[str, Any]) -> tuple[Record, list[CellError]]:
    row = _Row(values)
    row.take("site_id", lambda v: cells.ident(v, "site_id"))
    row.take("building", lambda v: cells.line(v, "building", 100, required=True))
    row.take("floor", lambda v: cells.line(v, "floor", 100, required=True))
    row.take("unit_no", lambda v: cells.line(v, "unit_no", 64, required=True))
    row.take("name", lambda v: cells.line(v, "name", 200))
    return row.record, row.errors


def _model(value: Any) -> str:
    name = cells.text(value)
    if name is None:
        raise CellError("model", "is required")
    if name not in meter_models.MODELS:
        known = ", ".join(sorted(meter_models.MODELS))
        raise CellError("model", f"unknown model {name!r}; known: {known}")
    return name


def meter(values: dict[str, Any]) -> tuple[Record, list[CellError]]:
    row = _Row(values)
    row.take("meter_id", lambda v: cells.ident(v, "meter_id"))
    row.take("gateway_id", lambda v: cells.ident(v, "gateway_id"))
    row.take("bus", lambda v: cells.line(v, "bus", 64, required=True))
    model = row.take("model", _model)
    address = cells.text(values.get("address"))
    if address is None:
        row.errors.append(CellError("address", "is required"))
    elif model is not None:
        try:
            row.record["address"] = meter_models.canonical_address(model, address)
        except meter_models.AddressError as exc:
            row.errors.append(CellError("address", f"{exc} (model {model})"))
    row.take("name", lambda v: cells.line(v, "name", 200))
    row.take("unit_no", lambda v: cells.line(v, "unit_no", 64))
    row.take("ct_ratio", lambda v: cells.integer(v, "ct_ratio", 1, 100_000))
    row.take("pt_ratio", lambda v: cells.integer(v, "pt_ratio", 1, 100_000))
    row.take("prepaid", lambda v: cells.boolean(v, "prepaid"))
    row.take("tariff_id", lambda v: cells.ident(v, "tariff_id", required=False))
    row.record["settings"] = _money(row)
    return row.record, row.errors


PARSERS: dict[str, Callable[[dict[str, Any]], tuple[Record, list[CellError]]]] = {
    "sites": site,
    "collectors": collector,
    "units": unit,
    "meters": meter,
}
