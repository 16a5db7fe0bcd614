"""A meter's engine settings in the cloud: the range the office may set each one in, the check a
settings command passes before it is stored or sent, and the meter's *desired* settings (what its
collector should have) kept apart from the *applied* ones (what the collector confirmed).

One definition of what a collector accepts: the engine's own ``edge.core.settings`` —
``validate`` for each value, ``check_update`` for the meter as a whole (alarm 1 ≥ alarm 2 ≥
arrears over the engine's defaults, the site's defaults and the meter's own values). The cloud
narrows the ranges to the domain (a price of at most 100 yuan per kWh, money within ± ten
million yuan) and refuses before it stores; what still reaches a collector and is refused there
shows in ``settings_refused`` and never in ``applied_settings``.

Ranges (``SETTING_RANGES``; null removes a meter's own value in a settings command):

=================================== ==================== =======================================
setting                             range                note
=================================== ==================== =======================================
price_override_micro_yuan_per_kwh   1 … 100,000,000      micro-yuan per kWh (≤ 100 yuan)
alarm1/alarm2/arrears_micro_yuan    ± 10,000,000 yuan    alarm 1 ≥ alarm 2 ≥ arrears
overdraft_floor/reclose_micro_yuan  ± 10,000,000 yuan
hysteresis/hoarding_cap_micro_yuan  0 … 10,000,000 yuan
overload_power_w, rated_power_w     1 … 1,000,000 W
overload_readings                   1 … 1,000
relay_attempts                      1 … 100
register_wrap_wh                    1 … 10^15 Wh
tariff_id                           an id                the tariff must exist
friendly_windows, holidays          as edge/core/windows.py (≤ 16 windows, ≤ 400 dates)
=================================== ==================== =======================================
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import InvalidError, NotFoundError, RuleError
from cloud.models import Command, Meter, SiteDefaults, Tariff
from cloud.values import MAX_SETTING_MICRO_YUAN, check_id, check_int
from edge.core.errors import EngineError
from edge.core.settings import NAMES, check_update, merged, validate
from edge.core.windows import compile_windows, parse_holidays

M = MAX_SETTING_MICRO_YUAN
SETTING_RANGES: dict[str, tuple[int, int]] = {
    "price_override_micro_yuan_per_kwh": (1, 100_000_000),
    "alarm1_micro_yuan": (-M, M),
    "alarm2_micro_yuan": (-M, M),
    "arrears_micro_yuan": (-M, M),
    "hysteresis_micro_yuan": (0, M),
    "overdraft_floor_micro_yuan": (-M, M),
    "reclose_micro_yuan": (-M, M),
    "hoarding_cap_micro_yuan": (0, M),
    "overload_power_w": (1, 1_000_000),
    "overload_readings": (1, 1000),
    "rated_power_w": (1, 1_000_000),
    "relay_attempts": (1, 100),
    "register_wrap_wh": (1, 10**15),
}
STRUCTURED = ("friendly_windows", "holidays")
# Settings a meter takes from its site's defaults (F13) when it has none of its own.
DEFAULTED_SETTINGS = ("alarm1_micro_yuan", "alarm2_micro_yuan", "hoarding_cap_micro_yuan",
                      "overload_power_w")  # fmt: skip
# Thresholds named first when the combination is refused.
_THRESHOLDS = ("alarm1_micro_yuan", "alarm2_micro_yuan", "arrears_micro_yuan")


def names() -> list[str]:
    return list(NAMES)


def check_partial(partial: Any, field: str = "args") -> dict[str, Any]:
    """Each value of a partial settings object in its range (null removes one); errors name
    ``field.<setting>``. Structured values (windows, holidays) are the engine's to judge."""
    if not isinstance(partial, dict) or not partial:
        raise InvalidError(f"{field} must be a non-empty object of settings", field)
    for name, value in partial.items():
        where = f"{field}.{name}"
        if name not in NAMES:
            raise InvalidError(f"unknown setting {name!r}; known: {', '.join(NAMES)}", where)
        if value is None:
            continue
        if name == "tariff_id":
            check_id(value, where)
        elif name in STRUCTURED:
            try:
                (compile_windows if name == "friendly_windows" else parse_holidays)(value, where)
            except EngineError as exc:
                raise RuleError(str(exc), where) from None
        else:
            low, high = SETTING_RANGES[name]
            check_int(value, where, low, high)
    try:
        validate(partial, field, allow_null_removal=True)
    except EngineError as exc:  # pragma: no cover - the ranges above are narrower
        raise InvalidError(str(exc), field) from None
    return dict(partial)


