"""Local civil time from offset rules, without a zone database. Plain cases."""

from edge.core import tz
from edge.core.errors import SettingsError
from tests.core.casekit import T0, raises


def test_days_from_civil_known_dates():
    assert tz.days_from_civil(1970, 1, 1) == 0
    assert tz.days_from_civil(2000, 3, 1) == 11017
    assert tz.days_from_civil(2026, 1, 1) == 20454
    assert tz.days_from_civil(1969, 12, 31) == -1
    assert tz.civil_from_days(20454) == (2026, 1, 1)
    assert tz.civil_from_days(tz.days_from_civil(2024, 2, 29)) == (2024, 2, 29)
    assert tz.civil_from_days(-1) == (1969, 12, 31)


def test_days_round_trip_every_day_of_a_decade_and_every_month_of_four_centuries():
    # every day 2020-2030 (leap years included): civil -> days -> civil, strictly consecutive
    prev = None
    for day in range(tz.days_from_civil(2020, 1, 1), tz.days_from_civil(2031, 1, 1)):
        ymd = tz.civil_from_days(day)
        assert tz.days_from_civil(ymd[0], ymd[1], ymd[2]) == day
        if prev is not None:
            assert ymd > prev
        prev = ymd
    # the 1st and the last of every month 1900-2299 (2000 leap, 1900 and 2100 not)
    for year in range(1900, 2300):
        for month in range(1, 13):
            first = tz.days_from_civil(year, month, 1)
            assert tz.civil_from_days(first) == (year, month, 1)
            y, m, _ = tz.civil_from_days(first - 1)
            assert (y, m) == ((year, month - 1) if month > 1 else (year - 1, 12))
    assert tz.civil_from_days(tz.days_from_civil(2000, 3, 1) - 1) == (2000, 2, 29)
    assert tz.civil_from_days(tz.days_from_civil(2100, 3, 1) - 1) == (2100, 2, 28)


def test_weekday_monday_is_zero():
    assert tz.weekday(0) == 3  # 1970-01-01 was a Thursday
    assert tz.weekday(tz.days_from_civil(2026, 1, 5)) == 0  # a Monday


def test_local_fields_in_utc_plus_8():
    zone = tz.ZoneRules([[0, 28800]])
    days, sod = zone.local_fields(T0)
    assert tz.civil_from_days(days) == (2026, 1, 1)
    assert sod == 0
    days, sod = zone.local_fields(T0 - 1)
    assert tz.civil_from_days(days) == (2025, 12, 31)
    assert sod == 86399


def test_offset_rules_with_a_change():
    # a zone that moves from +1 h to +2 h at t=1000 (like a DST start)
    zone = tz.ZoneRules([[0, 3600], [1000, 7200]])
    assert zone.offset_at(-50) == 3600  # before the first rule: the first rule
    assert zone.offset_at(999) == 3600
    assert zone.offset_at(1000) == 7200
    assert zone.span_at(500) == (tz.NEVER_BEFORE, 1000, 3600)
    assert zone.span_at(5000) == (1000, tz.NEVER_AFTER, 7200)


def test_bad_zone_rules_are_refused_with_the_reason():
    assert "non-empty list" in str(raises(SettingsError, tz.ZoneRules, []))
    assert "two integers" in str(raises(SettingsError, tz.ZoneRules, [[0, "8"]]))
    assert "increasing time" in str(raises(SettingsError, tz.ZoneRules, [[5, 0], [5, 3600]]))
    assert "18 h" in str(raises(SettingsError, tz.ZoneRules, [[0, 19 * 3600]]))


def test_parse_date_and_time():
    assert tz.parse_date("2026-01-01", "x") == 20454
    assert tz.parse_hhmm("24:00", "x") == 86400
    assert tz.parse_hhmm("07:30", "x") == 27000
    assert "calendar date" in str(raises(SettingsError, tz.parse_date, "2026-02-29", "h[0]"))
    assert "h[0]" in str(raises(SettingsError, tz.parse_date, "2026-1-01", "h[0]"))
    assert "time of day" in str(raises(SettingsError, tz.parse_hhmm, "24:30", "w.from"))
