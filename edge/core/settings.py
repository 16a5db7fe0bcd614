"""Per-meter settings: names, documented defaults, validation (unknown keys are an error).

A meter's effective setting is its own value if it has one, else the site default (the
Context's ``defaults``), else the engine default below. In a ``settings`` event a value of
``null`` removes the meter's own value (back to the site default).

=====================================  ===========  =============================================
setting                                default      meaning
=====================================  ===========  =============================================
``tariff_id``                          null         the tariff (a key of Context.tariffs)
``price_override_micro_yuan_per_kwh``  null         one meter, one price: replaces the tariff
``alarm1_micro_yuan``                  50,000,000   alarm 1 at or below (50 yuan)
``alarm2_micro_yuan``                  20,000,000   alarm 2 at or below (20 yuan)
``arrears_micro_yuan``                 0            arrears at or below
``hysteresis_micro_yuan``              1,000,000    an alarm clears only above threshold + this
``overdraft_floor_micro_yuan``         0            prepaid: trip at or below this balance
``reclose_micro_yuan``                 0            after a credit trip, close only above this
                                                    (never below the floor)
``hoarding_cap_micro_yuan``            null         a credit lifting the balance above is refused
``friendly_windows``                   []           no credit trip inside these (windows.py)
``holidays``                           []           local dates "YYYY-MM-DD" for the windows
``overload_power_w``                   null         overload above this power (null: off)
``overload_readings``                  3            ... for this many consecutive readings
``rated_power_w``                      100,000      the most the meter can deliver (jump check;
                                                    null: no check)
``relay_attempts``                     3            relay commands before a relay fault
``register_wrap_wh``                   2**32 * 10   where the energy register wraps (null: never)
=====================================  ===========  =============================================
"""

from edge.core.compat import Any, is_int
from edge.core.errors import SettingsError
from edge.core.readings import DEFAULT_WRAP_WH
from edge.core.windows import compile_windows, parse_holidays

DEFAULTS: dict[str, Any] = {
    "tariff_id": None,
    "price_override_micro_yuan_per_kwh": None,
    "alarm1_micro_yuan": 50_000_000,
    "alarm2_micro_yuan": 20_000_000,
    "arrears_micro_yuan": 0,
    "hysteresis_micro_yuan": 1_000_000,
    "overdraft_floor_micro_yuan": 0,
    "reclose_micro_yuan": 0,
    "hoarding_cap_micro_yuan": None,
    "friendly_windows": [],
    "holidays": [],
    "overload_power_w": None,
    "overload_readings": 3,
    "rated_power_w": 100_000,
    "relay_attempts": 3,
    "register_wrap_wh": DEFAULT_WRAP_WH,
}
NAMES = sorted(DEFAULTS)

# kind of each setting: "int" any int, "pos" int >= 1, "nat" int >= 0, "?" nullable
_KINDS: dict[str, str] = {
    "price_override_micro_yuan_per_kwh": "nat?",
    "alarm1_micro_yuan": "int",
    "alarm2_micro_yuan": "int",
    "arrears_micro_yuan": "int",
    "hysteresis_micro_yuan": "nat",
    "overdraft_floor_micro_yuan": "int",
    "reclose_micro_yuan": "int",
    "hoarding_cap_micro_yuan": "nat?",
    "overload_power_w": "pos?",
    "overload_readings": "pos",
    "rated_power_w": "pos?",
    "relay_attempts": "pos",
    "register_wrap_wh": "pos?",
}


# The same table under its public name: the cloud builds its API schema of each setting from it.
KINDS = _KINDS


def _check_value(name: str, value: Any, where: str) -> None:
    if name == "tariff_id":
        if value is not None and (not isinstance(value, str) or not value):
            raise SettingsError("%s: tariff_id must be a tariff id (string) or null" % where)
        return
    if name == "friendly_windows":
        compile_windows(value, where + ": friendly_windows")
        return
    if name == "holidays":
        parse_holidays(value, where + ": holidays")
        return
    kind = _KINDS[name]
    if value is None:
        if kind.endswith("?"):
            return
        raise SettingsError("%s: %s cannot be null" % (where, name))
    if not is_int(value):
        raise SettingsError("%s: %s must be an integer, got %r" % (where, name, value))
    if kind.startswith("nat") and value < 0:
        raise SettingsError("%s: %s must be >= 0, got %d" % (where, name, value))
    if kind.startswith("pos") and value < 1:
        raise SettingsError("%s: %s must be >= 1, got %d" % (where, name, value))


def validate(partial: object, where: str, allow_null_removal: bool = False) -> dict[str, Any]:
    """Check a partial settings dict; unknown names are an error naming the key.

    ``allow_null_removal``: in a meter's ``settings`` event, null means "remove the meter's own
    value", so any setting may be null there.
    """
    if not isinstance(partial, dict):
        raise SettingsError("%s: settings must be an object, got %r" % (where, partial))
    for name in partial:
        if name not in DEFAULTS:
            raise SettingsError(
                "%s: unknown setting %r (known: %s)" % (where, name, ", ".join(NAMES))
            )
        value = partial[name]
        if value is None and allow_null_removal:
            continue
        _check_value(name, value, where)
    return partial


def check_consistent(effective: dict[str, Any], where: str) -> None:
    """Cross-setting rules on the effective settings: alarm1 >= alarm2 >= arrears."""
    a1 = effective["alarm1_micro_yuan"]
    a2 = effective["alarm2_micro_yuan"]
    ar = effective["arrears_micro_yuan"]
    if not a1 >= a2 >= ar:
        raise SettingsError(
            "%s: thresholds must satisfy alarm1 >= alarm2 >= arrears, got %d, %d, %d"
            % (where, a1, a2, ar)
        )


def merged(own: dict[str, Any], partial: dict[str, Any]) -> dict[str, Any]:
    """A meter's own settings after a (validated) ``settings`` event: null removes a value."""
    out = dict(own)
    for name in partial:
        if partial[name] is None:
            if name in out:
                del out[name]
        else:
            out[name] = partial[name]
    return out


def check_update(
    defaults: dict[str, Any], own: dict[str, Any], partial: object, where: str
) -> dict[str, Any]:
    """What a collector does with a ``settings`` event, without a meter state: validate the
    partial, merge it into the meter's own settings, and check the effective settings (the
    engine's defaults, then ``defaults``, then the meter's own) are consistent. Returns the new
    own settings; raises ``SettingsError``. The cloud calls it before it stores or sends
    anything, so a command the collector would refuse is refused at the office instead."""
    checked = validate(partial, where, allow_null_removal=True)
    own_after = merged(own, checked)
    effective = dict(DEFAULTS)
    for name in defaults:
        effective[name] = defaults[name]
    for name in own_after:
        effective[name] = own_after[name]
    check_consistent(effective, where)
    return own_after
