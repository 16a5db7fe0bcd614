"""Metering: from register values to charges (readings.py classifies, rating.py prices).

``account_energy`` takes a reading's register value: it sets the baseline, bills a normal delta
or a wrap, rebases on a reset, holds an implausible jump, and while a jump is held follows the
register without billing (B06). ``resolve`` ends a hold as the ``resolve_anomaly`` event says.
``bill`` rates a delta over a time span and takes the charge from the wallet; energy with no
account open is counted in ``unbilled_wh``, energy with no tariff in force in ``unrated_wh`` (one
``unrated`` event when that starts, again only after energy was rated in between).
Timestamps: a reading up to ``CLOCK_BACK_S`` older than the last is stale and ignored; an older
one means the clock went back, and time restarts from it (``clock_back`` event). A reading from
the future (beyond ``engine.MAX_AHEAD_S`` past ``now``) is refused as malformed.
"""

from edge.core import history, money, readings, wallet
from edge.core.compat import Any
from edge.core.context import Context
from edge.core.errors import EventError, TransitionError
from edge.core.rating import price_spread

# A reading older than the previous one by up to this is stale (ignored: the register is
# cumulative, the next fresh reading counts its energy); older still means the clock went back.
CLOCK_BACK_S = 3600


def event(kind: str, detail: dict[str, Any]) -> dict[str, Any]:
    """An ``event`` action."""
    return {"type": "event", "kind": kind, "detail": detail}


def _unrated(
    state: dict[str, Any], energy_wh: int, reason: str, actions: list[dict[str, Any]]
) -> None:
    """Count energy no tariff prices; one ``unrated`` event per episode, not one per reading."""
    state["unrated_wh"] += energy_wh
    if not state.get("unrated_open"):
        state["unrated_open"] = True
        actions.append(event("unrated", {"energy_wh": energy_wh, "reason": reason}))


