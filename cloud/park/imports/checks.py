"""What an import row cannot be, given the other rows and the database: the same id twice (the
later row names the earlier), a collector, site, unit or tariff that does not exist, a bus the
collector does not have, two models on one bus, two meters on one address (naming both), a meter
with an open account moved to another collector, alarm thresholds a collector would refuse.

Everything the checks need from the database is read once, in a few queries (``Known``), so
checking 10,000 meters costs no query per row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import ServiceError
from cloud.models import Bus, Gateway, Meter, Site, SiteDefaults, Tariff, Unit
from cloud.park import defaults as site_rules
from cloud.park.imports.cells import CellError
from cloud.park.imports.schema import KEY_COLUMN, YUAN_COLUMNS
from edge.core import settings as engine_settings
from edge.core.errors import EngineError
from shared import meter_models

# Sheet column of a setting or default name (the yuan columns are named for the unit).
COLUMN_OF = {name: col for col, name in YUAN_COLUMNS.items()} | {
    "price_micro_yuan_per_kwh": "price_yuan_per_kwh"
}


@dataclass
class Item:
    """One row being imported: where it is, what it says, what is wrong with it."""

    kind: str
    source: str
    row: int
    record: dict[str, Any]
    errors: list[CellError] = field(default_factory=list)
    if_missing: bool = False  # a provisioning record's site: applied only when new
    buses: dict[str, str] = field(default_factory=dict)  # a record's declared buses: name → model

    @property
    def ok(self) -> bool:
        return not self.errors

    def fail(self, column: str | None, message: str) -> None:
        self.errors.append(CellError(column, message))


@dataclass
class Known:
    """What the database already holds, as far as the checks and the writer need it."""

    sites: set[str]
    defaults: dict[str, dict[str, Any]]
    gateways: dict[str, tuple[str, int, str]]  # id → (site, key id, key hex)
    buses: dict[tuple[str, str], tuple[int, str | None]]  # (gateway, name) → (id, protocol)
    units: dict[tuple[str, str], int]  # (site, number) → id
    tariffs: set[str]
    # meter id → (gateway, bus name, address, account id, model)
    meters: dict[str, tuple[str, str, str, int | None, str]]

    @classmethod
    def load(cls, session: Session) -> Known:
        session.flush()
        defaults = {
            d.site_id: {name: getattr(d, name) for name in site_rules.RULES}
            for d in session.scalars(select(SiteDefaults))
        }
        buses = {
            (gw, name): (bus_id, protocol)
            for bus_id, gw, name, protocol in session.execute(
                select(Bus.id, Bus.gateway_id, Bus.name, Bus.protocol)
            )
        }
        bus_names = {bus_id: name for (_, name), (bus_id, _) in buses.items()}
        meters = {
            m_id: (gw, bus_names.get(bus_id, ""), address, account, model)
            for m_id, gw, bus_id, address, account, model in session.execute(
                select(
                    Meter.id,
                    Meter.gateway_id,
                    Meter.bus_id,
                    Meter.address,
                    Meter.account_id,
                    Meter.model,
                )
            )
        }
        return cls(
            sites=set(session.scalars(select(Site.id))),
            defaults=defaults,
            gateways={
                g: (site, key_id, key_hex)
                for g, site, key_id, key_hex in session.execute(
                    select(Gateway.id, Gateway.site_id, Gateway.key_id, Gateway.key_hex)
                )
            },
            buses=buses,
            units={
                (site, number): unit_id
                for unit_id, site, number in session.execute(
                    select(Unit.id, Unit.site_id, Unit.number)
                )
            },
            tariffs=set(session.scalars(select(Tariff.id))),
            meters=meters,
        )


def duplicates(items: list[Item], kind: str) -> None:
    """The same id twice in one import: the later row is refused, naming the earlier one."""
    first: dict[Any, Item] = {}
    column = KEY_COLUMN[kind]
    for item in items:
        if item.if_missing:
            continue
        key = item.record.get(column)
        if key is None:
            continue
        if kind == "units":
            key = (item.record.get("site_id"), key)
        seen = first.get(key)
        if seen is None:
            first[key] = item
        elif seen.source == item.source:
            item.fail(column, f"duplicate of row {seen.row}")
        else:
            item.fail(column, f"duplicate of {seen.source} row {seen.row}")


def sites(items: list[Item], known: Known) -> None:
    for item in items:
        if not item.ok or not item.record["defaults"]:
            continue
        current = known.defaults.get(item.record["site_id"], {})
        try:
            site_rules.check_change(current, item.record["defaults"])
        except ServiceError as exc:
            item.fail(COLUMN_OF.get(exc.field or "", exc.field), exc.message)


def collectors(items: list[Item], known: Known, new_sites: set[str]) -> None:
    for item in items:
        r = item.record
        site = r.get("site_id")
        if site is not None and site not in known.sites and site not in new_sites:
            item.fail("site_id", f"site {site!r} does not exist; add it first (a sites sheet)")
        existing = known.gateways.get(r.get("gateway_id") or "")
        if existing is None or not item.ok:
            continue
        if existing[0] != site:
            item.fail(
                "site_id", f"collector {r['gateway_id']} is at site {existing[0]}, not {site}"
            )
        elif r["key_id"] == existing[1] and r["key_hex"] != existing[2]:
            item.fail(
                "key_id",
                f"collector {r['gateway_id']} already has key id {r['key_id']} with another "
                "key; a new key needs a new key id",
            )


def units(items: list[Item], known: Known, new_sites: set[str]) -> None:
    for item in items:
        site = item.record.get("site_id")
        if site is not None and site not in known.sites and site not in new_sites:
            item.fail("site_id", f"site {site!r} does not exist; add it first (a sites sheet)")


@dataclass
class _Meters:
    """The state the meter checks build up row by row."""

    gateway_site: dict[str, str]
    declared: dict[str, dict[str, str]]  # gateway → {bus: driver} it is known to have
    units: set[tuple[str, str]]
    moved: set[str]  # meters of the import (their old places are freed)
    drivers: dict[tuple[str, str], tuple[str, Item | None]] = field(default_factory=dict)
    taken: dict[tuple[str, str, str], tuple[str, Item | None]] = field(default_factory=dict)


def _meter_state(
    items: list[Item], known: Known, collector_items: list[Item], units_new: set[tuple[str, str]]
) -> _Meters:
    gateway_site = {g: site for g, (site, _, _) in known.gateways.items()}
    declared: dict[str, dict[str, str]] = {}
    for (gw, name), (_, protocol) in known.buses.items():
        if protocol is not None:
            declared.setdefault(gw, {})[name] = protocol
    for c in collector_items:
        if "gateway_id" not in c.record or "site_id" not in c.record:
            continue  # a refused cell (reported on its row): its meters find no collector
        gateway_site[c.record["gateway_id"]] = c.record["site_id"]
        for name, model in c.buses.items():
            if model in meter_models.MODELS:
                declared.setdefault(c.record["gateway_id"], {})[name] = meter_models.driver_of(
                    model
                )
    state = _Meters(
        gateway_site=gateway_site,
        declared=declared,
        units=set(known.units) | units_new,
        moved={i.record["meter_id"] for i in items if "meter_id" in i.record},
    )
    for m_id, (gw, bus, address, _, model) in known.meters.items():
        if m_id in state.moved:
            continue
        state.taken[(gw, bus, address)] = (m_id, None)
        if model in meter_models.MODELS:
            state.drivers.setdefault((gw, bus), (meter_models.driver_of(model), None))
    return state


def _where(other: Item | None) -> str:
    return "" if other is None else f" (row {other.row})"


def _place(item: Item, state: _Meters, known: Known) -> None:
    """The meter's collector, bus, model on that bus, address on that bus and unit."""
    r = item.record
    gw, bus = r.get("gateway_id"), r.get("bus")
    site = state.gateway_site.get(gw or "")
    if gw is not None and site is None:
        item.fail("gateway_id", f"collector {gw!r} does not exist; add it first (a collectors "
                                "sheet or its provisioning record)")  # fmt: skip
        return
    if gw is None or bus is None:
        return
    buses = state.declared.get(gw)
    driver = meter_models.driver_of(r["model"]) if "model" in r else None
    if buses is not None and bus not in buses:
        item.fail("bus", f"collector {gw} has no bus {bus!r} (it has {', '.join(sorted(buses))})")
    elif buses is not None and driver is not None and buses[bus] != driver:
        item.fail("model", f"bus {bus} of {gw} polls {buses[bus]} meters, not {r['model']}")
    elif driver is not None:
        have, other = state.drivers.setdefault((gw, bus), (driver, item))
        if have != driver:
            item.fail("model", f"bus {bus} of {gw} has {have} meters{_where(other)}; one model "
                               "per bus (its collector polls it with one driver)")  # fmt: skip
    if "address" in r and "meter_id" in r:
        holder, other = state.taken.setdefault((gw, bus, r["address"]), (r["meter_id"], item))
        if holder != r.get("meter_id"):
            item.fail("address", f"address {r['address']} on bus {bus} of {gw} is meter "
                                 f"{holder}'s{_where(other)}")  # fmt: skip
    unit_no = r.get("unit_no")
    if unit_no is not None and site is not None and (site, unit_no) not in state.units:
        item.fail("unit_no", f"unit {unit_no!r} does not exist at {site}")


