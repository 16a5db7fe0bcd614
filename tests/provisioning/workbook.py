"""Site workbooks for the provisioning tests, written with openpyxl as a spreadsheet program
would save them (one sheet per table, a header row, cells typed as a person types them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl


@dataclass
class BusSpec:
    name: str
    url: str
    model: str = "acrel-ddsy1352"
    count: int = 3
    baud: int | None = None


@dataclass
class CollectorSpec:
    id: str
    buses: list[BusSpec]
    building: str = "A"
    floor: str = "1F"


@dataclass
class SiteSpec:
    site: str
    collectors: list[CollectorSpec]
    timezone: str = "Asia/Shanghai"
    extra_meters: list[list[Any]] = field(default_factory=list)  # raw rows appended
    extra_buses: list[list[Any]] = field(default_factory=list)

    def meter_ids(self) -> list[str]:
        return [
            f"{c.id}-{b.name}-{i:02d}"
            for c in self.collectors
            for b in c.buses
            for i in range(1, b.count + 1)
        ]


METER_HEADER = ["meter_id", "gateway_id", "bus", "address", "model", "unit_no", "prepaid"]
BUS_HEADER = ["gateway_id", "bus", "url", "model", "baud", "parity"]


def write(path: Path, spec: SiteSpec) -> Path:
    """The workbook for ``spec``: sites, collectors, units, meters, buses sheets."""
    book = openpyxl.Workbook()
    sites = book.active
    assert sites is not None
    sites.title = "sites"
    sites.append(["site_id", "name", "timezone"])
    sites.append([spec.site, f"Site {spec.site}", spec.timezone])
    collectors = book.create_sheet("collectors")
    collectors.append(["gateway_id", "site_id", "name", "building", "floor"])
    units = book.create_sheet("units")
    units.append(["site_id", "building", "floor", "unit_no"])
    meters = book.create_sheet("meters")
    meters.append(METER_HEADER)
    buses = book.create_sheet("buses")
    buses.append(BUS_HEADER)
    for c in spec.collectors:
        collectors.append([c.id, spec.site, f"Collector {c.id}", c.building, c.floor])
        units.append([spec.site, c.building, c.floor, f"U-{c.id}"])
        for b in c.buses:
            buses.append([c.id, b.name, b.url, b.model, b.baud, None])
            for i in range(1, b.count + 1):
                address: Any = f"{i:012d}" if b.model == "dlt645" else i
                meters.append(
                    [f"{c.id}-{b.name}-{i:02d}", c.id, b.name, address, b.model, f"U-{c.id}", "yes"]
                )
    for row in spec.extra_meters:
        meters.append(row)
    for row in spec.extra_buses:
        buses.append(row)
    book.save(path)
    return path
