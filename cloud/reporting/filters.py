"""What a report may be asked for: date ranges, months, places, buildings, checked before any
figure is computed, each refusal a ``FilterError`` that names its field and carries a stable
``code`` and the values to word it (the office translates by code; the API and the CLI show the
English message).

=====================  ===============================================================
code                   when
=====================  ===============================================================
``bad_date``           a date that is not YYYY-MM-DD (or a month not YYYY-MM)
``end_before_start``   the range ends before it starts
``range_too_long``     more than ``MAX_YEARS`` years
``unknown_building``   a building (floor, unit, site, meter) that does not exist or lies outside
``unknown_floor``      the operator's buildings (out of scope looks like not there)
``unknown_unit``
``unknown_meter``
``unknown_place``      a place that is not ``b:ID``, ``f:ID`` or ``u:ID``
=====================  ===============================================================
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from cloud.access.scope import EVERYTHING, Scope
from cloud.errors import InvalidError, NotFoundError
from cloud.models import Building, Floor, Gateway, Meter, Unit

MAX_YEARS = 5
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_PLACE = re.compile(r"^([bfu]):(\d{1,18})$")


class FilterError(InvalidError):
    """A report filter refused (422); ``params`` are the values its message names."""

    def __init__(self, code: str, field: str, message: str, **params: Any) -> None:
        super().__init__(message, field, code=code)
        self.params = params


@dataclass(frozen=True)
class Range:
    """Local dates ``start..end``, both included."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def parse_date(text: str | None, field: str) -> dt.date | None:
    """A local date from a form field ('' or None: not given)."""
    raw = (text or "").strip()
    if not raw:
        return None
    try:
        if not _DATE.match(raw):
            raise ValueError(raw)
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise FilterError(
            "bad_date",
            field,
            f"{field} must be a date YYYY-MM-DD, got {raw[:40]!r}",
            value=raw[:40],
        ) from None


def parse_month(text: str | None, field: str = "month") -> dt.date | None:
    """The first day of a month given as YYYY-MM ('' or None: not given)."""
    raw = (text or "").strip()
    if not raw:
        return None
    found = _MONTH.match(raw)
    if found is None or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 1000:
        raise FilterError(
            "bad_date", field, f"{field} must be a month YYYY-MM, got {raw[:40]!r}", value=raw[:40]
        )
    return dt.date(int(found.group(1)), int(found.group(2)), 1)


def _years_later(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def date_range(start: dt.date, end: dt.date) -> Range:
    """``start..end`` if the end is not before the start and the span is at most 5 years."""
    if end < start:
        raise FilterError(
            "end_before_start",
            "to",
            f"to ({end}) is before from ({start})",
            start=start.isoformat(),
            end=end.isoformat(),
        )
    if end >= _years_later(start, MAX_YEARS):
        raise FilterError(
            "range_too_long",
            "from",
            f"a report spans at most {MAX_YEARS} years; {start} to {end} is longer",
            years=MAX_YEARS,
            start=start.isoformat(),
            end=end.isoformat(),
        )
    return Range(start, end)


def month_end(first: dt.date) -> dt.date:
    """The last day of the month that starts on ``first``."""
    nxt = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


@dataclass(frozen=True)
class Place:
    """A node of the place tree: the whole site (``kind="site"``), a building, a floor or a
    unit; ``label`` names it for a title row."""

    kind: str
    id: int | None
    label: str
    building_id: int | None = None

    @property
    def key(self) -> str:
        return "" if self.kind == "site" else f"{self.kind[0]}:{self.id}"


def building(session: Session, scope: Scope, raw: Any, field: str = "building") -> Building | None:
    """The building a filter names (None when not given), in the operator's scope."""
    text = str(raw).strip() if raw is not None else ""
    if not text:
        return None
    found = session.get(Building, int(text)) if text.isdigit() and len(text) < 19 else None
    if found is None or not scope.allows_building(found.id):
        raise FilterError(
            "unknown_building", field, f"building {text[:40]!r} does not exist", value=text[:40]
        )
    return found


def place(session: Session, scope: Scope, raw: str | None, field: str = "place") -> Place:
    """A place from ``b:ID`` / ``f:ID`` / ``u:ID`` ('' = the whole site), in scope."""
    text = (raw or "").strip()
    if not text:
        return Place("site", None, "")
    found = _PLACE.match(text)
    if found is None:
        raise FilterError(
            "unknown_place", field, f"place must be b:ID, f:ID or u:ID, got {text[:40]!r}",
            value=text[:40],
        )  # fmt: skip
    kind, ident = found.group(1), int(found.group(2))
    if kind == "b":
        b = building(session, scope, ident, field)
        assert b is not None
        return Place("building", b.id, b.name, b.id)
    if kind == "f":
        floor = session.get(Floor, ident)
        if floor is None or not scope.allows_building(floor.building_id):
            raise FilterError("unknown_floor", field, f"floor {ident} does not exist", value=ident)
        return Place("floor", floor.id, f"{floor.building.name} {floor.name}", floor.building_id)
    unit = session.get(Unit, ident)
    floor = session.get(Floor, unit.floor_id) if unit is not None else None
    if unit is None or floor is None or not scope.allows_building(floor.building_id):
        raise FilterError("unknown_unit", field, f"unit {ident} does not exist", value=ident)
    return Place("unit", unit.id, unit.number, floor.building_id)


def meter_ids(scope: Scope, site_id: str | None, where: Place | None = None) -> Select[Any]:
    """The ids of the meters of a site (or every site) at a place, in the operator's scope."""
    stmt = select(Meter.id)
    if site_id is not None:
        stmt = stmt.join(Gateway, Meter.gateway_id == Gateway.id).where(Gateway.site_id == site_id)
    if where is not None and where.kind == "unit":
        stmt = stmt.where(Meter.unit_id == where.id)
    elif where is not None and where.kind == "floor":
        stmt = stmt.where(Meter.unit_id.in_(select(Unit.id).where(Unit.floor_id == where.id)))
    elif where is not None and where.kind == "building":
        stmt = stmt.where(
            Meter.unit_id.in_(
                select(Unit.id)
                .join(Floor, Unit.floor_id == Floor.id)
                .where(Floor.building_id == where.id)
            )
        )
    return scope.meters(stmt)


def meter(session: Session, scope: Scope, raw: str | None, field: str = "meter") -> Meter | None:
    """A meter a filter names (None when not given), in scope."""
    text = (raw or "").strip()
    if not text:
        return None
    found = session.get(Meter, text[:64])
    try:
        if found is None:
            raise NotFoundError(text)
        return scope.check_meter(session, found)
    except NotFoundError:
        raise FilterError(
            "unknown_meter", field, f"meter {text[:40]!r} does not exist", value=text[:40]
        ) from None


__all__ = ["EVERYTHING", "MAX_YEARS", "FilterError", "Place", "Range"]
