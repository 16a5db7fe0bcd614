"""Request bodies built from the rules the services enforce: commands (one schema per office
command: the args it takes and nothing else), a meter's settings (the engine's setting names,
each in the cloud's range: ``cloud.control.meter_settings``), tariff versions (the structure of
``edge/core/tariff.py``; its schedule rules stay the engine's, 409 when broken) and a site's
defaults (``cloud.park.defaults``)."""

from __future__ import annotations

from typing import Any

from cloud.control import commands, meter_settings
from cloud.park import defaults as site_rules
from cloud.park.queries import STATES
from cloud.web.api.schemas import (
    DATE,
    ID_STR,
    PHONE,
    RECORD_ID,
    array,
    enum,
    integer,
    line,
    nullable,
    obj,
)

_HHMM: dict[str, Any] = {
    "type": "string",
    "pattern": "^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$",
    "x-rule": "a time of day HH:MM (00:00 … 24:00)",
}
_WINDOW = obj(
    {
        "days": {
            "oneOf": [
                enum("daily", "weekdays", "weekend", "holidays"),
                {**array(integer(0, 6), 1, 7), "uniqueItems": True},
            ]
        },
        "from": _HHMM,
        "to": _HHMM,
    },
    ["days", "from", "to"],
)


def _setting(name: str) -> dict[str, Any]:
    if name == "tariff_id":
        schema = ID_STR
    elif name == "friendly_windows":
        schema = array(_WINDOW, max_items=16)
    elif name == "holidays":
        schema = array(DATE, max_items=400)
    else:
        low, high = meter_settings.SETTING_RANGES[name]
        schema = integer(low, high)
    return nullable(schema)


SETTINGS: dict[str, Any] = {
    **obj({name: _setting(name) for name in meter_settings.names()}),
    "minProperties": 1,
    "description": "a partial settings object (docs/architecture.md, 'Settings'); null removes "
    "the meter's own value. Checked as the collector would: alarm 1 ≥ alarm 2 ≥ arrears over "
    "what the meter has (409 when not)",
}

NO_ARGS = tuple(a for a, takes in commands.ARGS.items() if not takes)
_BRANCHES: list[tuple[dict[str, Any], dict[str, Any], list[str]]] = [
    (enum(*NO_ARGS), {"type": "object", "maxProperties": 0}, ["op"]),
    ({"type": "string", "const": "dispatch_settings"}, SETTINGS, ["op", "args"]),
    (
        {"type": "string", "const": "dispatch_tariff"},
        obj({"tariff_id": ID_STR}, ["tariff_id"]),
        ["op", "args"],
    ),
    (
        {"type": "string", "const": "resolve_anomaly"},
        obj({"action": enum("bill", "rebase")}, ["action"]),
        ["op", "args"],
    ),
]


def command_body(selections: list[tuple[dict[str, Any], list[str]]] | None = None) -> Any:
    """One command (op and the args it takes), optionally with one of several selections."""
    out = []
    for op, args, required in _BRANCHES:
        for props, needed in selections or [({}, [])]:
            out.append(obj({"op": op, "args": args, **props}, [*required, *needed]))
    return {"oneOf": out}


COMMAND = {
    **command_body(),
    "x-discriminator": "op",
    "examples": [
        {"op": "read_now"},
        {"op": "dispatch_settings", "args": {"alarm1_micro_yuan": 60_000_000}},
    ],
    "x-error": "give op (one of " + ", ".join(commands.ACTIONS) + ") with the args it takes",
}
BATCH = {
    **command_body(
        [
            ({"meters": array(ID_STR, 1, 10_000)}, ["meters"]),
            (
                {
                    "all": {"type": "boolean", "const": True},
                    "gateway": ID_STR,
                    "building": RECORD_ID,
                    "floor": RECORD_ID,
                    "state": enum(*STATES),
                },
                ["all"],
            ),
        ]
    ),
    "x-discriminator": "op",
    "x-error": "give op with the args it takes and either meters: [ids] or all: true (with "
    "optional gateway, building, floor, state)",
}

# -- tariff versions (edge/core/tariff.py) ----------------------------------------------------

PRICE = integer(0, 100_000_000, "micro-yuan per kWh (≤ 100 yuan)")
_SEGMENT = array({"type": "string", "maxLength": 16}, 2, 2)
_SCHEDULE = array(_SEGMENT, 1, 14)
TARIFF_VERSION = {
    **obj(
        {
            "version": integer(1, 2**31 - 1),
            "effective_from": integer(0, 253_402_300_799, "UTC epoch seconds"),
            "price_micro_yuan_per_kwh": PRICE,
            "bands": {
                **obj(dict.fromkeys(("sharp", "peak", "flat", "valley", "deep_valley"), PRICE)),
                "minProperties": 1,
            },
            "day": _SCHEDULE,
            "seasons": array(
                obj({"months": array(integer(1, 12), 2, 2), "day": _SCHEDULE}, ["months", "day"]),
                max_items=12,
            ),
            "weekend": _SCHEDULE,
            "weekend_days": {**array(integer(0, 6), max_items=7), "uniqueItems": True},
            "holidays": array(DATE, max_items=400),
            "tiers": obj(
                {
                    "period": enum("month", "year"),
                    "mode": enum("price", "adder"),
                    "steps": array(array(integer(0, 10**12), 2, 2), 1, 16),
                },
                ["period", "mode", "steps"],
            ),
        },
        ["version", "effective_from"],
    ),
    "description": "version, effective_from and prices (edge/core/tariff.py); the engine's "
    "rules on them (a schedule from 00:00 with rising starts, bands that are priced) are 409 "
    "when broken",
}

# -- site defaults (cloud/park/defaults.py) -----------------------------------------------------


def _default(name: str) -> dict[str, Any]:
    rule = site_rules.RULES[name]
    schema = integer(rule.low, rule.high, rule.unit)
    return nullable(schema) if rule.nullable else schema


DEFAULTS_BODY = obj(
    {
        **{name: _default(name) for name in site_rules.RULES},
        "alarm_sms_number": nullable(PHONE),
        "receipt_header": nullable(line(site_rules.TEXT_DEFAULTS["receipt_header"])),
        "dispatch": {
            "type": "boolean",
            "description": "false: store only (default true: send changed meter settings)",
        },
    }
)
