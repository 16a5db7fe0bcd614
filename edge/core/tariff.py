"""Tariff versions: validation with errors that name the field, and the compiled form.

A tariff is a list of versions; each version is in force from its ``effective_from`` (UTC epoch
seconds) until the next version's (B05: past usage is always rated by the version valid then).
A version is a JSON object:

============================  ===============================================================
``version``                   int >= 1, unique within the tariff
``effective_from``            int, UTC epoch seconds, unique within the tariff
``price_micro_yuan_per_kwh``  a flat price (int >= 0); or
``bands``                     time-of-use prices: ``{band: price}`` for up to 5 of the bands
                              ``sharp, peak, flat, valley, deep_valley``; then ``day`` is needed
``day``                       the day schedule: up to 14 segments ``[["HH:MM", band], ...]``,
                              the first at ``"00:00"``, starts strictly increasing; a segment
                              lasts until the next one starts (the last until midnight)
``seasons``                   optional: ``[{"months": [from, to], "day": [...]}, ...]``; month
                              ranges are inclusive and may wrap (``[11, 2]``); no month twice
``weekend``                   optional: the schedule for weekend days and holidays
``weekend_days``              optional: weekdays that use ``weekend`` (0 = Monday; default
                              ``[5, 6]``)
``holidays``                  optional: local dates ``"YYYY-MM-DD"`` that use ``weekend``
``tiers``                     optional (阶梯): ``{"period": "month" | "year", "mode": "price" |
                              "adder", "steps": [[from_kwh, value], ...]}``; the first step
                              starts at 0 kWh. ``price``: the tier's price is ``value`` (then the
                              version has neither a flat price nor bands); ``adder``: ``value`` is
                              added to the flat or band price (tiers combined with time-of-use)
============================  ===============================================================

The schedule used on a local day: ``weekend`` on a weekend day or holiday (when given), else the
season covering the month (when given), else ``day``.
"""

from edge.core.compat import Any, is_int
from edge.core.errors import TariffError
from edge.core.tz import NEVER_BEFORE, parse_date, parse_hhmm

BANDS = ("sharp", "peak", "flat", "valley", "deep_valley")
MAX_BANDS = 5
MAX_SEGMENTS = 14
MAX_TIERS = 16
TIER_PERIODS = ("month", "year")
TIER_MODES = ("price", "adder")
VERSION_KEYS = (
    "version",
    "effective_from",
    "price_micro_yuan_per_kwh",
    "bands",
    "day",
    "seasons",
    "weekend",
    "weekend_days",
    "holidays",
    "tiers",
)
# A schedule compiled: (segment starts in seconds of the local day, band of each segment).
FLAT_SCHEDULE: tuple[list[int], list[Any]] = ([0], [None])


class Version:
    """One compiled tariff version (or the flat pseudo-version of a per-meter price override)."""

    def __init__(self) -> None:
        self.number: int | None = None
        self.effective_from = NEVER_BEFORE
        self.base_price: int | None = None
        self.band_prices: dict[str, int] = {}
        self.day = FLAT_SCHEDULE
        self.by_month: list[Any] = [None] * 13
        self.weekend: Any = None
        self.weekend_days = [False, False, False, False, False, True, True]
        self.holidays: dict[int, bool] = {}
        self.tier_period = "month"
        self.tier_mode: str | None = None
        self.tier_from_wh: list[int] = []
        self.tier_values: list[int] = []
        self.raw: dict[str, Any] | None = None

    def schedule_for(self, days: int, wd: int, month: int) -> tuple[list[int], list[Any]]:
        """The schedule of the local day ``days`` (weekday ``wd``, ``month``)."""
        if self.weekend is not None and (self.weekend_days[wd] or days in self.holidays):
            return self.weekend
        season = self.by_month[month]
        if season is not None:
            return season
        return self.day

    def price_of(self, band: Any, tier: int) -> int:
        """The price (micro-yuan per kWh) of energy in ``band`` (None: flat) and tier index."""
        base = self.base_price if band is None else self.band_prices[band]
        if self.tier_mode is None:
            return base  # type: ignore[return-value]
        if self.tier_mode == "price":
            return self.tier_values[tier]
        return base + self.tier_values[tier]  # type: ignore[operator]


def flat_version(price_micro_yuan_per_kwh: int) -> Version:
    """The pseudo-version of a per-meter price override ("one meter, one price")."""
    v = Version()
    v.base_price = price_micro_yuan_per_kwh
    return v


def _fail(where: str, message: str) -> TariffError:
    return TariffError("%s: %s" % (where, message))


