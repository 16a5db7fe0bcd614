"""Template filters for the office's numbers and times: money from integer micro-yuan, energy
from Wh (exact, rounded half up only for display), times in the site's zone."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from flask_babel import gettext as _

DISPLAY_ZONE = "Asia/Shanghai"


def yuan(micro: int | None) -> str:
    """1234560000 → '1,234.56' (fen, half up)."""
    if micro is None:
        return ""
    value = (Decimal(int(micro)) / Decimal(1_000_000)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"{value:,.2f}"


def kwh(wh: int | None) -> str:
    if wh is None:
        return ""
    return f"{Decimal(int(wh)) / Decimal(1000):,.3f}"


def when(ts: int | None, zone: str = DISPLAY_ZONE) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(int(ts), ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: int | None) -> str:
    """A rough span for people: '3 d 4 h', '25 min'."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return _("%(d)d d %(h)d h", d=days, h=hours)
    if hours:
        return _("%(h)d h %(m)d min", h=hours, m=minutes)
    return _("%(m)d min", m=minutes)


def install(app: Flask) -> None:
    filters: dict[str, Any] = {"yuan": yuan, "kwh": kwh, "when": when, "duration": duration}
    app.jinja_env.filters.update(filters)
