"""The park's inventory (F09–F13): sites, buildings/floors/units, collectors, buses, meters,
default parameters and tariffs. Each ``upsert_*`` creates the record or updates the fields given;
the importer (``cloud.park.imports.importer``) and the seeders of tests and the demo use them. Values are
checked here and errors name the field."""

from __future__ import annotations

import zoneinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.errors import ConflictError, InvalidError, NotFoundError, RuleError
from cloud.models import (
    Building,
    Bus,
    Floor,
    Gateway,
    Meter,
    PurchaseSequence,
    Site,
    SiteDefaults,
    Tariff,
    TariffVersion,
    Unit,
    now_ts,
)
from cloud.park import defaults as site_rules
from cloud.park.gateways import check_key_hex
from cloud.values import check_id, check_int, check_line
from edge.core.errors import EngineError
from edge.core.tariff import compile_version


def check_text(value: Any, field: str, max_len: int = 200, required: bool = True) -> str:
    """One line of text (``cloud.values.check_line``) after stripping the spaces around it
    (sheets and forms carry them); ``""`` when not required and empty."""
    if value is None and not required:
        return ""
    text = value.strip() if isinstance(value, str) else value
    return check_line(text, field, max_len, required=required) or ""


def upsert_site(session: Session, site_id: str, name: str, timezone: str = "Asia/Shanghai") -> Site:
    check_id(site_id, "site_id")
    name = check_text(name, "name")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidError(
            f"timezone {timezone!r} is not a known zone name (e.g. Asia/Shanghai)", "timezone"
        ) from None
    site = session.get(Site, site_id)
    if site is None:
        site = Site(id=site_id, name=name, timezone=timezone, created_ts=now_ts())
        session.add(site)
        session.add(SiteDefaults(site_id=site_id))
    else:
        site.name, site.timezone = name, timezone
    session.flush()
    return site


def set_defaults(session: Session, site_id: str, **values: Any) -> SiteDefaults:
    """Set a site's default parameters (F13), every value checked first by the rules of
    ``cloud.park.defaults`` (ranges, then the engine's rules on the combination); nothing is
    changed when one is refused. Unknown names are an error naming the key."""
    defaults = session.get(SiteDefaults, site_id)
    if defaults is None:
        raise NotFoundError(f"site {site_id!r} does not exist")
    known = set(SiteDefaults.__table__.columns.keys()) - {"site_id"}
    for name in values:
        if name not in known:
            raise InvalidError(f"unknown default {name!r}; known: {', '.join(sorted(known))}", name)
    current = {name: getattr(defaults, name) for name in site_rules.RULES}
    checked = site_rules.check_change(current, values)
    for name, value in checked.items():
        setattr(defaults, name, value)
    return defaults


def upsert_place(
    session: Session, site_id: str, building: str, floor: str
) -> tuple[Building, Floor]:
    """The building and floor of a site, created when missing."""
    if session.get(Site, site_id) is None:
        raise InvalidError(f"site {site_id!r} does not exist; add it first", "site_id")
    building = check_text(building, "building", 100)
    floor = check_text(floor, "floor", 100)
    b = session.scalars(
        select(Building).where(Building.site_id == site_id, Building.name == building)
    ).first()
    if b is None:
        b = Building(site_id=site_id, name=building)
        session.add(b)
        session.flush()
    f = session.scalars(select(Floor).where(Floor.building_id == b.id, Floor.name == floor)).first()
    if f is None:
        f = Floor(building_id=b.id, name=floor)
        session.add(f)
        session.flush()
    return b, f


def upsert_unit(
    session: Session, site_id: str, building: str, floor: str, number: str, name: str = ""
) -> Unit:
    """A unit (户号 ``number``, unique in the site) on a floor."""
    number = check_text(number, "unit_no", 64)
    _, f = upsert_place(session, site_id, building, floor)
    unit = session.scalars(
        select(Unit).where(Unit.site_id == site_id, Unit.number == number)
    ).first()
    if unit is None:
        unit = Unit(site_id=site_id, floor_id=f.id, number=number, name=name or "")
        session.add(unit)
    else:
        unit.floor_id = f.id
        unit.name = name or unit.name
    session.flush()
    return unit


