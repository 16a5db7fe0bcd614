"""A site's local calendar. Timestamps are UTC epoch seconds everywhere inside the system; a
site's time zone (default Asia/Shanghai) only places them into local days, months and years:
for receipt numbers, daily reports, rollups and archive cut-offs."""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import time
import zoneinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import InvalidError, NotFoundError, RuleError
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
            raise RuleError("there are several sites; say which with site=", "site")
        if not sites:
            return None, dt.UTC
        site = sites[0]
    else:
        found = session.get(Site, site_id)
        if found is None:
            raise NotFoundError(f"site {site_id!r} does not exist", "site")
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


# -- dates and times as the API takes them --------------------------------------------------
#
# The patterns are exact (a pattern-valid text always parses), so the OpenAPI document can
# publish them and the server accepts exactly what they match: Gregorian dates 1000-01-01 …
# 9999-12-31 with 29 February only in leap years; times HH:MM[:SS[.ffffff]] with an optional
# Z or ±HH:MM offset.
_YEAR = "[1-9][0-9]{3}"
_COMMON_DAY = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_YEAR = "(?:[1-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[13579][26])00)"
_DATE = f"(?:{_YEAR}-{_COMMON_DAY}|{_LEAP_YEAR}-02-29)"
_CLOCK = "(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{1,6})?)?"
_OFFSET = "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
DATE_PATTERN = f"^{_DATE}$"
# Epoch seconds (at most 12 digits: up to year 33658), or a local date (midnight UTC), or an
# ISO 8601 date and time (UTC unless it carries an offset).
TIME_PATTERN = f"^(?:-?[0-9]{{1,12}}|{_DATE}(?:T{_CLOCK}{_OFFSET}?)?)$"
_DATE_RE = re.compile(DATE_PATTERN)
_TIME_RE = re.compile(TIME_PATTERN)


def parse_date(text: str, field: str) -> dt.date:
    """A local date ``YYYY-MM-DD`` (``DATE_PATTERN``); ``InvalidError`` naming ``field``."""
    if not isinstance(text, str) or not _DATE_RE.match(text):
        raise InvalidError(f"{field} must be a date YYYY-MM-DD, got {text!r:.40}", field)
    return dt.date.fromisoformat(text)


def parse_time(text: str, field: str) -> int:
    """UTC epoch seconds from epoch seconds or an ISO 8601 date/time (``TIME_PATTERN``)."""
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise InvalidError(
            f"{field} must be epoch seconds or an ISO 8601 time like 2026-01-31T08:00:00Z; "
            f"got {text!r:.40}",
            field,
        )
    if text.lstrip("-").isdigit():
        return int(text)
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return math.floor(when.timestamp())


def today(tz: dt.tzinfo, now: int | None = None) -> dt.date:
    """The local date at ``tz`` now (or at ``now``): a report's default end."""
    stamp = now if now is not None else int(time.time())
    return local_day(stamp, tz)
