"""The meter's own bounded consumption history, and the credit runway from it (B07).

``state["daily"]`` holds ``[local_day, energy_wh, charge_micro_yuan]`` for at most
``DAILY_DAYS`` recent local days (a charge counts on the local day of the reading that billed
it). ``state["daily_first"]`` is the first day ever recorded for the current account: that day
is usually partial (the account opened, or the engine started, part way through it), so the
runway ignores it.

Runway ("about 2 days of credit left"): the recent average consumption is the energy of the
complete days among the last ``RUNWAY_DAYS`` before today (days without consumption count as
zero) divided by their number. A day of it is priced at the *current* tariff: spread evenly
over tomorrow (local), rated by the version in force then, from the meter's current tier
position, so a price change announced for tomorrow shows at once. Without a tariff to price it
(none in force), the recent average daily charge is used instead. Then
``(balance - floor) // daily cost``. Integer arithmetic only: the same state, day and tariffs
give the same answer on every runtime.
"""

from edge.core.compat import Any
from edge.core.rating import price_spread
from edge.core.tz import SECONDS_PER_DAY

DAILY_DAYS = 8
RUNWAY_DAYS = 7


def add(state: dict[str, Any], day: int, energy_wh: int, amount: int) -> None:
    """Count a charge on local day ``day``."""
    daily = state["daily"]
    if state["daily_first"] is None:
        state["daily_first"] = day
    if daily and daily[-1][0] == day:
        daily[-1][1] += energy_wh
        daily[-1][2] += amount
        return
    if daily and day < daily[-1][0]:
        for entry in daily:
            if entry[0] == day:
                entry[1] += energy_wh
                entry[2] += amount
        return  # older than every kept day: not kept
    daily.append([day, energy_wh, amount])
    if len(daily) > DAILY_DAYS:
        del daily[0]


def recent(state: dict[str, Any], today: int) -> tuple[int, int, int]:
    """``(days, energy_wh, charge_micro_yuan)`` over the recent complete days (days may be 0)."""
    first = state["daily_first"]
    if first is None:
        return 0, 0, 0
    start = today - RUNWAY_DAYS
    if start <= first:
        start = first + 1
    days = today - start
    if days <= 0:
        return 0, 0, 0
    energy = 0
    charge = 0
    for entry in state["daily"]:
        if start <= entry[0] < today:
            energy += entry[1]
            charge += entry[2]
    return days, energy, charge


def daily_cost(
    state: dict[str, Any], timeline: Any, tomorrow_utc: int, energy_wh: int
) -> int | None:
    """What ``energy_wh`` spread evenly over the day from ``tomorrow_utc`` costs at the tariff
    then in force, from the meter's tier position; None when no version prices all of it."""
    if timeline is None:
        return None
    tier_state = [state["tier_period"], state["tier_energy_wh"]]  # a copy: nothing is billed
    spread = timeline.spread(tomorrow_utc, tomorrow_utc + SECONDS_PER_DAY, energy_wh)
    pieces, unrated_wh = price_spread(spread, tier_state)
    if unrated_wh:
        return None
    total = 0
    for piece in pieces:
        total += piece["wh"] * piece["price"]
    return (total + 999) // 1000  # whole micro-yuan, rounded up: never promise too much


def runway_days(
    state: dict[str, Any], today: int, tomorrow_utc: int, available: int, timeline: Any
) -> int:
    """Days the ``available`` credit lasts; 0 when none is, -1 when unknown (no history, or
    no consumption)."""
    if available <= 0:
        return 0
    days, energy, charge = recent(state, today)
    if days == 0 or energy <= 0:
        return -1
    cost = daily_cost(state, timeline, tomorrow_utc, energy // days)
    if cost is None:
        cost = (charge + days - 1) // days
    if cost <= 0:
        return -1
    return available // cost
