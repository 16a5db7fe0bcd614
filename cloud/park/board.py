"""The meter board's query (F18, F35): every meter with where it is, who rents it and its state,
filtered by building, floor, state (several at once), collector and a search, in an
operator's building scope; and the legend's count per state over the same filters.

The board's states are the display states the collectors report (``cloud.park.queries.STATES``)
folded for people: *lost contact* overrides every other (the office cannot know the state of a
meter it cannot hear), and a meter whose account closed shows as *not opened* (nobody rents it
and it can be opened again)::

    f = board.Filter(building=3, states=("alarm1", "arrears"), q="A-1")
    rows = session.execute(board.statement(f, scope).order_by(Meter.id).limit(100))
    counts = board.legend(session, f, scope)     # {"opened": 812, "alarm1": 4, ...}

Each row: ``Meter`` (the meter), ``state``, ``unit``, ``room``, ``floor``, ``building``,
``tenant``, ``account_number``, ``tariff``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from cloud.access.scope import Scope
from cloud.models import Account, Building, Customer, Floor, Meter, Tariff, Unit

# A select of any columns (the board's rows, the legend's counts).
Rows = Select[*tuple[Any, ...]]
# The legend's order (the tile colours follow it): lost contact last, it overrides.
STATES = ("opened", "alarm1", "alarm2", "arrears", "not_opened", "lost_contact")
# Badges over the state: 保电 and 已拉闸.
FLAGS = ("keep_power", "tripped")


def state_column() -> ColumnElement[str]:
    """The board state of a meter row, in SQL (see the module doc)."""
    return case(
        (Meter.lost_contact.is_(True), literal("lost_contact")),
        (Meter.display_state.in_(("not_opened", "closed")), literal("not_opened")),
        else_=Meter.display_state,
    )


def state_condition(state: str) -> ColumnElement[bool]:
    """Meters in one board state (indexable: no CASE in the WHERE)."""
    live = Meter.lost_contact.is_(False)
    if state == "lost_contact":
        return Meter.lost_contact.is_(True)
    if state == "not_opened":
        return and_(live, Meter.display_state.in_(("not_opened", "closed")))
    return and_(live, Meter.display_state == state)


@dataclass(frozen=True)
class Filter:
    """What the board shows; an empty field does not filter. ``q`` is a unit number or meter
    id (a prefix) or part of a tenant's name. ``flags``: only meters with these badges."""

    building: int | None = None
    floor: int | None = None
    states: tuple[str, ...] = ()
    gateway: str = ""
    q: str = ""
    flags: tuple[str, ...] = ()


def _where(stmt: Rows, f: Filter, scope: Scope | None) -> Rows:
    if scope is not None:
        stmt = scope.meters(stmt)
    if f.gateway:
        stmt = stmt.where(Meter.gateway_id == f.gateway)
    if f.floor is not None:
        stmt = stmt.where(Unit.floor_id == f.floor)
    if f.building is not None:
        stmt = stmt.where(Floor.building_id == f.building)
    if "keep_power" in f.flags:
        stmt = stmt.where(Meter.mode == "keep_power")
    if "tripped" in f.flags:
        stmt = stmt.where(Meter.relay == "open")
    if f.q:
        prefix = f"{f.q}%"
        stmt = stmt.where(
            or_(
                Meter.id.like(prefix),
                Unit.number.like(prefix),
                Customer.name.like(f"%{f.q}%"),
            )
        )
    return stmt


def _joined(stmt: Rows) -> Rows:
    return (
        stmt.outerjoin(Unit, Unit.id == Meter.unit_id)
        .outerjoin(Floor, Floor.id == Unit.floor_id)
        .outerjoin(Building, Building.id == Floor.building_id)
        .outerjoin(Account, Account.id == Meter.account_id)
        .outerjoin(Customer, Customer.id == Account.customer_id)
    )


def statement(f: Filter, scope: Scope | None = None) -> Rows:
    """The board's rows (see the module doc), unordered."""
    stmt: Rows = select(
        Meter,
        state_column().label("state"),
        Unit.number.label("unit"),
        Unit.name.label("room"),
        Floor.name.label("floor"),
        Building.name.label("building"),
        Customer.name.label("tenant"),
        Account.number.label("account_number"),
        Tariff.name.label("tariff"),
    ).select_from(Meter)
    stmt = _joined(stmt).outerjoin(Tariff, Tariff.id == Meter.tariff_id)
    stmt = _where(stmt, f, scope)
    if f.states:
        stmt = stmt.where(or_(*(state_condition(s) for s in f.states)))
    return stmt


def legend(session: Session, f: Filter, scope: Scope | None = None) -> dict[str, int]:
    """How many meters of the filtered set (the state filter aside: the legend shows them all)
    are in each state; every state present, 0 when none. Joins only what the filters need
    (counting 10,000 meters without them is several times faster)."""
    state = state_column()
    counted: Rows = select(state, func.count()).select_from(Meter)
    if f.q or f.floor is not None or f.building is not None:
        counted = _joined(counted)
    stmt = _where(counted, f, scope)
    counts = dict.fromkeys(STATES, 0)
    for name, n in session.execute(stmt.group_by(state)).all():
        counts[str(name)] = counts.get(str(name), 0) + int(n)
    return counts


def total(counts: dict[str, int], states: tuple[str, ...]) -> int:
    """The filtered set's size from the legend (no second count)."""
    return sum(n for name, n in counts.items() if not states or name in states)
