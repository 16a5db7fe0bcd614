"""The building data scope: which part of the park an operator may see and act on.

An operator with no buildings sees the whole park; one with buildings sees only what is in them
(units on their floors, meters in those units, collectors placed there or serving those meters). Every list
and export filters through a ``Scope``; a single object is checked with ``allows_*``.

    scope = Scope.of(operator)
    stmt = scope.meters(select(Meter))          # meters in scope
    stmt = stmt.where(scope.building_ids_in(Building.id))   # any statement with a building id
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select, true
from sqlalchemy.orm import Session

from cloud.errors import NotFoundError
from cloud.models import Floor, Gateway, Meter, Operator, Unit


@dataclass(frozen=True)
class Scope:
    """``building_ids`` is None for the whole park."""

    building_ids: frozenset[int] | None = None

    @classmethod
    def of(cls, operator: Operator) -> Scope:
        ids = frozenset(b.id for b in operator.buildings)
        return cls(ids or None)

    @property
    def everything(self) -> bool:
        return self.building_ids is None

    def building_ids_in(self, column: Any) -> ColumnElement[bool]:
        """A condition on a building-id column (true for the whole park)."""
        if self.building_ids is None:
            return true()
        return column.in_(sorted(self.building_ids))

    def floor_ids(self) -> Select[Any]:
        return select(Floor.id).where(self.building_ids_in(Floor.building_id))

    def units(self, stmt: Select[Any]) -> Select[Any]:
        if self.building_ids is None:
            return stmt
        return stmt.where(Unit.floor_id.in_(self.floor_ids()))

    def meters(self, stmt: Select[Any]) -> Select[Any]:
        """Meters in scope: a scoped operator sees no meter that is in no unit."""
        if self.building_ids is None:
            return stmt
        in_units = select(Unit.id).where(Unit.floor_id.in_(self.floor_ids()))
        return stmt.where(Meter.unit_id.in_(in_units))

    def gateways(self, stmt: Select[Any]) -> Select[Any]:
        """Collectors placed on the scope's floors, or serving a meter in scope (a collector
        is often not placed at all; its meters' units say where it serves)."""
        if self.building_ids is None:
            return stmt
        serving = self.meters(select(Meter.gateway_id))
        return stmt.where(or_(Gateway.floor_id.in_(self.floor_ids()), Gateway.id.in_(serving)))

    def allows_building(self, building_id: int | None) -> bool:
        return self.building_ids is None or building_id in self.building_ids

    def check_meter(self, session: Session, meter: Meter) -> Meter:
        """``meter`` if in scope, else NotFoundError (out of scope looks like not there)."""
        if self.building_ids is None:
            return meter
        building = None
        if meter.unit_id is not None:
            unit = session.get(Unit, meter.unit_id)
            floor = session.get(Floor, unit.floor_id) if unit is not None else None
            building = floor.building_id if floor is not None else None
        if building not in self.building_ids:
            raise NotFoundError(f"meter {meter.id} does not exist")
        return meter


EVERYTHING = Scope()
