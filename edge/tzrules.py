"""Build the engine's UTC-offset rules from the time-zone database (CPython side).

The engine (edge/core, MicroPython subset) has no zone database; it takes the site's zone as
``[[utc_from, offset_s], ...]`` (edge/core/tz.py). This module makes that list from ``zoneinfo``
for a zone name and a time span: it samples the offset every ``step_s`` and pins every change
to the exact second by bisection. Offsets that change twice within one step would be missed,
so the step (6 h) is far below the shortest gap between real transitions (months).

    >>> zone_rules("Asia/Shanghai", 1735689600, 2051222400)
    [[1735689600, 28800]]
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

YEAR_S = 365 * 86400
DEFAULT_STEP_S = 6 * 3600


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'Asia/Shanghai' "
            "(the system's tzdata package provides them)"
        ) from exc


def _offset_s(zone: zoneinfo.ZoneInfo, utc: int) -> int:
    offset = datetime.fromtimestamp(utc, UTC).astimezone(zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def zone_rules(
    zone_name: str, start_utc: int, end_utc: int, step_s: int = DEFAULT_STEP_S
) -> list[list[int]]:
    """The offset rules of ``zone_name`` from ``start_utc`` to ``end_utc`` (epoch seconds).

    The first rule starts at ``start_utc`` (the engine also applies it to earlier instants);
    the last one holds after ``end_utc``. Raises ValueError for an unknown zone or an empty span.
    """
    if end_utc < start_utc:
        raise ValueError(f"zone_rules: end {end_utc} is before start {start_utc}")
    if step_s < 60:
        raise ValueError("zone_rules: step_s must be at least 60 s")
    zone = _zone(zone_name)
    rules = [[start_utc, _offset_s(zone, start_utc)]]
    t = start_utc
    while t < end_utc:
        nxt = min(t + step_s, end_utc)
        if _offset_s(zone, nxt) != rules[-1][1]:
            lo, hi = t, nxt  # offset(lo) == previous rule's, offset(hi) differs
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset_s(zone, mid) == rules[-1][1]:
                    lo = mid
                else:
                    hi = mid
            rules.append([hi, _offset_s(zone, hi)])
        t = nxt
    return rules


def rules_around(
    zone_name: str, now_utc: int, years_back: int = 2, years_ahead: int = 10
) -> list[list[int]]:
    """Rules covering a span around ``now_utc``: enough to rate old readings and to run for
    years without rebuilding (rebuild them at every agent start)."""
    return zone_rules(zone_name, now_utc - years_back * YEAR_S, now_utc + years_ahead * YEAR_S)