def bill(
    state: dict[str, Any],
    t0: int,
    t1: int,
    delta_wh: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> None:
    """Rate and charge ``delta_wh`` consumed over ``[t0, t1)``."""
    if delta_wh <= 0:
        return
    if state["account"] != "opened":
        state["unbilled_wh"] += delta_wh  # no tenant: nobody to charge
        return
    timeline = ctx.timeline(state)
    if timeline is None:
        _unrated(
            state, delta_wh, "no tariff %r in the context" % ctx.get(state, "tariff_id"), actions
        )
        return
    tier_state = [state["tier_period"], state["tier_energy_wh"]]
    pieces, unrated_wh = price_spread(timeline.spread(t0, t1, delta_wh), tier_state)
    state["tier_period"] = tier_state[0]
    state["tier_energy_wh"] = tier_state[1]
    if unrated_wh:
        _unrated(state, unrated_wh, "before the tariff's first version", actions)
    elif state.get("unrated_open"):
        state["unrated_open"] = False
    if not pieces:
        return
    amount, state["carry"] = money.charge(pieces, state["carry"])
    wallet.charge(state, amount)
    energy_wh = delta_wh - unrated_wh
    actions.append(
        {"type": "charge", "amount_micro_yuan": amount, "energy_wh": energy_wh, "pieces": pieces}
    )
    history.add(state, ctx.zone.local_day(t1), energy_wh, amount)


def account_energy(
    state: dict[str, Any], ts: int, energy_wh: int, ctx: Context, actions: list[dict[str, Any]]
) -> bool:
    """Account for the register value; False when the reading is stale (older than the last)."""
    last_ts = state["last_ts"]
    if last_ts is None:
        state["last_energy_wh"] = energy_wh
        state["last_ts"] = ts
        return True
    rated = ctx.get(state, "rated_power_w")
    wrap = ctx.get(state, "register_wrap_wh")
    anomaly = state["anomaly"]
    if anomaly is None and last_ts - ts > CLOCK_BACK_S:
        # The collector's clock went back a long way (or the last reading carried a bogus
        # future time): waiting for the clock to catch up would stop billing for as long, so
        # time restarts here. The delta is checked as if no time had passed: a large one is
        # held, never billed blindly.
        actions.append(event("clock_back", {"from_ts": last_ts, "to_ts": ts}))
        state["last_ts"] = last_ts = ts
    if anomaly is not None:
        if ts < anomaly["seen_ts"]:
            return False
        kind, delta = readings.classify(
            anomaly["base_wh"], anomaly["base_ts"], energy_wh, ts, rated, wrap
        )
        if kind == readings.NORMAL and energy_wh < anomaly["jump_wh"]:
            # The register is back on its old course: the jump was one garbage read.
            state["anomaly"] = None
            bill(state, anomaly["base_ts"], ts, delta, ctx, actions)
            state["last_energy_wh"] = energy_wh
            state["last_ts"] = ts
            actions.append(event("anomaly_resolved", {"how": "auto", "billed_wh": delta}))
        else:
            anomaly["seen_wh"] = energy_wh
            anomaly["seen_ts"] = ts
        return True
    last_wh = state["last_energy_wh"]
    kind, delta = readings.classify(last_wh, last_ts, energy_wh, ts, rated, wrap)
    if kind == readings.NORMAL:
        bill(state, last_ts, ts, delta, ctx, actions)
    elif kind == readings.STALE:
        return False
    elif kind == readings.WRAP:
        actions.append(
            event("counter_wrap", {"from_wh": last_wh, "to_wh": energy_wh, "delta_wh": delta})
        )
        bill(state, last_ts, ts, delta, ctx, actions)
    elif kind == readings.RESET:
        actions.append(
            event(
                "counter_reset",
                {"from_wh": last_wh, "to_wh": energy_wh, "from_ts": last_ts, "to_ts": ts},
            )
        )
    else:  # JUMP: hold, keep the last good value as the base
        state["anomaly"] = {
            "kind": "jump",
            "base_wh": last_wh,
            "base_ts": last_ts,
            "jump_wh": energy_wh,
            "jump_ts": ts,
            "seen_wh": energy_wh,
            "seen_ts": ts,
        }
        actions.append(
            event(
                "jump_held",
                {
                    "from_wh": last_wh,
                    "to_wh": energy_wh,
                    "delta_wh": delta,
                    "elapsed_s": ts - last_ts,
                    "max_plausible_wh": readings.max_plausible_wh(rated, ts - last_ts),
                },
            )
        )
        return True
    state["last_energy_wh"] = energy_wh
    state["last_ts"] = ts
    return True


def resolve(state: dict[str, Any], how: Any, ctx: Context, actions: list[dict[str, Any]]) -> None:
    """End a held jump: ``bill`` it all since the last good value, or ``rebase`` (bill only
    what the register counted after the jump). Raises before changing anything."""
    if how != "bill" and how != "rebase":
        raise EventError(
            "resolve_anomaly event: 'action' must be 'bill' or 'rebase', got %r" % (how,)
        )
    anomaly = state["anomaly"]
    if anomaly is None:
        raise TransitionError(
            "meter %r: there is no held reading anomaly to resolve" % (state["meter"],)
        )
    seen_wh = anomaly["seen_wh"]
    seen_ts = anomaly["seen_ts"]
    if how == "bill":
        if seen_wh < anomaly["base_wh"]:
            raise TransitionError(
                "meter %r: cannot bill the jump, the register (%d Wh) is now below its value "
                "before the jump (%d Wh); resolve with rebase"
                % (state["meter"], seen_wh, anomaly["base_wh"])
            )
        t0 = anomaly["base_ts"]
        billed = seen_wh - anomaly["base_wh"]
    else:
        t0 = anomaly["jump_ts"]
        billed = seen_wh - anomaly["jump_wh"] if seen_wh > anomaly["jump_wh"] else 0
    state["anomaly"] = None
    bill(state, t0, seen_ts, billed, ctx, actions)
    state["last_energy_wh"] = seen_wh
    state["last_ts"] = seen_ts
    actions.append(event("anomaly_resolved", {"how": how, "billed_wh": billed}))
