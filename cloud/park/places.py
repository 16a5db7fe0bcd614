"""Buildings, floors, units (F09, F12) and meters edited one at a time: the service functions
behind the office's 楼栋管理 tree and meter form and the REST API's ``/buildings`` and ``/units``.
(Bulk comes in through ``cloud.park.imports``; ``inventory.upsert_*`` are the shared upserts.)

A building, floor or unit with meters under it is not deleted: the meters would lose their
place. Every change writes the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.access.scope import EVERYTHING, Scope
from cloud.audit import Actor, record
from cloud.errors import ConflictError, NotFoundError
from cloud.models import Building, Floor, Meter, Site, Unit
from cloud.park import inventory
from cloud.park.inventory import check_text


@dataclass
class FloorNode:
    floor: Floor
    units: list[tuple[Unit, int]] = field(default_factory=list)  # (unit, meter count)


@dataclass
class BuildingNode:
    building: Building
    floors: list[FloorNode] = field(default_factory=list)

    @property
    def unit_count(self) -> int:
        return sum(len(f.units) for f in self.floors)

    @property
    def meter_count(self) -> int:
        return sum(n for f in self.floors for _u, n in f.units)


def tree(session: Session, scope: Scope = EVERYTHING, name: str = "") -> dict[str, Any]:
    """site id → (site, [BuildingNode]) for the buildings in scope (optionally by name)."""
    stmt = select(Building).where(scope.building_ids_in(Building.id))
    if name:
        stmt = stmt.where(Building.name.ilike(f"%{name}%"))
    buildings = list(session.scalars(stmt.order_by(Building.site_id, Building.name)))
    ids = [b.id for b in buildings]
    floors = list(
        session.scalars(select(Floor).where(Floor.building_id.in_(ids)).order_by(Floor.name))
    )
    units = list(
        session.scalars(
            select(Unit).where(Unit.floor_id.in_([f.id for f in floors])).order_by(Unit.number)
        )
    )
    counts = dict(
        session.execute(
            select(Meter.unit_id, func.count())
            .where(Meter.unit_id.in_([u.id for u in units]))
            .group_by(Meter.unit_id)
        ).all()
    )
    nodes = {b.id: BuildingNode(b) for b in buildings}
    floor_nodes = {}
    for f in floors:
        floor_nodes[f.id] = FloorNode(f)
        nodes[f.building_id].floors.append(floor_nodes[f.id])
    for u in units:
        floor_nodes[u.floor_id].units.append((u, int(counts.get(u.id, 0))))
    out: dict[str, Any] = {}
    for b in buildings:
        site = out.setdefault(b.site_id, (session.get(Site, b.site_id), []))
        site[1].append(nodes[b.id])
    return out


def _name(value: Any, field_name: str) -> str:
    return check_text(value if isinstance(value, str) else None, field_name, 100)


def get_building(session: Session, building_id: int) -> Building:
    b = session.get(Building, building_id)
    if b is None:
        raise NotFoundError(f"building {building_id} does not exist")
    return b


def building_dict(b: Building) -> dict[str, Any]:
    return {"id": b.id, "site": b.site_id, "name": b.name, "floors": [f.name for f in b.floors]}


def create_building(session: Session, site_id: str, name: str, actor: Actor) -> Building:
    if session.get(Site, site_id) is None:
        raise NotFoundError(f"site {site_id!r} does not exist", "site")
    name = _name(name, "name")
    clash = select(Building.id).where(Building.site_id == site_id, Building.name == name)
    if session.scalars(clash).first() is not None:
        raise ConflictError(f"building {name!r} already exists at {site_id}", "name")
    b = Building(site_id=site_id, name=name)
    session.add(b)
    session.flush()
    record(session, actor, "building.create", "building", b.id, after={"name": name})
    return b


def rename_building(session: Session, building_id: int, name: str, actor: Actor) -> Building:
    b = get_building(session, building_id)
    name = _name(name, "name")
    clash = select(Building.id).where(
        Building.site_id == b.site_id, Building.name == name, Building.id != b.id
    )
    if session.scalars(clash).first() is not None:
        raise ConflictError(f"building {name!r} already exists at {b.site_id}", "name")
    before = {"name": b.name}
    b.name = name
    record(session, actor, "building.update", "building", b.id, before, {"name": name})
    return b


def _meters_below(session: Session, floor_ids: list[int]) -> int:
    units = select(Unit.id).where(Unit.floor_id.in_(floor_ids))
    return int(session.scalar(select(func.count()).where(Meter.unit_id.in_(units))) or 0)


def delete_building(session: Session, building_id: int, actor: Actor) -> None:
    b = get_building(session, building_id)
    floor_ids = [f.id for f in b.floors]
    meters = _meters_below(session, floor_ids)
    if meters:
        raise ConflictError(f"building {b.name} has {meters} meter(s); move or delete them first")
    for unit in session.scalars(select(Unit).where(Unit.floor_id.in_(floor_ids))):
        session.delete(unit)
    for f in list(b.floors):
        session.delete(f)
    session.flush()
    session.delete(b)
    record(session, actor, "building.delete", "building", building_id, before={"name": b.name})


def create_floor(session: Session, building_id: int, name: str, actor: Actor) -> Floor:
    b = get_building(session, building_id)
    name = _name(name, "name")
    clash = select(Floor.id).where(Floor.building_id == b.id, Floor.name == name)
    if session.scalars(clash).first() is not None:
        raise ConflictError(f"floor {name!r} already exists in {b.name}", "name")
    f = Floor(building_id=b.id, name=name)
    session.add(f)
    session.flush()
    record(session, actor, "floor.create", "floor", f.id, after={"building": b.id, "name": name})
    return f


def get_unit(session: Session, unit_id: int) -> Unit:
    u = session.get(Unit, unit_id)
    if u is None:
        raise NotFoundError(f"unit {unit_id} does not exist")
    return u


def unit_dict(u: Unit) -> dict[str, Any]:
    return {
        "id": u.id,
        "site": u.site_id,
        "number": u.number,
        "name": u.name,
        "floor": u.floor.name,
        "building": u.floor.building.name,
        "building_id": u.floor.building_id,
    }


def create_unit(session: Session, floor_id: int, number: str, name: str, actor: Actor) -> Unit:
    f = session.get(Floor, floor_id)
    if f is None:
        raise NotFoundError(f"floor {floor_id} does not exist", "floor_id")
    number = check_text(number if isinstance(number, str) else None, "number", 64)
    site_id = f.building.site_id
    clash = select(Unit.id).where(Unit.site_id == site_id, Unit.number == number)
    if session.scalars(clash).first() is not None:
        raise ConflictError(f"unit {number} already exists at {site_id}", "number")
    u = Unit(
        site_id=site_id,
        floor_id=f.id,
        number=number,
        name=check_text(name or "", "name", 200, required=False),
    )
    session.add(u)
    session.flush()
    record(session, actor, "unit.create", "unit", number, after=unit_dict(u))
    return u


def update_unit(session: Session, unit_id: int, name: str, actor: Actor) -> Unit:
    u = get_unit(session, unit_id)
    before = unit_dict(u)
    u.name = check_text(name or "", "name", 200, required=False)
    record(session, actor, "unit.update", "unit", u.number, before, unit_dict(u))
    return u


def delete_unit(session: Session, unit_id: int, actor: Actor) -> None:
    u = get_unit(session, unit_id)
    meters = int(session.scalar(select(func.count()).where(Meter.unit_id == u.id)) or 0)
    if meters:
        raise ConflictError(f"unit {u.number} has {meters} meter(s); move them first")
    before = unit_dict(u)
    session.delete(u)
    record(session, actor, "unit.delete", "unit", before["number"], before=before)


_METER_AUDIT = ("name", "unit_id", "ct_ratio", "pt_ratio", "prepaid", "tariff_id")


def edit_meter(session: Session, meter: Meter, actor: Actor, **fields: Any) -> Meter:
    """Change a meter's own fields (``inventory.METER_FIELDS``: name, unit_no, ratios, prepaid,
    tariff…) where it is, writing the audit log with before and after."""
    before = {k: getattr(meter, k) for k in _METER_AUDIT}
    inventory.upsert_meter(
        session, meter.id, meter.gateway_id, meter.bus.name, meter.address, meter.model, **fields
    )
    after = {k: getattr(meter, k) for k in _METER_AUDIT}
    record(session, actor, "meter.update", "meter", meter.id, before, after)
    return meter
