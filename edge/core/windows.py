"""Friendly-credit windows (B09): local times and dates when a credit trip is not executed.

The setting ``friendly_windows`` is a list of at most 16 windows::

    {"days": "daily" | "weekdays" | "weekend" | "holidays" | [0, 6, ...], "from": "HH:MM", "to": "HH:MM"}

``days`` says which local days a window *starts* on: every day, Monday to Friday, Saturday and
Sunday, the dates in the ``holidays`` setting, or a list of weekdays (0 = Monday). A window whose
``to`` is not after its ``from`` runs past midnight into the next day (``22:00`` to ``07:00``);
``"00:00"`` to ``"24:00"`` is a whole day. Inside a window the balance may fall below the
overdraft floor without a trip; the debt is recovered from the next credit, and the trip happens
once the window is over if the balance is still at or below the floor (relay.py).
"""

from edge.core.compat import Any, is_int
from edge.core.errors import SettingsError
from edge.core.tz import parse_date, parse_hhmm, weekday

MAX_WINDOWS = 16
MAX_HOLIDAYS = 400
DAY_KINDS = ("daily", "weekdays", "weekend", "holidays")

# A compiled window is a tuple (weekday mask of 7 bools or None for holidays, from_s, to_s).


def parse_holidays(raw: object, where: str) -> dict[int, bool]:
    """Validate a list of local dates; returns a set-like ``{days: True}``."""
    if not isinstance(raw, list) or len(raw) > MAX_HOLIDAYS:
        raise SettingsError("%s: expected a list of at most %d dates" % (where, MAX_HOLIDAYS))
    out = {}
    for i, text in enumerate(raw):
        out[parse_date(text, "%s[%d]" % (where, i))] = True
    return out


def compile_windows(raw: object, where: str) -> list[tuple]:
    """Validate the ``friendly_windows`` setting; raises SettingsError naming the window."""
    if not isinstance(raw, list) or len(raw) > MAX_WINDOWS:
        raise SettingsError("%s: expected a list of at most %d windows" % (where, MAX_WINDOWS))
    out = []
    for i, win in enumerate(raw):
        here = "%s[%d]" % (where, i)
        if not isinstance(win, dict) or sorted(win) != ["days", "from", "to"]:
            raise SettingsError('%s: expected {"days": ..., "from": "HH:MM", "to": "HH:MM"}' % here)
        days = win["days"]
        mask: Any
        if days == "daily":
            mask = [True] * 7
        elif days == "weekdays":
            mask = [True, True, True, True, True, False, False]
        elif days == "weekend":
            mask = [False, False, False, False, False, True, True]
        elif days == "holidays":
            mask = None
        elif isinstance(days, list) and days and all(is_int(d) and 0 <= d <= 6 for d in days):
            mask = [d in days for d in range(7)]
        else:
            raise SettingsError(
                "%s: days must be one of %s or a list of weekdays 0..6, got %r"
                % (here, ", ".join(DAY_KINDS), days)
            )
        start = parse_hhmm(win["from"], here + ".from")
        end = parse_hhmm(win["to"], here + ".to")
        if start >= 86400:
            raise SettingsError("%s: a window cannot start at 24:00" % here)
        if start == end:
            raise SettingsError("%s: from equals to; use 00:00 to 24:00 for a whole day" % here)
        out.append((mask, start, end))
    return out


def _day_matches(mask: Any, days: int, holidays: dict[int, bool]) -> bool:
    if mask is None:
        return days in holidays
    return bool(mask[weekday(days)])


def in_window(
    windows: list[tuple], holidays: dict[int, bool], days: int, second_of_day: int
) -> bool:
    """True when the local instant (day ``days``, ``second_of_day``) is inside any window."""
    for mask, start, end in windows:
        if start < end:
            if start <= second_of_day < end and _day_matches(mask, days, holidays):
                return True
        else:
            if second_of_day >= start and _day_matches(mask, days, holidays):
                return True
            if second_of_day < end and _day_matches(mask, days - 1, holidays):
                return True
    return False
