"""A site's local calendar. Timestamps are UTC epoch seconds everywhere inside the system; a
site's time zone (default Asia/Shanghai) only places them into local days, months and years:
for receipt numbers, daily reports, rollups and archive cut-offs."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import InvalidError
from cloud.models import Site


@functools.lru_cache(maxsize=64)
def zone(tz_name: str | None) -> dt.tzinfo:
    """A time zone by name (cached per process: building one costs more than a sale's other
    arithmetic); an unknown or empty name falls back to UTC."""
    try:
        return zoneinfo.ZoneInfo(tz_name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def site_zone(session: Session, site_id: str | None) -> tuple[str | None, dt.tzinfo]:
    """The site (given, or the only one) and its time zone."""
    if site_id is None:
        sites = list(session.scalars(select(Site).limit(2)))
        if len(sites) > 1:
            raise InvalidError("there are several sites; say which with site=", "site")
        if not sites:
            return None, dt.UTC
        site = sites[0]
    else:
        found = session.get(Site, site_id)
        if found is None:
            raise InvalidError(f"site {site_id!r} does not exist", "site")
        site = found
    return site.id, zoneinfo.ZoneInfo(site.timezone)


def day_bounds(day: dt.date, tz: dt.tzinfo) -> tuple[int, int]:
    """UTC epoch seconds of a local day's start and the next day's start."""
    start = dt.datetime.combine(day, dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    return int(start.timestamp()), int(end.timestamp())


def local_day(ts: int, tz: dt.tzinfo) -> dt.date:
    """The local date of a UTC timestamp."""
    return dt.datetime.fromtimestamp(ts, tz).date()
