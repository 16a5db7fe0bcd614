"""Local civil time without a time-zone database.

The site's zone reaches the engine as UTC-offset rules ``[[utc_from, offset_s], ...]``, built on
CPython from ``zoneinfo`` by ``edge.tzrules`` (architecture.md, "Money, energy, time"). A rule
applies from its ``utc_from`` until the next rule's; the first rule also applies to every instant
before it and the last one to every instant after it. China has had no DST since 1991, but
nothing here assumes a zone: any number of offset changes works.

Dates are counted as days since 1970-01-01 (the proleptic Gregorian calendar), converted with
Howard Hinnant's ``days_from_civil`` / ``civil_from_days`` (integer only, exact for any year).
Weekdays are 0 = Monday ... 6 = Sunday (1970-01-01 was a Thursday, 3).
"""

from edge.core.compat import bisect_right, is_int
from edge.core.errors import SettingsError

SECONDS_PER_DAY = 86400
MAX_OFFSET_S = 18 * 3600
# Sentinels for "before the first rule" / "after the last rule": far outside any real timestamp.
NEVER_BEFORE = -(2**62)
NEVER_AFTER = 2**62


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of the civil date ``year-month-day``."""
    if month <= 2:
        year -= 1
    era = year // 400
    yoe = year - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """``(year, month, day)`` of the day ``days`` after 1970-01-01."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400
    if month <= 2:
        year += 1
    return year, month, day


def weekday(days: int) -> int:
    """0 = Monday ... 6 = Sunday."""
    return (days + 3) % 7


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return days_from_civil(year, month + 1, 1) - days_from_civil(year, month, 1)


def parse_date(text: object, what: str, error: type[Exception] = SettingsError) -> int:
    """Parse a local date ``"YYYY-MM-DD"`` into days since 1970-01-01.

    ``what`` names the field in the error; ``error`` is the class raised (default SettingsError).
    """
    if not isinstance(text, str):
        raise error("%s: expected a date string 'YYYY-MM-DD', got %r" % (what, text))
    parts = text.split("-")
    if (
        len(parts) != 3
        or len(parts[0]) != 4
        or len(parts[1]) != 2
        or len(parts[2]) != 2
        or not (parts[0].isdigit() and parts[1].isdigit() and parts[2].isdigit())
    ):
        raise error("%s: expected a date 'YYYY-MM-DD', got %r" % (what, text))
    year = int(parts[0])
    month = int(parts[1])
    day = int(parts[2])
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        raise error("%s: %r is not a calendar date" % (what, text))
    return days_from_civil(year, month, day)


def parse_hhmm(text: object, what: str, error: type[Exception] = SettingsError) -> int:
    """Parse a local time of day ``"HH:MM"`` (``"00:00"`` ... ``"24:00"``) into seconds."""
    if not isinstance(text, str):
        raise error("%s: expected a time 'HH:MM', got %r" % (what, text))
    parts = text.split(":")
    if (
        len(parts) != 2
        or len(parts[0]) != 2
        or len(parts[1]) != 2
        or not (parts[0].isdigit() and parts[1].isdigit())
    ):
        raise error("%s: expected a time 'HH:MM', got %r" % (what, text))
    hours = int(parts[0])
    minutes = int(parts[1])
    if minutes > 59 or hours > 24 or (hours == 24 and minutes != 0):
        raise error("%s: %r is not a time of day (00:00 ... 24:00)" % (what, text))
    return hours * 3600 + minutes * 60


class ZoneRules:
    """Compiled UTC-offset rules: the local offset, and the span it holds, for any instant."""

    def __init__(self, rules: object) -> None:
        if not isinstance(rules, list) or not rules:
            raise SettingsError(
                "zone_rules: expected a non-empty list [[utc_from, offset_s], ...] "
                "(build it with edge.tzrules.zone_rules), got %r" % (rules,)
            )
        starts: list[int] = []
        offsets: list[int] = []
        for i, rule in enumerate(rules):
            if (
                not isinstance(rule, (list, tuple))
                or len(rule) != 2
                or not is_int(rule[0])
                or not is_int(rule[1])
            ):
                raise SettingsError(
                    "zone_rules[%d]: expected [utc_from, offset_s] as two integers, got %r"
                    % (i, rule)
                )
            if abs(rule[1]) > MAX_OFFSET_S:
                raise SettingsError("zone_rules[%d]: offset %d s is beyond +-18 h" % (i, rule[1]))
            if starts and rule[0] <= starts[-1]:
                raise SettingsError(
                    "zone_rules[%d]: utc_from %d is not after the previous rule's %d; "
                    "list the rules in increasing time" % (i, rule[0], starts[-1])
                )
            starts.append(rule[0])
            offsets.append(rule[1])
        self.starts = starts
        self.offsets = offsets
        self.single = len(starts) == 1

    def to_list(self) -> list[list[int]]:
        """The rules in their JSON form."""
        return [[self.starts[i], self.offsets[i]] for i in range(len(self.starts))]

    def offset_at(self, utc: int) -> int:
        """The UTC offset in seconds in force at ``utc``."""
        if self.single:
            return self.offsets[0]
        i = bisect_right(self.starts, utc) - 1
        return self.offsets[i if i > 0 else 0]

    def span_at(self, utc: int) -> tuple[int, int, int]:
        """``(start, end, offset_s)``: the offset in force at ``utc`` and the span it holds."""
        if self.single:
            return NEVER_BEFORE, NEVER_AFTER, self.offsets[0]
        i = bisect_right(self.starts, utc) - 1
        if i < 0:
            return NEVER_BEFORE, self.starts[0], self.offsets[0]
        start = NEVER_BEFORE if i == 0 else self.starts[i]
        end = self.starts[i + 1] if i + 1 < len(self.starts) else NEVER_AFTER
        return start, end, self.offsets[i]

    def local_day(self, utc: int) -> int:
        """The local date of ``utc`` as days since 1970-01-01."""
        return (utc + self.offset_at(utc)) // SECONDS_PER_DAY

    def local_fields(self, utc: int) -> tuple[int, int]:
        """``(days, second_of_day)`` of ``utc`` in local civil time."""
        return divmod(utc + self.offset_at(utc), SECONDS_PER_DAY)
