"""Shared selections of meters (the API's list filters and batch selections use the same)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from cloud.errors import InvalidError, NotFoundError
from cloud.models import Building, Floor, Meter, Unit

STATES = ("not_opened", "opened", "alarm1", "alarm2", "arrears", "lost_contact", "closed")


def _int_filter(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidError(f"{name} must be an integer id, got {value!r}", name) from None


def meter_query(filters: dict[str, Any]) -> Select[Meter]:
    """Meters matching ``state``, ``building`` (id), ``floor`` (id), ``unit`` (id),
    ``gateway`` (id), ``prepaid`` (bool), ``account`` (id); ordered by id."""
    q = select(Meter).order_by(Meter.id)
    state = filters.get("state")
    if state is not None:
        if state not in STATES:
            raise InvalidError(f"state must be one of {', '.join(STATES)}; got {state!r}", "state")
        if state == "lost_contact":
            q = q.where(Meter.lost_contact.is_(True))
        else:
            q = q.where(Meter.display_state == state, Meter.lost_contact.is_(False))
    if filters.get("gateway") is not None:
        q = q.where(Meter.gateway_id == str(filters["gateway"]))
    if filters.get("account") is not None:
        q = q.where(Meter.account_id == _int_filter(filters["account"], "account"))
    if filters.get("prepaid") is not None:
        q = q.where(Meter.prepaid.is_(bool(filters["prepaid"])))
    unit_ids = None
    if filters.get("unit") is not None:
        q = q.where(Meter.unit_id == _int_filter(filters["unit"], "unit"))
    if filters.get("floor") is not None:
        unit_ids = select(Unit.id).where(Unit.floor_id == _int_filter(filters["floor"], "floor"))
        q = q.where(Meter.unit_id.in_(unit_ids))
    if filters.get("building") is not None:
        building = _int_filter(filters["building"], "building")
        unit_ids = (
            select(Unit.id)
            .join(Floor, Unit.floor_id == Floor.id)
            .join(Building, Floor.building_id == Building.id)
            .where(Building.id == building)
        )
        q = q.where(Meter.unit_id.in_(unit_ids))
    return q


def select_meters(session: Session, selection: Any) -> list[Meter]:
    """Meters chosen by ``{"meters": [ids]}`` or ``{"all": true}`` with optional filters
    ``gateway``, ``building`` (id), ``state``, ``prepaid`` (bool)."""
    if not isinstance(selection, dict):
        raise InvalidError("selection must be an object: {meters: [...]} or {all: true}", "meters")
    if "meters" in selection:
        ids = selection["meters"]
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise InvalidError("meters must be a non-empty list of meter ids", "meters")
        found = {m.id: m for m in session.scalars(select(Meter).where(Meter.id.in_(ids)))}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(f"no such meter: {', '.join(missing[:10])}", "meters")
        return [found[i] for i in dict.fromkeys(ids)]
    if selection.get("all") is not True:
        raise InvalidError("give meters: [ids] or all: true", "meters")
    return list(session.scalars(meter_query(selection)))
