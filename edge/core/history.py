"""The meter's own bounded consumption history, and the credit runway from it (B07).

``state["daily"]`` holds ``[local_day, energy_wh, charge_micro_yuan]`` for at most
``DAILY_DAYS`` recent local days (a charge counts on the local day of the reading that billed
it). ``state["daily_first"]`` is the first day ever recorded for the current account: that day
is usually partial (the account opened, or the engine started, part way through it), so the
runway ignores it.

Runway: the average daily charge over the complete days among the last ``RUNWAY_DAYS`` before
today (days without consumption count as zero), and ``(balance - floor) // average``. Pure
integer arithmetic: the same state and day give the same answer on every runtime.
"""

from edge.core.compat import Any

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


def runway_days(state: dict[str, Any], today: int, available_micro_yuan: int) -> int:
    """Days the available credit lasts at the recent average daily charge; -1 if unknown.

    0 when nothing is available (at or below the floor), whatever the history.
    """
    if available_micro_yuan <= 0:
        return 0
    first = state["daily_first"]
    if first is None:
        return -1
    start = today - RUNWAY_DAYS
    if start <= first:
        start = first + 1
    days = today - start
    if days <= 0:
        return -1
    total = 0
    for entry in state["daily"]:
        if start <= entry[0] < today:
            total += entry[2]
    if total <= 0:
        return -1
    return available_micro_yuan * days // total