def _price(value: object, where: str) -> int:
    if not is_int(value) or value < 0:  # type: ignore[operator]
        raise _fail(where, "expected a price in micro-yuan per kWh (int >= 0), got %r" % (value,))
    return value  # type: ignore[return-value]


def _schedule(raw: object, bands: dict[str, int], where: str) -> tuple[list[int], list[Any]]:
    if not isinstance(raw, list) or not raw:
        raise _fail(where, 'expected a list of segments [["HH:MM", band], ...]')
    if len(raw) > MAX_SEGMENTS:
        raise _fail(where, "%d segments; at most %d are allowed" % (len(raw), MAX_SEGMENTS))
    starts: list[int] = []
    names: list[Any] = []
    for i, seg in enumerate(raw):
        here = "%s[%d]" % (where, i)
        if not isinstance(seg, list) or len(seg) != 2:
            raise _fail(here, 'expected ["HH:MM", band], got %r' % (seg,))
        start = parse_hhmm(seg[0], here, TariffError)
        if start >= 86400:
            raise _fail(here, "a segment cannot start at 24:00")
        if i == 0 and start != 0:
            raise _fail(here, "the first segment must start at 00:00, not %s" % seg[0])
        if starts and start <= starts[-1]:
            raise _fail(here, "segment starts must increase; %s is not after the previous" % seg[0])
        if seg[1] not in bands:
            raise _fail(here, "band %r has no price in this version's bands" % (seg[1],))
        starts.append(start)
        names.append(seg[1])
    return starts, names


def _months(raw: object, where: str) -> list[int]:
    if (
        not isinstance(raw, list)
        or len(raw) != 2
        or not is_int(raw[0])
        or not is_int(raw[1])
        or not 1 <= raw[0] <= 12
        or not 1 <= raw[1] <= 12
    ):
        raise _fail(where, "expected [from_month, to_month] with months 1..12, got %r" % (raw,))
    months = []
    m = raw[0]
    while True:
        months.append(m)
        if m == raw[1]:
            return months
        m = 1 if m == 12 else m + 1


def _tiers(raw: object, v: Version, where: str) -> None:
    if not isinstance(raw, dict):
        raise _fail(where, "expected an object {period, mode, steps}")
    for key in raw:
        if key not in ("period", "mode", "steps"):
            raise _fail(where, "unknown key %r (known: period, mode, steps)" % (key,))
    period = raw.get("period", "month")
    if period not in TIER_PERIODS:
        raise _fail(where + ".period", "expected 'month' or 'year', got %r" % (period,))
    mode = raw.get("mode")
    if mode not in TIER_MODES:
        raise _fail(where + ".mode", "expected 'price' or 'adder', got %r" % (mode,))
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps or len(steps) > MAX_TIERS:
        raise _fail(where + ".steps", "expected 1..%d steps [[from_kwh, value], ...]" % MAX_TIERS)
    for i, step in enumerate(steps):
        here = "%s.steps[%d]" % (where, i)
        if not isinstance(step, list) or len(step) != 2 or not is_int(step[0]) or step[0] < 0:
            raise _fail(here, "expected [from_kwh (int >= 0), value], got %r" % (step,))
        if i == 0 and step[0] != 0:
            raise _fail(here, "the first tier must start at 0 kWh")
        if v.tier_from_wh and step[0] * 1000 <= v.tier_from_wh[-1]:
            raise _fail(here, "tier thresholds must increase")
        v.tier_from_wh.append(step[0] * 1000)
        v.tier_values.append(_price(step[1], here))
    v.tier_period = period
    v.tier_mode = mode


def compile_version(tariff_id: str, raw: object) -> Version:
    """Validate one tariff version and compile it; raises TariffError naming the field."""
    v, version, where = _version_header(tariff_id, raw)
    if "tiers" in version:
        _tiers(version["tiers"], v, where + " tiers")
    has_bands = _base_price(version, v, where)
    for key in ("day", "seasons", "weekend", "weekend_days", "holidays"):
        if key in version and not has_bands:
            raise _fail(where, "%r needs time-of-use 'bands'" % key)
    if not has_bands:
        return v
    _bands(version["bands"], v, where + " bands")
    if "day" not in version:
        raise _fail(where, "time-of-use 'bands' need a 'day' schedule")
    v.day = _schedule(version["day"], v.band_prices, where + " day")
    _seasons(version.get("seasons", []), v, where + " seasons")
    _weekend_and_holidays(version, v, where)
    return v


