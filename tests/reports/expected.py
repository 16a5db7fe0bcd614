"""The fixture park's figures computed by hand from its definition (``park.PROFILE``,
``park.SCHEDULE``, the two tariff versions, ``park.MONEY``), without any of the code under test:
each half-hour interval's energy, its band from the schedule at its local start time, its price
from the version in force then, its charge = Wh × price / 1000 (exact: every price is a whole
number of fen per kWh... of milli-yuan); the interval counts on the local day of the reading
that closes it. Money counts as the reports define it: a sale on the day it was made (pending
included), a refund or reversal on the day it was confirmed."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from tests.reports import park

BANDS = ("sharp", "peak", "flat", "valley", "deep_valley", "single")


def band_at(ts: int) -> str:
    local = dt.datetime.fromtimestamp(ts, park.TZ)
    hhmm = f"{local.hour:02d}:{local.minute:02d}"
    band = park.SCHEDULE[0][1]
    for start, name in park.SCHEDULE:
        if start <= hhmm:
            band = name
    return band


@dataclass(frozen=True)
class Interval:
    meter: str
    end: int  # the closing reading
    wh: int
    band: str
    charge: int

    @property
    def day(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.end, park.TZ).date()


def intervals(meter: str) -> list[Interval]:
    kind = park.METERS[meter][2]
    out = []
    times = park.reading_times(meter)
    for prev, end in itertools.pairwise(times):
        wh = park.consumption(meter, prev)
        if kind == "tou":
            band = band_at(prev)
            price = (park.V2 if prev >= park.V2_FROM else park.V1)[band]
        elif kind == "flat":
            band, price = "single", park.W2_PRICE
        else:
            band, price = "single", 0
        assert wh * price % 1000 == 0
        out.append(Interval(meter, end, wh, band, wh * price // 1000))
    return out


@dataclass
class DayTotal:
    wh: int = 0
    charge: int = 0
    bands: dict[str, list[int]] = field(default_factory=lambda: {b: [0, 0] for b in BANDS})


def energy_by_day(meters: list[str]) -> dict[dt.date, DayTotal]:
    out: dict[dt.date, DayTotal] = defaultdict(DayTotal)
    for m in meters:
        for i in intervals(m):
            d = out[i.day]
            d.wh += i.wh
            d.charge += i.charge
            d.bands[i.band][0] += i.wh
            d.bands[i.band][1] += i.charge
    return dict(out)


def total(days: dict[dt.date, DayTotal], first: dt.date, last: dt.date) -> DayTotal:
    out = DayTotal()
    for day, d in days.items():
        if first <= day <= last:
            out.wh += d.wh
            out.charge += d.charge
            for b in BANDS:
                out.bands[b][0] += d.bands[b][0]
                out.bands[b][1] += d.bands[b][1]
    return out


def money_day(event: park.Money) -> dt.date:
    return dt.datetime.fromtimestamp(event.at, park.TZ).date()


def sales_by_day() -> dict[dt.date, dict[str, int]]:
    """Per local day: sales (count, amount, pending), refunds, reversals, net."""
    out: dict[dt.date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in park.MONEY:
        row = out[money_day(e)]
        key = {"sale": "sales", "refund": "refunds", "reversal": "reversals"}[e.kind]
        row[f"{key}_count"] += 1
        row[f"{key}_micro_yuan"] += e.amount
        if e.kind == "sale" and not e.applied:
            row["pending_count"] += 1
            row["pending_micro_yuan"] += e.amount
        row["net_micro_yuan"] += e.amount if e.kind == "sale" else -e.amount
    return {d: dict(v) for d, v in out.items()}


def balance_before(meter: str, ts: int) -> int:
    """The ledger balance of a meter at ``ts``: applied money confirmed before it (a second or
    three after it was made) minus the charges of intervals closed before it."""
    money = sum(
        (e.amount if e.kind == "sale" else -e.amount)
        for e in park.MONEY
        if e.meter == meter and e.applied and e.at + 3 < ts
    )
    charges = sum(i.charge for i in intervals(meter) if i.end < ts)
    return money - charges
