"""One meter's use of electricity as its tenant sees it (issue 12, F41, B07): the last 30 local
days and the last 12 months, this month's split by time-of-use band, and the figures of the
phone site's home page (today, this month, the current price, what the balance buys, the credit
runway).

Days are the site's local ones. A day's energy comes from its daily rollup
(``cloud.reporting.archive``) where one exists, else from the raw readings
(``archive.compute_day``, the same arithmetic), so today and days not rolled up yet count too.
The time-of-use split is the difference of the meter's own band registers (尖/峰/平/谷) between
the last reading before the month and the newest one: meters without band registers have none
(``None``, shown as such, never guessed).

The runway is the engine's own (``edge.core.engine.runway_days``, B07): a state is built from
the cloud's mirror (balance, the last days' energy and charges, the day the account opened, the
meter's effective settings) and priced with the meter's price or tariff, so the phone shows what
the collector would compute.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.control import settings as site_settings
from cloud.localtime import day_bounds, local_day, zone
from cloud.models import Account, DailyRollup, Meter, Reading, TariffVersion
from cloud.reporting import archive
from edge.core import engine
from edge.core.errors import EngineError
from edge.core.rating import price_spread
from edge.core.settings import NAMES

BANDS = ("sharp", "peak", "flat", "valley")
DAYS, MONTHS = 30, 12


@dataclass(frozen=True)
class Day:
    day: dt.date
    energy_wh: int
    charge_micro_yuan: int


def _zone_of(meter: Meter) -> dt.tzinfo:
    return zone(meter.gateway.site.timezone if meter.gateway is not None else None)


def _first_day(session: Session, meter: Meter, tz: dt.tzinfo) -> dt.date | None:
    """The first local day the cloud has data of this meter (a rollup or a reading)."""
    rolled = session.scalar(
        select(func.min(DailyRollup.day)).where(DailyRollup.meter_id == meter.id)
    )
    first_ts = session.scalar(select(func.min(Reading.ts)).where(Reading.meter_id == meter.id))
    days = [d for d in (rolled, local_day(first_ts, tz) if first_ts is not None else None) if d]
    return min(days) if days else None


def days(session: Session, meter: Meter, start: dt.date, end: dt.date) -> list[Day]:
    """Every local day ``start..end`` (inclusive) with its energy and charges (0 without data)."""
    tz = _zone_of(meter)
    stored = {
        r.day: r
        for r in session.scalars(
            select(DailyRollup).where(
                DailyRollup.meter_id == meter.id, DailyRollup.day >= start, DailyRollup.day <= end
            )
        )
    }
    first = _first_day(session, meter, tz)
    out = []
    day = start
    while day <= end:
        row = stored.get(day)
        if row is not None:
            out.append(Day(day, row.energy_wh, row.charge_micro_yuan))
        elif first is not None and day >= first:
            live = archive.compute_day(session, [meter.id], day, tz).get(meter.id)
            out.append(
                Day(day, live["energy_wh"], live["charge_micro_yuan"]) if live else Day(day, 0, 0)
            )
        else:
            out.append(Day(day, 0, 0))
        day += dt.timedelta(days=1)
    return out


def _month_start(day: dt.date, back: int = 0) -> dt.date:
    index = day.year * 12 + day.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def months(
    session: Session, meter: Meter, today: dt.date, recent: list[Day]
) -> list[tuple[str, int, int]]:
    """The last ``MONTHS`` months ending with this one: (``YYYY-MM``, energy Wh, charges). Past
    days from the rollups; the days of ``recent`` (computed live where not rolled up) win."""
    first = _month_start(today, MONTHS - 1)
    totals: dict[str, list[int]] = {}
    for back in range(MONTHS - 1, -1, -1):
        m = _month_start(today, back)
        totals[f"{m.year:04d}-{m.month:02d}"] = [0, 0]
    live = {d.day: d for d in recent}
    for row in session.scalars(
        select(DailyRollup).where(DailyRollup.meter_id == meter.id, DailyRollup.day >= first)
    ):
        if row.day in live:
            continue
        key = f"{row.day.year:04d}-{row.day.month:02d}"
        if key in totals:
            totals[key][0] += row.energy_wh
            totals[key][1] += row.charge_micro_yuan
    for d in recent:
        key = f"{d.day.year:04d}-{d.day.month:02d}"
        if key in totals:
            totals[key][0] += d.energy_wh
            totals[key][1] += d.charge_micro_yuan
    return [(key, e, c) for key, (e, c) in totals.items()]


def _bands_at(session: Session, meter_id: str, before_ts: int | None) -> dict[str, int] | None:
    """The band registers of the newest reading (before ``before_ts``) that has them."""
    stmt = select(Reading.band_energy_wh).where(
        Reading.meter_id == meter_id, Reading.band_energy_wh.is_not(None)
    )
    if before_ts is not None:
        stmt = stmt.where(Reading.ts < before_ts)
    found = session.scalar(stmt.order_by(Reading.ts.desc(), Reading.id.desc()).limit(1))
    return found if isinstance(found, dict) else None


def tou_split(session: Session, meter: Meter, today: dt.date) -> dict[str, int] | None:
    """This month's energy per band (Wh) from the meter's band registers, or None."""
    tz = _zone_of(meter)
    month_ts, _ = day_bounds(today.replace(day=1), tz)
    now_bands = _bands_at(session, meter.id, None)
    if now_bands is None:
        return None
    base = _bands_at(session, meter.id, month_ts)
    if base is None:  # no reading before the month: from the month's first one
        base = session.scalar(
            select(Reading.band_energy_wh)
            .where(
                Reading.meter_id == meter.id,
                Reading.band_energy_wh.is_not(None),
                Reading.ts >= month_ts,
            )
            .order_by(Reading.ts, Reading.id)
            .limit(1)
        )
    base = base if isinstance(base, dict) else {}
    out = {}
    for band in BANDS:
        now_v, base_v = now_bands.get(band), base.get(band, now_bands.get(band))
        if not isinstance(now_v, int) or not isinstance(base_v, int):
            return None
        out[band] = max(0, now_v - base_v)
    return out


# --- the engine's view: price and runway ------------------------------------------------------


def _tariff_versions(session: Session, tariff_id: str) -> list[dict[str, Any]]:
    return [
        {**v.body, "version": v.version, "effective_from": v.effective_from_ts}
        for v in session.scalars(
            select(TariffVersion)
            .where(TariffVersion.tariff_id == tariff_id)
            .order_by(TariffVersion.version)
        )
    ]


def engine_context(
    session: Session,
    meter: Meter,
    now: int,
    versions: dict[str, list[dict[str, Any]]] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """An engine Context and state for ``meter`` built from the cloud's mirror (``versions``:
    tariff versions already read, by tariff id, filled as they are read)."""
    tz = _zone_of(meter)
    offset = _offset_s(dt.datetime.fromtimestamp(now, tz).utcoffset())
    wanted = dict(site_settings.effective_settings(session, meter))
    if meter.tariff_id is not None:
        wanted["tariff_id"] = meter.tariff_id
    own = {k: v for k, v in wanted.items() if k in NAMES}
    tariffs: dict[str, list[dict[str, Any]]] = {}
    if own.get("tariff_id"):
        known = versions if versions is not None else {}
        if own["tariff_id"] not in known:
            known[own["tariff_id"]] = _tariff_versions(session, own["tariff_id"])
        tariffs[own["tariff_id"]] = known[own["tariff_id"]]
    ctx = engine.Context(tariffs=tariffs, zone_rules=[[0, offset]], defaults={})
    state = engine.new_state(meter.id, own)
    state["account"] = "opened" if meter.account_id is not None else "not_opened"
    state["balance_micro_yuan"] = meter.balance_micro_yuan
    return ctx, state


def _offset_s(delta: dt.timedelta | None) -> int:
    return int(delta.total_seconds()) if delta is not None else 0


def price_now(session: Session, meter: Meter, now: int) -> int | None:
    """What one kWh costs at ``now`` (micro-yuan, the band in force, the first tier); None when
    no price or tariff is in force."""
    try:
        ctx, state = engine_context(session, meter, now)
        timeline = ctx.timeline(state)
    except EngineError:
        return None
    if timeline is None:
        return None
    pieces, unrated = price_spread(timeline.spread(now, now, 1000), ["", 0])
    if unrated:
        return None
    return sum(p["wh"] * p["price"] for p in pieces) // 1000


def runway_days(session: Session, meter: Meter, now: int, recent: list[Day]) -> int:
    """The engine's runway (whole days of credit left; -1 unknown) over the cloud's mirror."""
    tz = _zone_of(meter)
    try:
        ctx, state = engine_context(session, meter, now)
    except EngineError:
        return -1
    epoch = dt.date(1970, 1, 1)
    state["daily"] = [[(d.day - epoch).days, d.energy_wh, d.charge_micro_yuan] for d in recent[-8:]]
    opened = session.scalar(select(Account.opened_ts).where(Account.id == meter.account_id))
    first = local_day(opened, tz) if opened is not None else (recent[0].day if recent else None)
    state["daily_first"] = (first - epoch).days if first is not None else None
    try:
        return int(engine.runway_days(state, now, ctx))
    except EngineError:
        return -1


def pill(meter: Meter) -> str:
    """The home page's status: ``keep_power`` (保电), ``off`` (已断电), ``arrears`` (欠费),
    ``alarm`` (报警) or ``normal`` (正常)."""
    if meter.mode == "keep_power":
        return "keep_power"
    if meter.relay == "open":
        return "off"
    if meter.display_state == "arrears":
        return "arrears"
    if meter.display_state in ("alarm1", "alarm2"):
        return "alarm"
    return "normal"


def summary(session: Session, meter: Meter, now: int) -> dict[str, Any]:
    """Everything the home page shows of one meter."""
    tz = _zone_of(meter)
    today = local_day(now, tz)
    recent = days(session, meter, today - dt.timedelta(days=DAYS - 1), today)
    price = price_now(session, meter, now)
    balance = meter.balance_micro_yuan
    return {
        "meter": meter.id,
        "name": meter.name,
        "balance_micro_yuan": balance,
        "price_micro_yuan_per_kwh": price,
        "buys_wh": (balance * 1000 // price) if price and balance > 0 else 0,
        "updated_ts": meter.last_seen_ts or meter.last_reading_ts,
        "pill": pill(meter),
        "lost_contact": meter.lost_contact,
        "relay": meter.relay,
        "mode": meter.mode,
        "today_wh": recent[-1].energy_wh,
        "month_wh": months(session, meter, today, recent)[-1][1],
        "runway_days": runway_days(session, meter, now, recent),
    }


def charts(session: Session, meter: Meter, now: int) -> dict[str, Any]:
    """The usage page's data: 30 daily bars, 12 monthly bars (kWh to 3 places as text-free
    integers of Wh), and this month's TOU split."""
    tz = _zone_of(meter)
    today = local_day(now, tz)
    recent = days(session, meter, today - dt.timedelta(days=DAYS - 1), today)
    return {
        "daily": [
            {
                "day": d.day.isoformat(),
                "energy_wh": d.energy_wh,
                "charge_micro_yuan": d.charge_micro_yuan,
            }
            for d in recent
        ],
        "monthly": [
            {"month": key, "energy_wh": e, "charge_micro_yuan": c}
            for key, e, c in months(session, meter, today, recent)
        ],
        "tou": tou_split(session, meter, today),
    }
