"""The meter board's figures for one page of meters (F18, B07), in a fixed number of queries
whatever the page: today's energy (``今日用电``) and the credit runway (``约 2 天``).

The runway is the engine's own (``edge.core.engine.runway_days``) over the cloud's mirror, as
``cloud.reporting.usage.runway_days`` computes it for one meter on the tenant's phone: the
last eight local days' energy and charges, the day the account opened, the meter's effective
settings and its tariff. Here the days come from one query over the daily rollups for the
whole page; a past day not rolled up yet (the bridge's archive job rolls days up after they
end) is computed from the raw readings for the meters missing it, one query per such day
(``archive.compute_day``, the same arithmetic). Today is always computed live.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cloud.localtime import local_day, zone
from cloud.models import Account, DailyRollup, Gateway, Meter, SiteDefaults
from cloud.reporting import archive
from cloud.reporting.usage import engine_context
from edge.core import engine
from edge.core.errors import EngineError
from edge.core.history import DAILY_DAYS

EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class Figures:
    today_wh: int | None  # None: no reading today
    runway_days: int  # -1: unknown (no history, no consumption, no account)


def _tz_name(meter: Meter) -> str | None:
    return meter.gateway.site.timezone if meter.gateway is not None else None


def figures(session: Session, meters: list[Meter], now: int) -> dict[str, Figures]:
    """Today's energy and the runway of each meter (by id)."""
    out: dict[str, Figures] = {}
    # Held for the page: the session's identity map keeps rows weakly, so without these every
    # meter's engine context would read its collector, site and site defaults again.
    held = _collectors_and_defaults(session, meters)
    by_zone: dict[str | None, list[Meter]] = defaultdict(list)
    for m in meters:
        by_zone[_tz_name(m)].append(m)
    opened = _opened_days(session, meters)
    versions: dict[str, list[dict[str, Any]]] = {}
    for tz_name, group in by_zone.items():
        tz = zone(tz_name)
        today = local_day(now, tz)
        days = _days(session, group, today, tz)
        for m in group:
            mine = days.get(m.id, {})
            today_wh = mine[today][0] if today in mine else None
            out[m.id] = Figures(today_wh, _runway(session, m, now, today, mine, opened, versions))
    del held
    return out


def _collectors_and_defaults(session: Session, meters: list[Meter]) -> list[Any]:
    """The page's collectors (with their sites) and the sites' defaults, read once."""
    ids = {m.gateway_id for m in meters}
    gateways = list(
        session.scalars(
            select(Gateway).where(Gateway.id.in_(ids)).options(selectinload(Gateway.site))
        )
    )
    sites = {g.site_id for g in gateways}
    defaults = list(session.scalars(select(SiteDefaults).where(SiteDefaults.site_id.in_(sites))))
    return [*gateways, *defaults]


def _opened_days(session: Session, meters: list[Meter]) -> dict[int, int]:
    """Account id → the UTC second it opened (the engine ignores that first, partial day)."""
    ids = {m.account_id for m in meters if m.account_id is not None}
    if not ids:
        return {}
    rows = session.execute(select(Account.id, Account.opened_ts).where(Account.id.in_(ids)))
    return {int(a): int(t) for a, t in rows}


def _days(
    session: Session, meters: list[Meter], today: dt.date, tz: dt.tzinfo
) -> dict[str, dict[dt.date, tuple[int, int]]]:
    """meter id → {local day: (energy Wh, charges)} for the last ``DAILY_DAYS`` days to today."""
    first = today - dt.timedelta(days=DAILY_DAYS - 1)
    ids = [m.id for m in meters]
    out: dict[str, dict[dt.date, tuple[int, int]]] = {i: {} for i in ids}
    rolled = session.execute(
        select(
            DailyRollup.meter_id,
            DailyRollup.day,
            DailyRollup.energy_wh,
            DailyRollup.charge_micro_yuan,
        ).where(DailyRollup.meter_id.in_(ids), DailyRollup.day >= first, DailyRollup.day < today)
    )
    for meter_id, day, energy, charge in rolled:
        out[meter_id][day] = (int(energy), int(charge))
    day = first
    while day <= today:
        missing = [i for i in ids if day not in out[i]]
        if missing:
            for meter_id, live in archive.compute_day(session, missing, day, tz).items():
                out[meter_id][day] = (int(live["energy_wh"]), int(live["charge_micro_yuan"]))
        day += dt.timedelta(days=1)
    return out


def _runway(
    session: Session,
    meter: Meter,
    now: int,
    today: dt.date,
    days: dict[dt.date, tuple[int, int]],
    opened: dict[int, int],
    versions: dict[str, list[dict[str, Any]]],
) -> int:
    if meter.account_id is None or not meter.prepaid:
        return -1
    try:
        ctx, state = engine_context(session, meter, now, versions)
    except EngineError:
        return -1
    tz = zone(_tz_name(meter))
    state["daily"] = [
        [(d - EPOCH).days, days[d][0], days[d][1]] for d in sorted(days) if d <= today
    ]
    opened_ts = opened.get(meter.account_id)
    first = local_day(opened_ts, tz) if opened_ts is not None else min(days, default=None)
    state["daily_first"] = (first - EPOCH).days if first is not None else None
    try:
        return int(engine.runway_days(state, now, ctx))
    except EngineError:
        return -1
