"""Readings of the total-energy register: the delta since the previous reading, and anomalies.

A meter reports its cumulative energy register. The delta between consecutive readings is the
energy to bill, except when (B06):

- the register went *backwards*: either it *wrapped* (a u32 at 0.01 kWh wraps at
  2**32 * 10 Wh = 42,949,672.96 kWh; the setting ``register_wrap_wh``) and the delta across the
  wrap is plausible, or it was *reset* (meter swap, register cleared): the energy between the
  two readings cannot be known, so counting restarts from the new value and a ``counter_reset``
  event reports both values for the office to settle by hand;
- the delta is *implausible*: more than the meter's rated power could deliver in the elapsed
  time (plus a slack for the register's 0.01 kWh step and for timestamp jitter). It is *held*,
  not billed, until a ``resolve_anomaly`` event says ``bill`` (the jump was real) or ``rebase``
  (start counting from the value after the jump). A later reading that is plausible again
  relative to the last good one (a single garbage read) clears the hold by itself.
"""

# Slack for a 1 s timestamp granularity, a reading taken a little before its timestamp and the
# register's 10 Wh step: a meter at exactly its rated power must never be held.
JUMP_SLACK_S = 60
REGISTER_STEP_WH = 10
DEFAULT_WRAP_WH = 2**32 * 10

NORMAL = "normal"
WRAP = "wrap"
RESET = "reset"
JUMP = "jump"
STALE = "stale"


def max_plausible_wh(rated_power_w: int | None, elapsed_s: int) -> int | None:
    """The most energy the meter can deliver in ``elapsed_s``; None when unlimited."""
    if rated_power_w is None:
        return None
    if elapsed_s < 0:
        elapsed_s = 0
    return (rated_power_w * (elapsed_s + JUMP_SLACK_S) + 3599) // 3600 + REGISTER_STEP_WH


def classify(
    last_wh: int,
    last_ts: int,
    energy_wh: int,
    ts: int,
    rated_power_w: int | None,
    wrap_wh: int | None,
) -> tuple[str, int]:
    """Classify a reading against the previous one: ``(kind, delta_wh)``.

    ``stale``: the timestamp is older than the previous reading's (ignored: the register is
    cumulative, so the energy is counted by the next fresh reading). ``normal`` and ``wrap``:
    bill ``delta_wh``. ``jump``: hold ``delta_wh``. ``reset``: rebase, ``delta_wh`` is 0.
    """
    if ts < last_ts:
        return STALE, 0
    limit = max_plausible_wh(rated_power_w, ts - last_ts)
    if energy_wh >= last_wh:
        delta = energy_wh - last_wh
        if limit is not None and delta > limit:
            return JUMP, delta
        return NORMAL, delta
    if wrap_wh is not None and last_wh < wrap_wh:
        delta = energy_wh + wrap_wh - last_wh
        # Without a rated power, accept a wrap only from the top tenth of the register to the
        # bottom tenth: anything else going backwards is a reset.
        cap = limit if limit is not None else wrap_wh // 10
        if delta <= cap:
            return WRAP, delta
    return RESET, 0
