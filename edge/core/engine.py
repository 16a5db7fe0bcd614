"""The prepaid engine: ``(state, event, now) -> (state, actions)``, pure and portable.

Theory of operation. Each meter has one JSON-compatible state dict (``new_state``), persisted by
the store with ``json.dumps``. The caller feeds it events (a reading, a credit, a mode command,
a tick, ...) with the current time; ``step`` validates the event completely before it changes
anything (so a bad event raises ``EventError`` and loses nothing), applies it through the
handler table ``HANDLERS``, then re-evaluates the alarms and the relay policy, and returns the
actions for the I/O around it to execute: ``charge``, ``ledger``, ``result``,
``request_purchase``, ``event`` and ``relay`` (docs/architecture.md, "The engine").

The account is a small state machine (``ACCOUNT_TRANSITIONS``): ``not_opened`` -> ``opened``
-> ``closed`` -> ``opened`` (a new tenant). Illegal transitions raise ``TransitionError``.

Modules: ``context`` (the shared Context), ``money`` (charge with carry, exact splits), ``tz``
(local time from offset rules), ``tariff`` (versions), ``rating`` (windows, pieces, tiers),
``readings`` (deltas, anomalies), ``metering`` (billing, held jumps), ``wallet`` (purchases,
refunds, settlement), ``alarms``, ``relay`` (policy table, reconciliation), ``windows``
(friendly-credit windows), ``settings``, ``history`` (runway), ``compat`` (CPython/MicroPython
differences), ``errors``.
"""

from edge.core import alarms, history, metering, relay, wallet
from edge.core.compat import Any, is_int
from edge.core.context import Context
from edge.core.errors import EventError, TransitionError
from edge.core.metering import event as _event
from edge.core.settings import check_consistent, merged, validate
from edge.core.tz import SECONDS_PER_DAY
from edge.core.windows import in_window

STATE_VERSION = 1
# A reading stamped further ahead of ``now`` than this is refused: one bogus future timestamp
# would otherwise make every later reading look stale.
MAX_AHEAD_S = 900
DISPLAY_STATES = ("not_opened", "opened", "alarm1", "alarm2", "arrears", "lost_contact", "closed")
ACCOUNT_TRANSITIONS = {
    ("not_opened", "open_account"): "opened",
    ("closed", "open_account"): "opened",
    ("opened", "close_account"): "closed",
}


