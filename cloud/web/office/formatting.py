"""Template filters for the office's and the tenant site's numbers, times and names: money from
integer micro-yuan (``yuan`` bare, ``money`` with the sign before ``¥``), energy from Wh (exact,
rounded half up only for display), times in the site's zone, a meter's and an operator's label."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from flask_babel import gettext as _
from markupsafe import Markup, escape

from cloud.access.operators import label as operator_label

DISPLAY_ZONE = "Asia/Shanghai"


def yuan(micro: int | None) -> str:
    """1234560000 → '1,234.56' (fen, half up)."""
    if micro is None:
        return ""
    value = (Decimal(int(micro)) / Decimal(1_000_000)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"{value:,.2f}"


def money(micro: int | None, unit_class: str | None = None) -> str:
    """With the currency sign, the minus before it: 1234560000 → '¥1,234.56', -80000000 →
    '-¥80.00'; a dash when unknown. ``unit_class`` puts the sign in a ``<span>`` of that class
    (markup, for a big figure with a small unit)."""
    if micro is None:
        return "—"
    digits = yuan(abs(int(micro)))
    sign = "-" if int(micro) < 0 and digits != "0.00" else ""  # no "-¥0.00"
    if unit_class is None:
        return f"{sign}¥{digits}"
    return Markup(f'{sign}<span class="{escape(unit_class)}">¥</span>{digits}')


def meter_name(meter: Any) -> str:
    """A meter's name when it says more than its id (a model or a dict with ``id`` and
    ``name``): '' when it has none or it is the id, so a label shows the id once."""
    if isinstance(meter, dict):
        meter_id, name = meter.get("id"), meter.get("name")
    else:
        meter_id, name = getattr(meter, "id", None), getattr(meter, "name", None)
    text = (name or "").strip()
    return "" if text in ("", str(meter_id)) else text


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
    # ``money`` replaces the receipts' filter of the same name (registered with the sales
    # blueprint, before this): one home for where the minus goes.
    filters: dict[str, Any] = {
        "yuan": yuan,
        "money": money,
        "kwh": kwh,
        "when": when,
        "duration": duration,
        "meter_name": meter_name,
        "operator_label": operator_label,
    }
    app.jinja_env.filters.update(filters)
