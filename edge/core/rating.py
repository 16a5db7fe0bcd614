"""Rating: turn an energy delta between two readings into priced pieces.

Theory of operation. Time is cut into *windows*: spans in which the tariff version, the
time-of-use band, the billing period and the zone offset are all constant. A window never
crosses a local midnight, so month and year starts (where tiers reset) are window boundaries.
A delta between readings at ``t0`` and ``t1`` is spread over the windows it spans in proportion
to time, with an integer largest-remainder split so the pieces sum exactly to the delta
(issue 2: "split in proportion to time"). Then, walking the windows in time order, the
meter's energy in the current billing period decides the tier; a piece that crosses a tier
threshold is split by energy. Pieces with the same (band, tier, version, price) are merged.

Energy in a span where no version is in force yet (before the first ``effective_from``) is
*unrated*: returned apart, never priced at a guess.

Almost every reading falls inside the window of the previous one, so each timeline keeps the
last window it computed and answers from it when it can: that is the fast path that makes
20,000 readings per second reachable (bench/engine.py).
"""

from edge.core.compat import Any, bisect_right
from edge.core.money import split_by_weights
from edge.core.tariff import Version
from edge.core.tz import NEVER_AFTER, NEVER_BEFORE, SECONDS_PER_DAY, ZoneRules, civil_from_days

# A window is a tuple (start_utc, end_utc, version or None, band or None, period_key).
# (No type alias: MicroPython cannot evaluate ``tuple[...]`` outside an annotation.)


class Timeline:
    """The versions of one tariff (or one override price) against one zone."""

    def __init__(self, versions: list[Version], zone: ZoneRules) -> None:
        self.versions = versions
        self.starts = [v.effective_from for v in versions]
        self.zone = zone
        self.last: Any = None

    def window(self, t: int) -> tuple:
        """The window holding the instant ``t``."""
        last = self.last
        if last is not None and last[0] <= t < last[1]:
            return last
        i = bisect_right(self.starts, t) - 1
        if i < 0:
            before: tuple = (
                NEVER_BEFORE,
                self.starts[0] if self.starts else NEVER_AFTER,
                None,
                None,
                "",
            )
            self.last = before
            return before
        version = self.versions[i]
        next_start = self.starts[i + 1] if i + 1 < len(self.starts) else NEVER_AFTER
        zone_start, zone_end, offset = self.zone.span_at(t)
        days, sod = divmod(t + offset, SECONDS_PER_DAY)
        year, month, _ = civil_from_days(days)
        starts, bands = version.schedule_for(days, (days + 3) % 7, month)
        j = bisect_right(starts, sod) - 1
        seg_end = starts[j + 1] if j + 1 < len(starts) else SECONDS_PER_DAY
        start = t - (sod - starts[j])
        end = t + (seg_end - sod)
        if zone_start > start:
            start = zone_start
        if version.effective_from > start:
            start = version.effective_from
        if zone_end < end:
            end = zone_end
        if next_start < end:
            end = next_start
        if version.tier_period == "year":
            key = "%04d" % year
        else:
            key = "%04d-%02d" % (year, month)
        w = (start, end, version, bands[j], key)
        self.last = w
        return w

    def spread(self, t0: int, t1: int, delta_wh: int) -> list[tuple[int, tuple]]:
        """Spread ``delta_wh`` consumed over ``[t0, t1)`` across windows, in time order.

        A delta with no elapsed time (``t1 <= t0``) is placed in the window of ``t0``.
        """
        w = self.window(t0)
        if t1 <= w[1]:
            return [(delta_wh, w)]
        windows = [w]
        weights = [w[1] - t0]
        t = w[1]
        while t < t1:
            w = self.window(t)
            windows.append(w)
            end = w[1] if w[1] < t1 else t1
            weights.append(end - t)
            t = end
        parts = split_by_weights(delta_wh, weights)
        return [(parts[i], windows[i]) for i in range(len(parts)) if parts[i]]


def price_spread(
    spread: list[tuple[int, tuple]], tier_state: list[Any]
) -> tuple[list[dict[str, Any]], int]:
    """Price the spread pieces; ``tier_state`` is ``[period_key, energy_wh]`` and is updated.

    Returns ``(pieces, unrated_wh)``; each piece is ``{band, tier, version, wh, price}`` with
    ``tier`` 1-based (None without tiers).
    """
    pieces: list[dict[str, Any]] = []
    unrated_wh = 0
    for wh, w in spread:
        version = w[2]
        if version is None:
            unrated_wh += wh
            continue
        if w[4] != tier_state[0]:
            tier_state[0] = w[4]
            tier_state[1] = 0
        band = w[3]
        if version.tier_mode is None:
            _add(pieces, band, None, version.number, wh, version.price_of(band, 0))
            tier_state[1] += wh
            continue
        used = tier_state[1]
        thresholds = version.tier_from_wh
        left = wh
        while left > 0:
            i = bisect_right(thresholds, used) - 1
            take = left
            if i + 1 < len(thresholds) and thresholds[i + 1] - used < take:
                take = thresholds[i + 1] - used
            _add(pieces, band, i + 1, version.number, take, version.price_of(band, i))
            used += take
            left -= take
        tier_state[1] = used
    return pieces, unrated_wh


def _add(
    pieces: list[dict[str, Any]], band: Any, tier: Any, number: Any, wh: int, price: int
) -> None:
    for p in pieces:
        if (
            p["price"] == price
            and p["band"] == band
            and p["tier"] == tier
            and p["version"] == number
        ):
            p["wh"] += wh
            return
    pieces.append({"band": band, "tier": tier, "version": number, "wh": wh, "price": price})
