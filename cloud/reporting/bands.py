"""Energy and charges split by time-of-use band (尖/峰/平/谷/深谷) for the daily rollups, the
energy analysis (F31) and the tenant statement.

The cloud stores readings as the collector reported them: each with the energy counter and the
charge the collector rated since the meter's previous report (``charge_micro_yuan``). Between
two consecutive readings of a meter lies an *interval*; its energy is the counter's rise, and
its charge is exactly the second reading's ``charge_micro_yuan``. An interval belongs to the
local day of the reading that closes it (the rule of ``archive.compute_day``: a day's energy is
its last counter minus the last counter before it).

Within an interval the energy is split across bands with the engine's own rating timeline
(``edge.core.rating.Timeline.spread``: in proportion to time, integer largest remainder, the
tariff version in force at each instant), so the split is the one the collector priced. The
interval's charge is then shared between its bands in proportion to Wh × the band's price
(``split_by_weights``): band charges always add up to the collector's charge to the micro-yuan,
so a report's cost is the edge's charges by construction. (With tiers the weight uses the first
tier's price; the shares move, the total does not.)

Energy rated at one price (a per-meter price or the site's default price), or while no tariff
version was in force, is ``single``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.control.meter_settings import effective_settings
from cloud.models import Meter, TariffVersion
from edge.core.errors import EngineError
from edge.core.money import split_by_weights
from edge.core.rating import Timeline
from edge.core.tariff import compile_tariff
from edge.core.tz import ZoneRules

TOU_BANDS = ("sharp", "peak", "flat", "valley", "deep_valley")
CATEGORIES = (*TOU_BANDS, "single")
_STEP_S = 6 * 3600


def empty() -> dict[str, list[int]]:
    """``{category: [wh, micro_yuan]}`` with every category at zero."""
    return {c: [0, 0] for c in CATEGORIES}


def zone_rules(tz: dt.tzinfo, start_utc: int, end_utc: int) -> list[list[int]]:
    """The engine's UTC-offset rules for ``tz`` over a span (the algorithm of
    ``edge.tzrules.zone_rules``, which the cloud may not import: sample every 6 h, pin each
    change to the second by bisection)."""

    def offset(t: int) -> int:
        off = dt.datetime.fromtimestamp(t, tz).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    rules = [[start_utc, offset(start_utc)]]
    t = start_utc
    while t < end_utc:
        nxt = min(t + _STEP_S, end_utc)
        if offset(nxt) != rules[-1][1]:
            lo, hi = t, nxt
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == rules[-1][1]:
                    lo = mid
                else:
                    hi = mid
            rules.append([hi, offset(hi)])
        t = nxt
    return rules


class Rater:
    """The rating timelines of a set of meters over one span (built once per rollup or report):
    a meter rated at one price has none (all its energy is ``single``)."""

    def __init__(
        self, session: Session, meters: Iterable[Meter], tz: dt.tzinfo, span: tuple[int, int]
    ):
        self._zone = ZoneRules(zone_rules(tz, span[0] - 86400, span[1] + 86400))
        self._by_tariff: dict[str, Timeline | None] = {}
        self._meter_tariff: dict[str, str | None] = {}
        for meter in meters:
            tariff = meter.tariff_id
            if tariff is not None and meter.price_override_micro_yuan_per_kwh is None:
                settings = effective_settings(session, meter)
                if settings.get("price_override_micro_yuan_per_kwh") is not None:
                    tariff = None
            else:
                tariff = None
            self._meter_tariff[meter.id] = tariff
            if tariff is not None and tariff not in self._by_tariff:
                self._by_tariff[tariff] = self._timeline(session, tariff)

    def _timeline(self, session: Session, tariff_id: str) -> Timeline | None:
        versions = [
            {**v.body, "version": v.version, "effective_from": v.effective_from_ts}
            for v in session.scalars(
                select(TariffVersion)
                .where(TariffVersion.tariff_id == tariff_id)
                .order_by(TariffVersion.version)
            )
        ]
        if not versions:
            return None
        try:
            return Timeline(compile_tariff(tariff_id, versions), self._zone)
        except EngineError:  # a stored version the engine refuses: rate nothing by band
            return None

    def timeline(self, meter_id: str) -> Timeline | None:
        tariff = self._meter_tariff.get(meter_id)
        return self._by_tariff.get(tariff) if tariff is not None else None


def split_interval(
    out: dict[str, list[int]],
    timeline: Timeline | None,
    t0: int,
    t1: int,
    energy_wh: int,
    charge_micro_yuan: int,
) -> None:
    """Add one interval's energy and charge to ``out`` by band (see the module docstring)."""
    if energy_wh <= 0 or timeline is None:
        out["single"][0] += max(energy_wh, 0)
        out["single"][1] += charge_micro_yuan
        return
    by_band: dict[str, list[int]] = {}
    for wh, window in timeline.spread(t0, t1, energy_wh):
        version, band = window[2], window[3]
        key = band if (version is not None and band in TOU_BANDS) else "single"
        price = version.price_of(band, 0) if version is not None else 0
        slot = by_band.setdefault(key, [0, 0])
        slot[0] += wh
        slot[1] += wh * price
    keys = list(by_band)
    weights = [by_band[k][1] for k in keys]
    if not any(weights):
        weights = [by_band[k][0] for k in keys]
    shares = split_by_weights(charge_micro_yuan, weights) if charge_micro_yuan >= 0 else None
    for i, key in enumerate(keys):
        out[key][0] += by_band[key][0]
        if shares is not None:
            out[key][1] += shares[i]
    if shares is None:  # a negative correction: keep it whole, outside the bands
        out["single"][1] += charge_micro_yuan


def split_readings(
    timeline: Timeline | None,
    previous: tuple[int, int] | None,
    readings: Iterable[tuple[int, int | None, int]],
) -> dict[str, list[int]]:
    """One meter's day by band: ``previous`` is (ts, energy) of the reading before the day (or
    None), ``readings`` the day's (ts, energy_wh, charge) in time order. A counter that goes
    back starts a new base (its fall is no energy)."""
    out = empty()
    last = previous
    for ts, energy, charge in readings:
        if energy is None:
            out["single"][1] += charge
            continue
        if last is None:
            out["single"][1] += charge  # nothing before it: a charge with no interval known
        else:
            split_interval(out, timeline, last[0], ts, max(0, energy - last[1]), charge)
        last = (ts, energy)
    return out


def columns(split: dict[str, list[int]]) -> dict[str, int]:
    """A split as the rollup's column values (``sharp_wh``, ``sharp_micro_yuan``, …)."""
    values: dict[str, int] = {}
    for category in CATEGORIES:
        values[f"{category}_wh"] = split[category][0]
        values[f"{category}_micro_yuan"] = split[category][1]
    return values


def from_columns(row: Any) -> dict[str, list[int]]:
    """A rollup row's (or a dict of its columns') split."""
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return {c: [int(get(f"{c}_wh") or 0), int(get(f"{c}_micro_yuan") or 0)] for c in CATEGORIES}
