"""The import's table kinds, their columns, and where a problem is (``RowError``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = ("sites", "collectors", "units", "meters")
KEY_COLUMN = {
    "meters": "meter_id",
    "units": "unit_no",
    "collectors": "gateway_id",
    "sites": "site_id",
}
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (required, optional)
    # A site's optional columns beyond the zone are its defaults (F13) for meters without their
    # own values: price, alarm amounts, hoarding cap, overload threshold.
    "sites": (
        ("site_id", "name"),
        (
            "timezone",
            "price_yuan_per_kwh",
            "alarm1_yuan",
            "alarm2_yuan",
            "hoarding_cap_yuan",
            "overload_power_w",
        ),
    ),
    "collectors": (
        ("gateway_id", "site_id", "key_hex"),
        ("key_id", "name", "mqtt_username", "building", "floor"),
    ),
    "units": (("site_id", "building", "floor", "unit_no"), ("name",)),
    "meters": (
        ("meter_id", "gateway_id", "bus", "address", "model"),
        (
            "name",
            "unit_no",
            "ct_ratio",
            "pt_ratio",
            "prepaid",
            "tariff_id",
            "price_yuan_per_kwh",
            "alarm1_yuan",
            "alarm2_yuan",
            "hoarding_cap_yuan",
            "overload_power_w",
        ),
    ),
}
INT_COLUMNS = ("key_id", "ct_ratio", "pt_ratio", "overload_power_w")
YUAN_COLUMNS = {
    "price_yuan_per_kwh": "price_override_micro_yuan_per_kwh",
    "alarm1_yuan": "alarm1_micro_yuan",
    "alarm2_yuan": "alarm2_micro_yuan",
    "hoarding_cap_yuan": "hoarding_cap_micro_yuan",
}
MAX_ROWS = 100_000


@dataclass(frozen=True)
class RowError:
    """One refused cell: where and why."""

    source: str
    row: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source} row {self.row}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}"


@dataclass
class Table:
    """Rows of one kind read from one file or sheet: ``rows`` are (row number, {column: value})."""

    source: str
    kind: str
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