def new_state(meter_id: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """A new meter's state: account not opened, mode prepaid, balance 0."""
    own = validate(settings if settings is not None else {}, "meter %r settings" % (meter_id,))
    return {
        "v": STATE_VERSION,
        "meter": meter_id,
        "account": "not_opened",
        "mode": "prepaid",
        "settings": dict(own),
        "balance_micro_yuan": 0,
        "credits_micro_yuan": 0,
        "refunds_micro_yuan": 0,
        "charges_micro_yuan": 0,
        "carry": 0,
        "last_purchase_no": 0,
        "purchases": [],
        "held": [],
        "last_energy_wh": None,
        "last_ts": None,
        "anomaly": None,
        "tier_period": "",
        "tier_energy_wh": 0,
        "unbilled_wh": 0,
        "unrated_wh": 0,
        "unrated_open": False,
        "alarm": "ok",
        "overload_count": 0,
        "overload_latched": False,
        "relay_desired": None,
        "relay_reason": None,
        "relay_reported": None,
        "relay_attempts": 0,
        "relay_fault": False,
        "trip_deferred": False,
        "contact": True,
        "daily": [],
        "daily_first": None,
    }


# ---- event validation -------------------------------------------------------------------------


def _int(event: dict[str, Any], name: str, minimum: int | None = None) -> int:
    value = event.get(name)
    if not is_int(value):
        raise EventError("%s event: %r must be an integer, got %r" % (event["type"], name, value))
    if minimum is not None and value < minimum:  # type: ignore[operator]
        raise EventError(
            "%s event: %r must be >= %d, got %r" % (event["type"], name, minimum, value)
        )
    return value  # type: ignore[return-value]


# ---- handlers -----------------------------------------------------------------------------------


def _on_reading(
    state: dict[str, Any],
    event: dict[str, Any],
    now: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> Any:
    ts = _int(event, "ts")
    if ts > now + MAX_AHEAD_S:
        raise EventError(
            "reading event: ts %d is %d s ahead of now %d; check the collector's clock"
            % (ts, ts - now, now)
        )
    energy_wh = _int(event, "energy_wh", 0)
    power_w = event.get("power_w")
    if power_w is not None and not is_int(power_w):
        raise EventError("reading event: 'power_w' must be an integer or null, got %r" % (power_w,))
    reported = event.get("relay")
    if reported is not None and reported != relay.OPEN and reported != relay.CLOSED:
        raise EventError(
            "reading event: 'relay' must be 'open', 'closed' or null, got %r" % (reported,)
        )
    if not state["contact"]:
        state["contact"] = True
        actions.append(_event("contact_restored", {"ts": ts}))
    if not metering.account_energy(state, ts, energy_wh, ctx, actions):
        return None  # stale: its power and relay are older than what we know
    threshold = ctx.get(state, "overload_power_w")
    if threshold is not None and power_w is not None:
        if power_w > threshold:
            state["overload_count"] += 1
            if not state["overload_latched"] and state["overload_count"] >= ctx.get(
                state, "overload_readings"
            ):
                state["overload_latched"] = True
                actions.append(
                    _event(
                        "overload",
                        {
                            "power_w": power_w,
                            "threshold_w": threshold,
                            "readings": state["overload_count"],
                        },
                    )
                )
        else:
            state["overload_count"] = 0
    if reported is not None:
        state["relay_reported"] = reported
    return reported


def _on_credit(
    state: dict[str, Any],
    event: dict[str, Any],
    now: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> Any:
    n = _int(event, "purchase_no", 1)
    amount = _int(event, "amount_micro_yuan", 1)
    wallet.credit(state, n, amount, ctx.get(state, "hoarding_cap_micro_yuan"), actions)


def _on_refund(
    state: dict[str, Any],
    event: dict[str, Any],
    now: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> Any:
    wallet.refund(state, _int(event, "amount_micro_yuan", 1), actions)


def _on_reversal(
    state: dict[str, Any],
    event: dict[str, Any],
    now: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> Any:
    wallet.reversal(state, _int(event, "purchase_no", 1), actions)


def _on_transfer_in(
    state: dict[str, Any],
    event: dict[str, Any],
    now: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> Any:
    wallet.transfer_in(state, _int(event, "amount_micro_yuan", 1), actions)


def _on_settings(
    state: dict[str, Any],
    event: dict[str, Any],
    now: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> Any:
    partial = validate(event.get("settings"), "settings event", allow_null_removal=True)
    own = merged(state["settings"], partial)
    effective = dict(ctx.defaults)
    for name in own:
        effective[name] = own[name]
    check_consistent(effective, "meter %r settings" % (state["meter"],))
    state["settings"] = own


def _on_mode(
    state: dict[str, Any],
    event: dict[str, Any],
    now: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> Any:
    mode = event.get("mode")
    if mode not in relay.MODES:
        raise EventError(
            "mode event: 'mode' must be one of %s, got %r" % (", ".join(relay.MODES), mode)
        )
    state["mode"] = mode


def _on_clear_overload(
    state: dict[str, Any],
    event: dict[str, Any],
    now: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> Any:
    state["overload_latched"] = False
    state["overload_count"] = 0


def _on_account(
    state: dict[str, Any],
    event: dict[str, Any],
    now: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> Any:
    target = ACCOUNT_TRANSITIONS.get((state["account"], event["type"]))
    if target is None:
        raise TransitionError(
            "meter %r: cannot %s, the account is %s"
            % (state["meter"], event["type"].replace("_", " "), state["account"])
        )
    if target == "closed":
        wallet.settle(state, actions)
        state["trip_deferred"] = False
    else:
        state["daily"] = []
        state["daily_first"] = None
    state["alarm"] = "ok"
    state["account"] = target


def _on_contact(
    state: dict[str, Any],
    event: dict[str, Any],
    now: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> Any:
    ok = event.get("ok")
    if ok is not True and ok is not False:
        raise EventError("contact event: 'ok' must be true or false, got %r" % (ok,))
    if ok != state["contact"]:
        state["contact"] = ok
        actions.append(_event("contact_restored" if ok else "lost_contact", {"ts": now}))


def _on_resolve_anomaly(
    state: dict[str, Any],
    event: dict[str, Any],
    now: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> Any:
    metering.resolve(state, event.get("action"), ctx, actions)


def _on_tick(
    state: dict[str, Any],
    event: dict[str, Any],
    now: int,
    ctx: Context,
    actions: list[dict[str, Any]],
) -> Any:
    return None


HANDLERS = {
    "reading": _on_reading,
    "credit": _on_credit,
    "refund": _on_refund,
    "reversal": _on_reversal,
    "transfer_in": _on_transfer_in,
    "settings": _on_settings,
    "mode": _on_mode,
    "clear_overload": _on_clear_overload,
    "open_account": _on_account,
    "close_account": _on_account,
    "contact": _on_contact,
    "resolve_anomaly": _on_resolve_anomaly,
    "tick": _on_tick,
}


# ---- policy -----------------------------------------------------------------------------------


def _evaluate(
    state: dict[str, Any], now: int, ctx: Context, actions: list[dict[str, Any]], reported: Any
) -> None:
    """Alarms, then the relay policy table, then reconciliation with a reported relay."""
    opened = state["account"] == "opened"
    get = ctx.get
    if opened:
        alarms.update(
            state,
            [
                0,
                get(state, "alarm1_micro_yuan"),
                get(state, "alarm2_micro_yuan"),
                get(state, "arrears_micro_yuan"),
            ],
            get(state, "hysteresis_micro_yuan"),
            actions,
        )
    low = opened and relay.credit_low(
        state, get(state, "overdraft_floor_micro_yuan"), get(state, "reclose_micro_yuan")
    )
    friendly = False
    if low and state["mode"] == "prepaid":
        windows, holidays = ctx.friendly(state)
        if windows:
            days, sod = ctx.zone.local_fields(now)
            friendly = in_window(windows, holidays, days, sod)
    conditions = {
        "account_closed": state["account"] == "closed",
        "overload": state["overload_latched"],
        "not_opened": state["account"] == "not_opened",
        "credit_low_friendly": friendly,
        "credit_low": low,
    }
    desired, reason = relay.decide(state, conditions)
    # a credit trip is deferred when the friendly window is all that keeps the relay closed
    state["trip_deferred"] = friendly and desired == relay.CLOSED
    changed = relay.set_desired(state, desired, reason, actions)
    if not changed and reported is not None:
        relay.reconcile(state, reported, get(state, "relay_attempts"), actions)


def step(
    state: dict[str, Any], event: dict[str, Any], now: int, ctx: Context
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Apply one event at time ``now`` (UTC epoch seconds); returns ``(state, actions)``.

    The state dict is changed in place and returned. Raises an ``EngineError``: ``EventError``
    for a malformed event, ``SettingsError`` for a bad ``settings`` event, ``TransitionError``
    for one the state does not allow; in every case the state is left unchanged.
    """
    if not isinstance(event, dict):
        raise EventError("an event must be an object with a 'type', got %r" % (event,))
    handler = HANDLERS.get(event.get("type"))  # type: ignore[arg-type]
    if handler is None:
        raise EventError(
            "unknown event type %r (known: %s)" % (event.get("type"), ", ".join(sorted(HANDLERS)))
        )
    if not is_int(now):
        raise EventError("now must be UTC epoch seconds (int), got %r" % (now,))
    actions: list[dict[str, Any]] = []
    reported = handler(state, event, now, ctx, actions)
    _evaluate(state, now, ctx, actions, reported)
    return state, actions


def display_state(state: dict[str, Any]) -> str:
    """The meter state shown to people (F35): closed and not opened first, then lost contact,
    then the alarm level, else opened."""
    account = state["account"]
    if account != "opened":
        return account
    if not state["contact"]:
        return "lost_contact"
    level = state["alarm"]
    return "opened" if level == "ok" else level


def runway_days(state: dict[str, Any], now: int, ctx: Context) -> int:
    """Whole days of credit left (B07): the recent average daily consumption priced at the
    current tariff (history.py); -1 when unknown, 0 at or below the overdraft floor."""
    days, second = ctx.zone.local_fields(now)
    return history.runway_days(
        state,
        days,
        now - second + SECONDS_PER_DAY,
        state["balance_micro_yuan"] - ctx.get(state, "overdraft_floor_micro_yuan"),
        ctx.timeline(state),
    )