def upsert_gateway(
    session: Session,
    gateway_id: str,
    site_id: str,
    key_hex: str,
    *,
    key_id: int = 1,
    name: str = "",
    mqtt_username: str | None = None,
    building: str | None = None,
    floor: str | None = None,
) -> Gateway:
    """A collector with its key (64 hex digits) and MQTT user (default: its id)."""
    check_id(gateway_id, "gateway_id")
    key_hex = check_key_hex(key_hex)
    check_int(key_id, "key_id", 0, 255)
    if session.get(Site, site_id) is None:
        raise InvalidError(f"site {site_id!r} does not exist; add it first", "site_id")
    floor_id = None
    if building and floor:
        floor_id = upsert_place(session, site_id, building, floor)[1].id
    gw = session.get(Gateway, gateway_id)
    if gw is None:
        gw = Gateway(
            id=gateway_id,
            site_id=site_id,
            key_id=key_id,
            key_hex=key_hex,
            mqtt_username=mqtt_username or gateway_id,
            name=name or "",
            floor_id=floor_id,
            created_ts=now_ts(),
        )
        session.add(gw)
    else:
        if gw.site_id != site_id:
            raise ConflictError(f"collector {gateway_id} is at site {gw.site_id}, not {site_id}")
        if (key_id, key_hex) != (gw.key_id, gw.key_hex):
            if key_id == gw.key_id:
                raise InvalidError(
                    f"collector {gateway_id} already has key id {key_id} with another key; "
                    "a new key needs a new key id",
                    "key_id",
                )
            gw.prev_key_id, gw.prev_key_hex = gw.key_id, gw.key_hex
            gw.key_id, gw.key_hex = key_id, key_hex
        gw.mqtt_username = mqtt_username or gw.mqtt_username
        gw.name = name or gw.name
        gw.floor_id = floor_id or gw.floor_id
    session.flush()
    return gw


def upsert_bus(session: Session, gateway_id: str, name: str, protocol: str | None = None) -> Bus:
    name = check_text(name, "bus", 64)
    bus = session.scalars(select(Bus).where(Bus.gateway_id == gateway_id, Bus.name == name)).first()
    if bus is None:
        bus = Bus(gateway_id=gateway_id, name=name, protocol=protocol)
        session.add(bus)
        session.flush()
    elif protocol:
        bus.protocol = protocol
    return bus


METER_FIELDS = (
    "name",
    "unit_no",
    "ct_ratio",
    "pt_ratio",
    "prepaid",
    "tariff_id",
    "price_override_micro_yuan_per_kwh",
    "alarm1_micro_yuan",
    "alarm2_micro_yuan",
    "hoarding_cap_micro_yuan",
    "overload_power_w",
)


def _meter_values(session: Session, gw: Gateway, fields: dict[str, Any]) -> dict[str, Any]:
    """The meter's optional columns from ``fields``, each checked (the unit and the tariff must
    exist at the collector's site)."""
    values: dict[str, Any] = {}
    if fields.get("unit_no") not in (None, ""):
        unit = session.scalars(
            select(Unit).where(Unit.site_id == gw.site_id, Unit.number == fields["unit_no"])
        ).first()
        if unit is None:
            raise InvalidError(
                f"unit {fields['unit_no']!r} does not exist at {gw.site_id}", "unit_no"
            )
        values["unit_id"] = unit.id
    for name in ("ct_ratio", "pt_ratio"):
        if fields.get(name) is not None:
            values[name] = check_int(fields[name], name, 1, 100_000)
    if fields.get("prepaid") is not None:
        if not isinstance(fields["prepaid"], bool):
            raise InvalidError("prepaid must be true or false", "prepaid")
        values["prepaid"] = fields["prepaid"]
    if fields.get("tariff_id") not in (None, ""):
        if session.get(Tariff, fields["tariff_id"]) is None:
            raise InvalidError(f"tariff {fields['tariff_id']!r} does not exist", "tariff_id")
        values["tariff_id"] = fields["tariff_id"]
    for name in (
        "price_override_micro_yuan_per_kwh",
        "alarm1_micro_yuan",
        "alarm2_micro_yuan",
        "hoarding_cap_micro_yuan",
        "overload_power_w",
    ):
        if fields.get(name) is not None:
            values[name] = check_int(fields[name], name, 0)
    if fields.get("name") is not None:
        values["name"] = check_text(fields["name"], "name", 200, required=False)
    return values