def effective_settings(session: Session, meter: Meter) -> dict[str, Any]:
    """What the collector needs to bill and alarm ``meter``: the meter's own values (imported
    or dispatched), else its site's defaults (F13): price, alarm amounts, hoarding cap, overload
    threshold. A meter with a tariff of its own gets no default price."""
    defaults = session.get(SiteDefaults, meter.gateway.site_id)
    out: dict[str, Any] = {}
    own_price = meter.tariff_id is not None or meter.price_override_micro_yuan_per_kwh is not None
    if not own_price and defaults is not None and defaults.price_micro_yuan_per_kwh is not None:
        out["price_override_micro_yuan_per_kwh"] = defaults.price_micro_yuan_per_kwh
    if meter.price_override_micro_yuan_per_kwh is not None:
        out["price_override_micro_yuan_per_kwh"] = meter.price_override_micro_yuan_per_kwh
    for name in DEFAULTED_SETTINGS:
        value = getattr(meter, name)
        if value is None and defaults is not None:
            value = getattr(defaults, name)
        if value is not None:
            out[name] = value
    out.update(meter.settings or {})
    out.pop("tariff_id", None)  # sent with its versions by dispatch_tariff
    return out


def desired_settings(session: Session, meter: Meter) -> dict[str, Any]:
    """What the meter's collector should have: its effective settings and its tariff."""
    out = effective_settings(session, meter)
    if meter.tariff_id is not None:
        out["tariff_id"] = meter.tariff_id
    return {k: v for k, v in out.items() if v is not None}


def check_for_meter(
    session: Session, meter: Meter, partial: Any, field: str = "args"
) -> dict[str, Any]:
    """A settings command for ``meter`` as its collector would judge it: each value in range,
    then the engine's ``check_update`` over what the collector should have with the change.
    ``RuleError`` (naming the threshold sent) when the combination is refused."""
    checked = check_partial(partial, field)
    tariff_id = checked.get("tariff_id")
    if tariff_id is not None and session.get(Tariff, tariff_id) is None:
        raise NotFoundError(f"tariff {tariff_id!r} does not exist", f"{field}.tariff_id")
    try:
        check_update({}, desired_settings(session, meter), checked, f"meter {meter.id}")
    except EngineError as exc:
        sent = [n for n in _THRESHOLDS if n in checked] or list(checked)
        raise RuleError(
            f"{exc}; its collector would refuse these settings", f"{field}.{sent[0]}"
        ) from None
    return checked


def record_applied(meter: Meter, args: dict[str, Any]) -> None:
    """The collector applied a settings command: merge it into the applied settings."""
    meter.applied_settings = merged(dict(meter.applied_settings or {}), args)


def view(session: Session, meter: Meter) -> dict[str, Any]:
    """A meter's settings, desired and applied apart, what is still pending, and the newest
    refusal the collector sent since it last applied settings."""
    desired = desired_settings(session, meter)
    applied = dict(meter.applied_settings or {})
    pending = sorted(n for n in set(desired) | set(applied) if desired.get(n) != applied.get(n))
    last = session.execute(
        select(Command.id, Command.status, Command.result_reason, Command.result_ts)
        .where(
            Command.meter_id == meter.id,
            Command.op == "settings",
            Command.status.in_(("applied", "verified", "rejected")),
        )
        .order_by(Command.id.desc())
        .limit(1)
    ).first()
    refused = None
    if last is not None and last.status == "rejected":
        refused = {"command": last.id, "reason": last.result_reason, "ts": last.result_ts}
    return {
        "settings": desired,
        "applied_settings": applied,
        "settings_pending": pending,
        "settings_refused": refused,
    }