def _version_header(tariff_id: str, raw: object) -> tuple[Version, dict[str, Any], str]:
    """The version number, the known keys and ``effective_from``; returns the version, its
    raw object and the name errors use for it."""
    top = "tariff %r" % (tariff_id,)
    if not isinstance(raw, dict):
        raise _fail(top, "a version must be an object, got %r" % (raw,))
    number = raw.get("version")
    where = "%s version %r" % (top, number)
    if not is_int(number) or number < 1:  # type: ignore[operator]
        raise _fail(top, "each version needs 'version', an int >= 1, got %r" % (number,))
    for key in raw:
        if key not in VERSION_KEYS:
            raise _fail(where, "unknown key %r (known: %s)" % (key, ", ".join(VERSION_KEYS)))
    v = Version()
    v.number = number
    v.raw = raw
    if not is_int(raw.get("effective_from")):
        raise _fail(where, "'effective_from' must be UTC epoch seconds (int)")
    v.effective_from = raw["effective_from"]
    return v, raw, where


def _base_price(raw: dict[str, Any], v: Version, where: str) -> bool:
    """One source of the price: a flat price, time-of-use bands, or tiers in 'price' mode.
    Sets the flat price; returns whether the version has bands."""
    has_flat = "price_micro_yuan_per_kwh" in raw
    has_bands = "bands" in raw
    if v.tier_mode == "price":
        if has_flat or has_bands:
            raise _fail(where, "tiers in 'price' mode set the price; drop the flat price and bands")
    elif has_flat == has_bands:
        raise _fail(where, "give exactly one of 'price_micro_yuan_per_kwh' (flat) or 'bands' (TOU)")
    if has_flat:
        v.base_price = _price(raw["price_micro_yuan_per_kwh"], where)
    return has_bands


def _bands(bands: object, v: Version, where: str) -> None:
    if not isinstance(bands, dict) or not bands or len(bands) > MAX_BANDS:
        raise _fail(where, "expected {band: price} for 1..5 bands")
    for name in bands:
        if name not in BANDS:
            raise _fail(where, "unknown band %r (known: %s)" % (name, ", ".join(BANDS)))
        v.band_prices[name] = _price(bands[name], "%s.%s" % (where, name))


def _seasons(seasons: object, v: Version, where: str) -> None:
    if not isinstance(seasons, list):
        raise _fail(where, "expected a list of {months, day}")
    for i, season in enumerate(seasons):
        here = "%s[%d]" % (where, i)
        if not isinstance(season, dict) or sorted(season) != ["day", "months"]:
            raise _fail(here, 'expected exactly {"months": [from, to], "day": [...]}')
        schedule = _schedule(season["day"], v.band_prices, here + ".day")
        for month in _months(season["months"], here + ".months"):
            if v.by_month[month] is not None:
                raise _fail(here, "month %d is already in an earlier season" % month)
            v.by_month[month] = schedule


def _weekend_and_holidays(raw: dict[str, Any], v: Version, where: str) -> None:
    if "weekend" in raw:
        v.weekend = _schedule(raw["weekend"], v.band_prices, where + " weekend")
    elif "weekend_days" in raw or "holidays" in raw:
        raise _fail(where, "'weekend_days' and 'holidays' need a 'weekend' schedule")
    if "weekend_days" in raw:
        wds = raw["weekend_days"]
        if not isinstance(wds, list) or not all(is_int(d) and 0 <= d <= 6 for d in wds):
            raise _fail(where + " weekend_days", "expected weekdays 0 (Monday) .. 6 (Sunday)")
        v.weekend_days = [d in wds for d in range(7)]
    holidays = raw.get("holidays", [])
    if not isinstance(holidays, list):
        raise _fail(where + " holidays", "expected a list of dates 'YYYY-MM-DD'")
    for i, text in enumerate(holidays):
        v.holidays[parse_date(text, "%s holidays[%d]" % (where, i), TariffError)] = True


def compile_tariff(tariff_id: object, versions: object) -> list[Version]:
    """Validate a tariff's versions; returns them sorted by ``effective_from``."""
    if not isinstance(tariff_id, str) or not tariff_id:
        raise TariffError("tariff ids must be non-empty strings, got %r" % (tariff_id,))
    if not isinstance(versions, list):
        raise TariffError("tariff %r: expected a list of versions" % tariff_id)
    compiled = [compile_version(tariff_id, raw) for raw in versions]
    compiled.sort(key=lambda v: v.effective_from)
    for i in range(1, len(compiled)):
        if compiled[i].effective_from == compiled[i - 1].effective_from:
            raise TariffError(
                "tariff %r: versions %r and %r have the same effective_from %d"
                % (
                    tariff_id,
                    compiled[i - 1].number,
                    compiled[i].number,
                    compiled[i].effective_from,
                )
            )
    numbers = [v.number for v in compiled]
    for n in numbers:
        if numbers.count(n) > 1:
            raise TariffError("tariff %r: version %r appears twice" % (tariff_id, n))
    return compiled