def _thresholds(item: Item, site: str | None, known: Known, new_defaults: dict[str, Any]) -> None:
    """The meter's alarm amounts over its site's defaults, as its collector would check them."""
    own = {
        k: v
        for k, v in item.record["settings"].items()
        if k in ("alarm1_micro_yuan", "alarm2_micro_yuan")
    }
    if not own:
        return
    defaults = {**known.defaults.get(site or "", {}), **new_defaults.get(site or "", {})}
    effective = {
        engine: defaults[name]
        for name, engine in site_rules.ENGINE_NAMES.items()
        if engine in ("alarm1_micro_yuan", "alarm2_micro_yuan") and defaults.get(name) is not None
    }
    try:
        engine_settings.check_update({}, effective, own, f"meter {item.record.get('meter_id')}")
    except EngineError as exc:
        column = "alarm2_yuan" if "alarm2_micro_yuan" in own else "alarm1_yuan"
        item.fail(column, f"{exc}; a collector would refuse it (alarm 1 ≥ alarm 2 ≥ 0)")


def meters(
    items: list[Item],
    known: Known,
    collector_items: list[Item],
    units_new: set[tuple[str, str]],
    new_defaults: dict[str, Any],
) -> None:
    state = _meter_state(items, known, collector_items, units_new)
    for item in items:
        r = item.record
        _place(item, state, known)
        tariff = r.get("tariff_id")
        if tariff is not None and tariff not in known.tariffs:
            item.fail("tariff_id", f"tariff {tariff!r} does not exist; add it first")
        before = known.meters.get(r.get("meter_id") or "")
        if before is not None and before[3] is not None and before[0] != r.get("gateway_id"):
            item.fail("gateway_id", f"meter {r['meter_id']} has an open account; close it before "
                                    "moving the meter to another collector")  # fmt: skip
        _thresholds(item, state.gateway_site.get(r.get("gateway_id") or ""), known, new_defaults)
