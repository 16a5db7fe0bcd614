"""Energy and charges per local day for a set of meters, summed in the database from the daily
rollups, with the days not rolled up yet computed from the raw readings (the same arithmetic,
``archive.compute_day``): what the energy analysis (F31), the instrument report (F32) and the
tenant statement read.

A day counts as rolled up when any of the meters has a rollup for it (``archive.rollup_day``
writes every meter of a site that had readings that day at once, and the per-building totals
with them: a whole site or whole buildings read those, ``Buildings``). Other days are computed live,
but only from the oldest raw reading the meters still have: older days were archived, and their
rollups are all that is left of them (F03).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cloud.localtime import local_day
from cloud.models import DailyRollup, Meter, PlaceRollup, Reading
from cloud.reporting import archive, bands

_SUMS = (
    "energy_wh",
    "charge_micro_yuan",
    *(f"{c}_{unit}" for c in bands.CATEGORIES for unit in ("wh", "micro_yuan")),
)


@dataclass
class Day:
    """One day's sums over the meters; ``bands`` as ``{category: [wh, micro_yuan]}``."""

    energy_wh: int = 0
    charge_micro_yuan: int = 0
    bands: dict[str, list[int]] = field(default_factory=bands.empty)

    def add(self, other: Day) -> None:
        self.energy_wh += other.energy_wh
        self.charge_micro_yuan += other.charge_micro_yuan
        for c in bands.CATEGORIES:
            self.bands[c][0] += other.bands[c][0]
            self.bands[c][1] += other.bands[c][1]

    @property
    def unsplit_wh(self) -> int:
        """Energy the bands do not hold (rollups written before the split existed)."""
        return max(0, self.energy_wh - sum(v[0] for v in self.bands.values()))


def _day_of(values: dict[str, Any]) -> Day:
    return Day(
        int(values["energy_wh"]), int(values["charge_micro_yuan"]), bands.from_columns(values)
    )


@dataclass(frozen=True)
class Buildings:
    """Whole buildings of a site (``ids`` None: the whole site, meters in no building too): the
    days are read from the per-building totals (``place_rollups``), a few rows a day."""

    site_id: str
    ids: tuple[int, ...] | None = None


def per_day(
    session: Session,
    meters: Select[Any],
    start: dt.date,
    end: dt.date,
    zone: dt.tzinfo,
    *,
    today: dt.date,
    buildings: Buildings | None = None,
) -> dict[dt.date, Day]:
    """``{day: Day}`` for every local day ``start..end`` that has data, over ``meters`` (a
    statement of meter ids; when they are exactly ``buildings``, the rolled-up days come from
    the per-building totals)."""
    out: dict[dt.date, Day] = {}
    if buildings is not None:
        sums = [func.coalesce(func.sum(getattr(PlaceRollup, name)), 0) for name in _SUMS]
        stmt = select(PlaceRollup.day, *sums).where(
            PlaceRollup.site_id == buildings.site_id,
            PlaceRollup.day >= start,
            PlaceRollup.day <= end,
        )
        if buildings.ids is not None:
            stmt = stmt.where(PlaceRollup.building_id.in_(buildings.ids))
        found = session.execute(stmt.group_by(PlaceRollup.day))
    else:
        sums = [func.coalesce(func.sum(getattr(DailyRollup, name)), 0) for name in _SUMS]
        found = session.execute(
            select(DailyRollup.day, *sums)
            .where(
                DailyRollup.meter_id.in_(meters), DailyRollup.day >= start, DailyRollup.day <= end
            )
            .group_by(DailyRollup.day)
        )
    for row in found:
        out[row[0]] = _day_of(dict(zip(_SUMS, (int(v) for v in row[1:]), strict=True)))
    live = _live_days(session, meters, start, min(end, today), zone, set(out))
    if live:
        ids = list(session.scalars(meters))
        rater = bands.Rater(
            session,
            session.scalars(select(Meter).where(Meter.id.in_(ids))),
            zone,
            (_ts(live[0], zone), _ts(live[-1] + dt.timedelta(days=1), zone)),
        )
        for day in live:
            figures = archive.compute_day(session, ids, day, zone, rater)
            if figures:
                total = Day()
                for values in figures.values():
                    total.add(_day_of(values))
                out[day] = total
    return out


def _ts(day: dt.date, zone: dt.tzinfo) -> int:
    return int(dt.datetime.combine(day, dt.time(), zone).timestamp())


def _live_days(
    session: Session,
    meters: Select[Any],
    start: dt.date,
    end: dt.date,
    zone: dt.tzinfo,
    rolled: set[dt.date],
) -> list[dt.date]:
    """Days of ``start..end`` without rollups since the oldest raw reading of ``meters``."""
    if end < start:
        return []
    oldest = session.scalar(select(func.min(Reading.ts)).where(Reading.meter_id.in_(meters)))
    if oldest is None:
        return []
    day = max(start, local_day(int(oldest), zone))
    out = []
    while day <= end:
        if day not in rolled:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def total(days: dict[dt.date, Day]) -> Day:
    out = Day()
    for d in days.values():
        out.add(d)
    return out
