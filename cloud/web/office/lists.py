"""Every office list the same way: filters are GET parameters (a list is bookmarkable, and 导出
exports exactly the filtered set), pages of 10/20/50/100 with the total count, and money
totals over the whole filtered set (not just the page).

    stmt = scope.meters(select(Meter)).where(...filters...)
    listing = paginate(stmt, order_by=Meter.id, totals={"balance": Meter.balance_micro_yuan})
    return render_template("...", listing=listing)      # macros.pager(listing)

The export view runs the same statement through ``every_row`` (no page limit).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from flask import request, url_for
from sqlalchemy import Select, func, select

from cloud.models import Building, Site
from cloud.web.office.security import current, db

PAGE_SIZES = (10, 20, 50, 100)
DEFAULT_PAGE_SIZE = 20


@dataclass
class Listing:
    rows: list[Any]
    total: int
    page: int
    per_page: int
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def url(self, **changes: Any) -> str:
        """This list's URL with some parameters changed (filters kept)."""
        args = {k: v for k, v in request.args.items() if v != ""}
        args.update(changes)
        args = {k: v for k, v in args.items() if v not in (None, "")}
        assert request.endpoint is not None
        values: dict[str, Any] = {**(request.view_args or {}), **args}
        return url_for(request.endpoint, **values)


def arg(name: str) -> str:
    """A filter's value from the query string ('' when absent)."""
    return request.args.get(name, "").strip()


def int_arg(name: str) -> int | None:
    raw = arg(name)
    return int(raw) if raw.lstrip("-").isdigit() else None


def date_arg(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(arg(name)) if arg(name) else None
    except ValueError:
        return None


def day_start_ts(day: dt.date, timezone: str = "Asia/Shanghai") -> int:
    """The UTC epoch second a local day begins (for 'from'/'to' date filters)."""
    return int(dt.datetime.combine(day, dt.time(), ZoneInfo(timezone)).timestamp())


def paginate(
    stmt: Select[Any],
    *,
    order_by: Any,
    totals: Mapping[str, Any] | None = None,
    scalars: bool = True,
) -> Listing:
    """One page of ``stmt`` (``?page=``, ``?per_page=``) with the total count and the sums of
    ``totals`` (name → column) over every matching row."""
    s = db()
    per_page = int_arg("per_page") or DEFAULT_PAGE_SIZE
    per_page = per_page if per_page in PAGE_SIZES else DEFAULT_PAGE_SIZE
    counted = stmt.order_by(None).subquery()
    total = int(s.scalar(select(func.count()).select_from(counted)) or 0)
    pages = max(1, -(-total // per_page))
    page = min(max(int_arg("page") or 1, 1), pages)
    sums: dict[str, int] = {}
    if totals:
        sub = stmt.order_by(None).subquery()
        row = s.execute(
            select(*(func.coalesce(func.sum(sub.c[col.key]), 0) for col in totals.values()))
        ).one()
        sums = {name: int(v) for name, v in zip(totals, row, strict=True)}
    # Typed Any, rows as a list of Any: mypy 2.4.1 crashed here (an internal error while
    # inferring Session.execute's overload on Select[Any] | Select[tuple[Any, ...]]).
    paged: Any = stmt.order_by(*_as_tuple(order_by)).limit(per_page).offset((page - 1) * per_page)
    rows: list[Any] = list(s.scalars(paged)) if scalars else list(s.execute(paged).all())
    return Listing(rows, total, page, per_page, sums)


def site_name() -> str:
    """The site name(s) for an export's title row: the sites of the operator's buildings, or
    every site."""
    scope = current().scope
    stmt = select(Site.name).order_by(Site.id)
    if not scope.everything:
        stmt = stmt.where(
            Site.id.in_(select(Building.site_id).where(scope.building_ids_in(Building.id)))
        )
    return " / ".join(db().scalars(stmt))


def every_row(stmt: Select[Any], *, order_by: Any, scalars: bool = True) -> Iterator[Any]:
    """Every row of the filtered set, streamed in batches (for exports)."""
    s = db()
    result = s.execute(stmt.order_by(*_as_tuple(order_by)).execution_options(yield_per=1000))
    yield from (result.scalars() if scalars else result)


def _as_tuple(order_by: Any) -> tuple[Any, ...]:
    return tuple(order_by) if isinstance(order_by, (list, tuple)) else (order_by,)