def upsert_meter(
    session: Session,
    meter_id: str,
    gateway_id: str,
    bus: str,
    address: str,
    model: str,
    **fields: Any,
) -> Meter:
    """A meter on a collector's bus. ``fields``: ``METER_FIELDS`` (``unit_no`` is the unit's
    户号 at the collector's site)."""
    check_id(meter_id, "meter_id")
    unknown = set(fields) - set(METER_FIELDS)
    if unknown:
        raise InvalidError(f"unknown meter field {sorted(unknown)[0]!r}", sorted(unknown)[0])
    gw = session.get(Gateway, gateway_id)
    if gw is None:
        raise InvalidError(f"collector {gateway_id!r} does not exist; add it first", "gateway_id")
    address = check_text(str(address), "address", 32)
    model = check_text(model, "model", 64)
    b = upsert_bus(session, gateway_id, bus)
    clash = session.scalars(
        select(Meter.id).where(Meter.bus_id == b.id, Meter.address == address, Meter.id != meter_id)
    ).first()
    if clash is not None:
        raise InvalidError(
            f"address {address} on bus {bus} of {gateway_id} is meter {clash}'s", "address"
        )
    values = _meter_values(session, gw, fields)
    meter = session.get(Meter, meter_id)
    if meter is None:
        meter = Meter(
            id=meter_id,
            gateway_id=gateway_id,
            bus_id=b.id,
            address=address,
            model=model,
            settings={},
            created_ts=now_ts(),
            **values,
        )
        session.add(meter)
        session.add(PurchaseSequence(meter_id=meter_id, last_no=0))
    else:
        if meter.gateway_id != gateway_id and meter.account_id is not None:
            raise ConflictError(
                f"meter {meter_id} has an open account; close it before moving the meter"
            )
        meter.gateway_id, meter.bus_id, meter.address, meter.model = (
            gateway_id,
            b.id,
            address,
            model,
        )
        for name, value in values.items():
            setattr(meter, name, value)
    session.flush()
    return meter


def add_tariff_version(
    session: Session,
    tariff_id: str,
    body: dict[str, Any],
    actor: Actor,
    *,
    name: str = "",
    site_id: str | None = None,
) -> TariffVersion:
    """Add a version to a tariff (created when new). ``body`` is the engine's tariff version
    (``version``, ``effective_from`` and prices; edge/core/tariff.py), checked by the engine."""
    check_id(tariff_id, "tariff_id")
    if not isinstance(body, dict):
        raise InvalidError("version must be an object (edge/core/tariff.py)", "version")
    try:
        compile_version(tariff_id, body)
    except EngineError as exc:
        # Well-formed (the API's schema checked the shape) but refused by the engine's rules.
        raise RuleError(str(exc), "version") from None
    tariff = session.get(Tariff, tariff_id)
    if tariff is None:
        tariff = Tariff(id=tariff_id, name=name or tariff_id, site_id=site_id)
        session.add(tariff)
        session.flush()
    taken = session.scalars(
        select(TariffVersion).where(
            TariffVersion.tariff_id == tariff_id,
            (TariffVersion.version == body["version"])
            | (TariffVersion.effective_from_ts == body["effective_from"]),
        )
    ).first()
    if taken is not None:
        raise ConflictError(
            f"tariff {tariff_id} already has version {taken.version} (from "
            f"{taken.effective_from_ts}); versions and start instants are unique"
        )
    stored = {k: v for k, v in body.items() if k not in ("version", "effective_from")}
    version = TariffVersion(
        tariff_id=tariff_id,
        version=body["version"],
        effective_from_ts=body["effective_from"],
        body=stored,
        created_ts=now_ts(),
    )
    session.add(version)
    session.flush()
    record(session, actor, "tariff.version", "tariff", tariff_id, after=dict(body))
    return version
