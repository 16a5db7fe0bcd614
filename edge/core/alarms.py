"""Balance alarms with hysteresis (F35, F38).

Levels, least to most severe, each entered when the balance is at or below its threshold:

=========  =======================  ============================
level      threshold setting        event on entering the level
=========  =======================  ============================
ok         (none)                   ``alarm_clear``
alarm1     ``alarm1_micro_yuan``    ``alarm1``
alarm2     ``alarm2_micro_yuan``    ``alarm2``
arrears    ``arrears_micro_yuan``   ``arrears``
=========  =======================  ============================

Hysteresis: a level is left for a less severe one only when the balance rises above the
threshold plus ``hysteresis_micro_yuan``, so a balance hovering at a threshold does not flap.
Moving to a more severe level happens as soon as the balance is at or below its threshold.
"""

from edge.core.compat import Any

LEVELS = ("ok", "alarm1", "alarm2", "arrears")
THRESHOLDS = (None, "alarm1_micro_yuan", "alarm2_micro_yuan", "arrears_micro_yuan")
EVENTS = ("alarm_clear", "alarm1", "alarm2", "arrears")


def _severity(balance: int, thresholds: list[int], lift: int) -> int:
    level = 0
    for i in (1, 2, 3):
        if balance <= thresholds[i] + lift:
            level = i
    return level


def next_level(current: str, balance: int, thresholds: list[int], hysteresis: int) -> str:
    """The alarm level after the balance changed to ``balance``.

    ``thresholds`` is ``[unused, alarm1, alarm2, arrears]``.
    """
    cur = LEVELS.index(current)
    worse = _severity(balance, thresholds, 0)
    if worse > cur:
        return LEVELS[worse]
    better = _severity(balance, thresholds, hysteresis)
    if better < cur:
        return LEVELS[better]
    return current


def update(
    state: dict[str, Any], thresholds: list[int], hysteresis: int, actions: list[dict[str, Any]]
) -> None:
    """Move the meter's alarm level and announce a change with an ``event`` action."""
    current = state["alarm"]
    level = next_level(current, state["balance_micro_yuan"], thresholds, hysteresis)
    if level != current:
        state["alarm"] = level
        actions.append(
            {
                "type": "event",
                "kind": EVENTS[LEVELS.index(level)],
                "detail": {
                    "level": level,
                    "previous": current,
                    "balance_micro_yuan": state["balance_micro_yuan"],
                },
            }
        )
