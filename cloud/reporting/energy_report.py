"""能耗分析 (F31): a place's energy and cost over a date range at a scale (day, month, year),
split into the time-of-use bands, with a comparison: the same range a year before (同比,
year-on-year) or the range just before it (环比, period-on-period: as many days, months or years
as the range covers, ending where it starts).

Figures are the daily rollups' (``cloud.reporting.days``: for the site or a building their
per-building totals; today and days not rolled up yet from the raw readings): energy from the counters, cost = the charges the collectors reported,
split by band as the collector rated them (``cloud.reporting.bands``), so the cost column is the
edge's charges to the micro-yuan. Shares are in basis points (1/100 of a percent), split so they
add up to exactly 100.00 %.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from cloud.access.scope import EVERYTHING, Scope
from cloud.errors import InvalidError
from cloud.localtime import site_zone, today
from cloud.reporting import bands, days, filters
from cloud.reporting.sales_report import bucket_key, bucket_starts
from edge.core.money import split_by_weights

SCALES = ("day", "month", "year")
COMPARISONS = ("none", "yoy", "pop")


def shares(values: list[int]) -> list[int]:
    """Basis points of each value in their sum (adding up to 10,000; all zero for a zero sum)."""
    if not values or sum(values) <= 0:
        return [0] * len(values)
    return split_by_weights(10_000, [max(v, 0) for v in values])


def change_bp(now: int, before: int) -> int | None:
    """The change from ``before`` to ``now`` in basis points (None when before is 0)."""
    if before <= 0:
        return None
    change = abs(now - before) * 10_000 // before  # toward zero, in integers
    return change if now >= before else -change


def _shift_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _months_before(first: dt.date, months: int) -> dt.date:
    """The first of the month ``months`` before the month starting ``first``."""
    index = first.year * 12 + first.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def base_range(rng: filters.Range, scale: str, compare: str) -> filters.Range | None:
    """The range a comparison is made with (None for ``none``)."""
    if compare == "none":
        return None
    if compare == "yoy":
        return filters.Range(_shift_years(rng.start, -1), _shift_years(rng.end, -1))
    if scale == "day":
        return filters.Range(
            rng.start - dt.timedelta(days=rng.days), rng.start - dt.timedelta(days=1)
        )
    if scale == "month":
        months = (rng.end.year - rng.start.year) * 12 + rng.end.month - rng.start.month + 1
        start = _months_before(rng.start.replace(day=1), months)
        return filters.Range(start, rng.start - dt.timedelta(days=1))
    years = rng.end.year - rng.start.year + 1
    return filters.Range(dt.date(rng.start.year - years, 1, 1), rng.start - dt.timedelta(days=1))


def _series(
    by_day: dict[dt.date, days.Day], rng: filters.Range, scale: str
) -> list[dict[str, Any]]:
    starts = bucket_starts(scale, rng.start, rng.end)
    out = []
    for i, first in enumerate(starts):
        last = starts[i + 1] - dt.timedelta(days=1) if i + 1 < len(starts) else rng.end
        bucket = days.Day()
        day = first
        while day <= last:
            found = by_day.get(day)
            if found is not None:
                bucket.add(found)
            day += dt.timedelta(days=1)
        out.append({"period": bucket_key(scale, first), "day": bucket})
    return out


def _band_table(total: days.Day) -> list[dict[str, Any]]:
    names = [*bands.CATEGORIES, "unsplit"]
    wh = [total.bands[c][0] for c in bands.CATEGORIES] + [total.unsplit_wh]
    cost = [total.bands[c][1] for c in bands.CATEGORIES] + [0]
    parts = shares(wh)
    return [
        {"band": n, "energy_wh": w, "cost_micro_yuan": c, "share_bp": s}
        for n, w, c, s in zip(names, wh, cost, parts, strict=True)
        if w or c
    ]


def _whole_buildings(
    scope: Scope, site: str | None, where: filters.Place | None
) -> days.Buildings | None:
    """When the place is whole buildings (the site, a building; an operator's buildings), the
    per-building totals hold its days."""
    if site is None:
        return None
    if where is not None and where.kind == "building" and where.id is not None:
        return days.Buildings(site, (where.id,))
    if where is not None and where.kind != "site":
        return None
    if scope.building_ids is None:
        return days.Buildings(site)
    return days.Buildings(site, tuple(sorted(scope.building_ids)))


def analysis(
    session: Session,
    rng: filters.Range,
    scale: str = "day",
    compare: str = "none",
    *,
    site_id: str | None = None,
    scope: Scope = EVERYTHING,
    where: filters.Place | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """The analysis of ``where`` (default the whole site) over ``rng`` (see the module doc)."""
    if scale not in SCALES:
        raise InvalidError(f"scale must be day, month or year; got {scale!r}", "scale")
    if compare not in COMPARISONS:
        raise InvalidError(f"compare must be none, yoy or pop; got {compare!r}", "compare")
    filters.date_range(rng.start, rng.end)
    site, zone = site_zone(session, site_id)
    meters = filters.meter_ids(scope, site, where)
    local_today = today(zone, now)
    whole = _whole_buildings(scope, site, where)
    by_day = days.per_day(
        session, meters, rng.start, rng.end, zone, today=local_today, buildings=whole
    )
    series = _series(by_day, rng, scale)
    total = days.total(by_day)
    base = base_range(rng, scale, compare)
    base_series: list[dict[str, Any]] = []
    base_total = None
    if base is not None:
        base_days = days.per_day(
            session, meters, base.start, base.end, zone, today=local_today, buildings=whole
        )
        base_series = _series(base_days, base, scale)
        base_total = days.total(base_days)
    bucket_shares = shares([b["day"].energy_wh for b in series])
    rows = []
    for i, bucket in enumerate(series):
        d: days.Day = bucket["day"]
        before = base_series[i]["day"] if i < len(base_series) else None
        rows.append(
            {
                "period": bucket["period"],
                "energy_wh": d.energy_wh,
                "cost_micro_yuan": d.charge_micro_yuan,
                "share_bp": bucket_shares[i],
                "bands": {c: d.bands[c][0] for c in bands.CATEGORIES},
                "band_costs": {c: d.bands[c][1] for c in bands.CATEGORIES},
                "unsplit_wh": d.unsplit_wh,
                "base_period": base_series[i]["period"] if before is not None else None,
                "base_energy_wh": before.energy_wh if before is not None else None,
                "base_cost_micro_yuan": before.charge_micro_yuan if before is not None else None,
                "change_bp": change_bp(d.energy_wh, before.energy_wh)
                if before is not None
                else None,
            }
        )
    return {
        "site": site,
        "place": where.key if where is not None else "",
        "from": rng.start.isoformat(),
        "to": rng.end.isoformat(),
        "scale": scale,
        "compare": compare,
        "base": {"from": base.start.isoformat(), "to": base.end.isoformat()} if base else None,
        "rows": rows,
        "bands": _band_table(total),
        "total_energy_wh": total.energy_wh,
        "total_cost_micro_yuan": total.charge_micro_yuan,
        "base_energy_wh": base_total.energy_wh if base_total is not None else None,
        "base_cost_micro_yuan": base_total.charge_micro_yuan if base_total is not None else None,
        "change_bp": (
            change_bp(total.energy_wh, base_total.energy_wh) if base_total is not None else None
        ),
        "cost_change_bp": (
            change_bp(total.charge_micro_yuan, base_total.charge_micro_yuan)
            if base_total is not None
            else None
        ),
    }
