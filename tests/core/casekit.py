"""Helpers for the plain test cases (``cases_*.py``), which run on CPython (collected by pytest
through tests/core/conftest.py) and on MicroPython (tests/upy/run.mjs). Plain Python only:
no pytest, no typing, nothing MicroPython lacks."""

from edge.core import engine

# 2026-01-01 00:00 local time in UTC+8 (a Thursday), as UTC epoch seconds.
T0 = 1767196800
HOUR = 3600
DAY = 86400
CN = [[0, 8 * HOUR]]

TOU = {
    "version": 1,
    "effective_from": 0,
    "bands": {"peak": 1000000, "valley": 400000},
    "day": [["00:00", "valley"], ["08:00", "peak"], ["22:00", "valley"]],
}


def local(day, hh, mm=0, ss=0):
    """UTC epoch seconds of local (UTC+8) time on 2026-01-(1 + day)."""
    return T0 + day * DAY + hh * HOUR + mm * 60 + ss


def raises(exc_type, fn, *args):
    """Call fn(*args); it must raise exc_type. Returns the exception."""
    try:
        fn(*args)
    except exc_type as exc:
        return exc
    raise AssertionError(f"{exc_type.__name__} was not raised by {fn!r}")


def ctx_with(tariffs=None, defaults=None, zone=None):
    return engine.Context(
        tariffs=tariffs if tariffs is not None else {"tou": [TOU]},
        zone_rules=zone if zone is not None else CN,
        defaults=defaults if defaults is not None else {"tariff_id": "tou"},
    )


def run(state, ctx, events, now):
    """Step every event at time now; returns all actions."""
    out = []
    for event in events:
        state, actions = engine.step(state, event, now, ctx)
        out.extend(actions)
    return out


def opened(ctx, balance=0, settings=None, now=T0, meter="m1"):
    """A meter with an opened account and ``balance`` credited as purchase 1 (if > 0)."""
    state = engine.new_state(meter, settings)
    run(state, ctx, [{"type": "open_account"}], now)
    if balance:
        run(state, ctx, [{"type": "credit", "purchase_no": 1, "amount_micro_yuan": balance}], now)
    return state


def reading(ts, energy_wh, power_w=None, relay=None):
    return {"type": "reading", "ts": ts, "energy_wh": energy_wh, "power_w": power_w, "relay": relay}


def of_type(actions, kind):
    return [a for a in actions if a["type"] == kind]


def events(actions, kind=None):
    return [a for a in actions if a["type"] == "event" and (kind is None or a["kind"] == kind)]


def relays(actions):
    return [(a["op"], a["reason"]) for a in actions if a["type"] == "relay"]


def charged(actions):
    return sum(a["amount_micro_yuan"] for a in actions if a["type"] == "charge")


def check_ledger(state):
    """The ledger identity, to the micro-yuan."""
    assert state["balance_micro_yuan"] == (
        state["credits_micro_yuan"] - state["refunds_micro_yuan"] - state["charges_micro_yuan"]
    ), state


def canon(obj):
    """A canonical text of a JSON-compatible value (MicroPython's json has no sort_keys)."""
    if isinstance(obj, dict):
        return "{" + ",".join(repr(k) + ":" + canon(obj[k]) for k in sorted(obj)) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(canon(v) for v in obj) + "]"
    return repr(obj)
