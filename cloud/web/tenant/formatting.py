"""Numbers and times as the phone site shows them (exact integers in, rounded only here)."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from flask import Flask

from cloud.localtime import zone
from cloud.models import now_ts
from cloud.web.office.formatting import DISPLAY_ZONE


def kwh_short(wh: int | None) -> str:
    """1234 Wh → '1.23' (kWh, two places, half up)."""
    if wh is None:
        return ""
    value = (Decimal(int(wh)) / Decimal(1000)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"{value:,.2f}"


def price(micro_per_kwh: int | None) -> str:
    """1_200_000 → '1.20' (yuan per kWh; up to four places when the price has them)."""
    if micro_per_kwh is None:
        return ""
    value = Decimal(int(micro_per_kwh)) / Decimal(1_000_000)
    text = f"{value.quantize(Decimal('0.0001'), ROUND_HALF_UP):f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def hhmm(ts: int | None, tz_name: str = DISPLAY_ZONE) -> str:
    """'14:05' today, '12-01 14:05' on an earlier day (the site's zone)."""
    if ts is None:
        return ""
    tz = zone(tz_name)
    when = dt.datetime.fromtimestamp(int(ts), tz)
    today = dt.datetime.fromtimestamp(now_ts(), tz).date()
    return when.strftime("%H:%M") if when.date() == today else when.strftime("%m-%d %H:%M")


def install(app: Flask) -> None:
    app.jinja_env.filters.update({"kwh_short": kwh_short, "price": price, "hhmm": hhmm})
