"""The rules of a site's default parameters (F13): each default's range, the out-of-the-box
values, and the check every change goes through — over the API, from a sites sheet, from the
office's form — before anything is stored or sent.

The money and power defaults stand in for a meter's engine settings, so they are also checked by
the engine's own rules (``edge.core.settings.check_update``: the same function decides what a
collector accepts), as the effective settings a meter without values of its own would get:
alarm 1 ≥ alarm 2 ≥ arrears, a non-negative cap. A change the collectors would refuse is refused
here, naming the field, instead of being stored, sent, refused by every collector and shown as
if it applied.

=========================== ================ ================================================
default                     range            meaning
=========================== ================ ================================================
price_micro_yuan_per_kwh    1 … 100 yuan     the default price (null: meters need their own)
alarm1_micro_yuan           0 … 10M yuan     alarm 1 at or below (null: engine's 50 yuan)
alarm2_micro_yuan           0 … 10M yuan     alarm 2 at or below (null: engine's 20 yuan)
hoarding_cap_micro_yuan     0 … 10M yuan     the most a meter may hold (default 30,000 yuan;
                                             null: no cap)
max_sale_micro_yuan         1 … 1M yuan      the most one sale may be (default 10,000 yuan)
overload_power_w            1 … 1 MW         overload above this power (null: off)
report_interval_s           5 … 86,400       collectors report a reading at least this often
history_interval_s          60 … 86,400      history slot
alarm_sms_number            a phone number   where alarm SMS go (null: none)
meter_lost_after_s          1 s … 30 days    a meter silent this long has lost contact
gateway_lost_after_s        1 s … 30 days    a collector silent this long has lost contact
archive_after_days          7 … 3,650        raw readings older than this are archived
receipt_header              ≤ 200, one line  printed on till receipts (null: none)
receipt_copies              1 … 3            receipts printed per sale
=========================== ================ ================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloud.errors import InvalidError, RuleError
from cloud.values import (
    MAX_AMOUNT_MICRO_YUAN,
    MAX_SETTING_MICRO_YUAN,
    check_int,
    check_line,
    check_phone,
)
from edge.core import settings as engine_settings
from edge.core.errors import EngineError

YUAN = 1_000_000
# Out of the box (migration 0004 sets the same on existing sites).
MAX_SALE_MICRO_YUAN = 10_000 * YUAN
HOARDING_CAP_MICRO_YUAN = 30_000 * YUAN


@dataclass(frozen=True)
class Rule:
    """One default's range; ``nullable``: null clears it."""

    low: int
    high: int
    nullable: bool
    unit: str


RULES: dict[str, Rule] = {
    "price_micro_yuan_per_kwh": Rule(1, 100 * YUAN, True, "micro-yuan per kWh"),
    "alarm1_micro_yuan": Rule(0, MAX_SETTING_MICRO_YUAN, True, "micro-yuan"),
    "alarm2_micro_yuan": Rule(0, MAX_SETTING_MICRO_YUAN, True, "micro-yuan"),
    "hoarding_cap_micro_yuan": Rule(0, MAX_SETTING_MICRO_YUAN, True, "micro-yuan"),
    "max_sale_micro_yuan": Rule(1, MAX_AMOUNT_MICRO_YUAN, False, "micro-yuan"),
    "overload_power_w": Rule(1, 1_000_000, True, "W"),
    "report_interval_s": Rule(5, 86_400, False, "s"),
    "history_interval_s": Rule(60, 86_400, False, "s"),
    "meter_lost_after_s": Rule(1, 30 * 86_400, False, "s"),
    "gateway_lost_after_s": Rule(1, 30 * 86_400, False, "s"),
    "archive_after_days": Rule(7, 3_650, False, "days"),
    "receipt_copies": Rule(1, 3, False, "copies"),
}
TEXT_DEFAULTS = {"alarm_sms_number": 32, "receipt_header": 200}
# The defaults that stand in for an engine setting of a meter without its own value.
ENGINE_NAMES = {
    "price_micro_yuan_per_kwh": "price_override_micro_yuan_per_kwh",
    "alarm1_micro_yuan": "alarm1_micro_yuan",
    "alarm2_micro_yuan": "alarm2_micro_yuan",
    "hoarding_cap_micro_yuan": "hoarding_cap_micro_yuan",
    "overload_power_w": "overload_power_w",
}


def check_value(name: str, value: Any) -> Any:
    """One default's value in its range (or null where it may be cleared)."""
    if name == "alarm_sms_number":
        return check_phone(value, name)
    if name in TEXT_DEFAULTS:
        return check_line(value, name, TEXT_DEFAULTS[name], required=False)
    rule = RULES.get(name)
    if rule is None:
        known = ", ".join([*RULES, *TEXT_DEFAULTS])
        raise InvalidError(f"unknown default {name!r}; known: {known}", name)
    if value is None:
        if not rule.nullable:
            raise InvalidError(f"{name} cannot be cleared; give {rule.low} … {rule.high}", name)
        return None
    return check_int(value, name, rule.low, rule.high)


def check_change(current: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Check a change of defaults against ``current`` (name → value): each value in range,
    then the engine's rules on the settings a meter without its own would get. Returns the
    checked values; raises ``InvalidError`` (a range) or ``RuleError`` (the combination)."""
    checked = {name: check_value(name, value) for name, value in values.items()}
    after = {**current, **checked}
    own = {
        engine: after[name] for name, engine in ENGINE_NAMES.items() if after.get(name) is not None
    }
    try:
        engine_settings.check_update({}, {}, own, "site defaults")
    except EngineError as exc:
        sent = [n for n in ("alarm2_micro_yuan", "alarm1_micro_yuan") if n in checked]
        field = sent[0] if sent else next(iter(checked), None)
        raise RuleError(
            f"{exc}; a collector would refuse these defaults (alarm 1 must be at or above "
            "alarm 2, which must be at or above the arrears level, 0)",
            field,
        ) from None
    return checked
