"""JSON Schemas of the API: the building blocks (bounded integers, one-line text, ids, dates),
the request pieces several endpoints share, and the response components (OpenAPI 3.1).

Request schemas are enforced as published (``cloud.web.api.validate``), so their bounds come from
the same constants the services check (``cloud.values``, ``cloud.park.defaults``, the engine's
settings table): the document cannot promise what the server refuses, nor the reverse. Request
objects are closed (``additionalProperties: false``) when registered. Response schemas say what
comes back; they stay open to new fields.
"""

from __future__ import annotations

from typing import Any

from cloud import values
from cloud.localtime import DATE_PATTERN, TIME_PATTERN

# -- building blocks -------------------------------------------------------------------------


def integer(
    low: int = values.INT64_MIN, high: int = values.INT64_MAX, description: str | None = None
) -> dict[str, Any]:
    """An integer within ``low..high`` (signed 64-bit unless narrowed)."""
    out: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if description:
        out["description"] = description
    return out


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema, or null."""
    out = dict(schema)
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


_LINE_RULE = "one line of text, no control characters, no leading or trailing spaces"


def line(max_len: int = values.NAME_MAX, description: str | None = None) -> dict[str, Any]:
    """One line of text, 1–``max_len`` characters (``cloud.values.check_line``)."""
    out: dict[str, Any] = {
        "type": "string",
        "minLength": 1,
        "maxLength": max_len,
        "pattern": values.LINE_PATTERN,
        "x-rule": _LINE_RULE,
    }
    if description:
        out["description"] = description
    return out


def opt_line(max_len: int = values.NAME_MAX, description: str | None = None) -> dict[str, Any]:
    """One line of text or the empty string (a field that may be left blank)."""
    out = line(max_len, description)
    out.pop("minLength")
    out["pattern"] = f"^(?:{values.LINE_PATTERN[1:-1]})?$"
    out["x-rule"] = _LINE_RULE + ", or empty"
    return out


def note(max_len: int = values.NOTE_MAX) -> dict[str, Any]:
    """Free text, 0–``max_len`` characters; tabs and line breaks allowed."""
    return {
        "type": "string",
        "maxLength": max_len,
        "pattern": values.NOTE_PATTERN,
        "x-rule": "text without control characters (tabs and line breaks allowed)",
    }


ID_STR: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": values.ID_MAX,
    "pattern": values.ID_PATTERN,
    "x-rule": "1–64 letters, digits, '-', '_' or '.', starting with a letter or digit",
}
PHONE: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": values.PHONE_MAX,
    "pattern": values.PHONE_PATTERN,
    "x-rule": "a phone number: digits, an optional leading +, spaces or dashes inside",
}
DATE: dict[str, Any] = {
    "type": "string",
    "pattern": DATE_PATTERN,
    "x-rule": "a date YYYY-MM-DD (1000-01-01 … 9999-12-31)",
}
WHEN: dict[str, Any] = {
    "type": "string",
    "pattern": TIME_PATTERN,
    "x-rule": "epoch seconds, a date YYYY-MM-DD or an ISO 8601 time like 2026-01-31T08:00:00Z",
}
INT64 = integer()
RECORD_ID = integer(1, values.INT64_MAX, "a record id")
AMOUNT = integer(1, values.MAX_AMOUNT_MICRO_YUAN, "micro-yuan, 1 … 1,000,000 yuan")
LIMIT_5000 = integer(1, 5000, "at most this many (default 500)")
IDEMPOTENCY_KEY: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": "^[!-~](?:[ -~]*[!-~])?$",
    "x-rule": "1–200 printable ASCII characters, no leading or trailing space",
}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def array(
    item: dict[str, Any], min_items: int | None = None, max_items: int | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "array", "items": item}
    if min_items is not None:
        out["minItems"] = min_items
    if max_items is not None:
        out["maxItems"] = max_items
    return out


def enum(*options: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(options)}


def closed(schema: Any) -> Any:
    """A request schema with every object that lists its properties closed
    (``additionalProperties: false``): the server refuses unknown fields by name."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: closed(v) for k, v in out["properties"].items()}
        out.setdefault("additionalProperties", False)
    for key in ("oneOf", "anyOf"):
        if key in out:
            out[key] = [closed(s) for s in out[key]]
    if isinstance(out.get("items"), dict):
        out["items"] = closed(out["items"])
    return out


# Loose shapes for responses.
MICRO = {"type": "integer", "description": "micro-yuan (1 yuan = 1,000,000)"}
TS = {"type": ["integer", "null"], "description": "UTC epoch seconds"}
STR = {"type": "string"}
OPT_STR = {"type": ["string", "null"]}
INT = {"type": "integer"}
OPT_INT = {"type": ["integer", "null"]}
BOOL = {"type": "boolean"}
OBJ = {"type": "object"}
OPT_OBJ = {"type": ["object", "null"]}

# -- response components ---------------------------------------------------------------------

STATES = enum("not_opened", "opened", "alarm1", "alarm2", "arrears", "lost_contact", "closed")
MONEY_STATUS = enum("pending", "applied", "rejected")

METER = obj(
    {
        "id": STR,
        "name": STR,
        "unit": OPT_STR,
        "gateway": STR,
        "address": STR,
        "model": STR,
        "prepaid": BOOL,
        "account": OPT_INT,
        "state": STATES,
        "relay": STR,
        "mode": enum("prepaid", "keep_power", "forced_off"),
        "balance_micro_yuan": MICRO,
        "energy_wh": OPT_INT,
        "power_w": OPT_INT,
        "last_seen": TS,
    },
    ["id", "state", "relay", "mode", "balance_micro_yuan"],
)

ALARM = obj(
    {
        "id": INT,
        "kind": STR,
        "meter": OPT_STR,
        "gateway": OPT_STR,
        "active": BOOL,
        "detail": {},
        "raised_ts": INT,
        "cleared_ts": TS,
        "cleared_by": OPT_STR,
    },
    ["id", "kind", "active"],
)

METER_DETAIL = {
    "allOf": [
        ref("Meter"),
        obj(
            {
                "credits_micro_yuan": MICRO,
                "refunds_micro_yuan": MICRO,
                "charges_micro_yuan": MICRO,
                "identity_holds": BOOL,
                "purchase_count": INT,
                "last_purchase_no": INT,
                "edge_balance_micro_yuan": OPT_INT,
                "settings": {
                    **OBJ,
                    "description": "desired: what the collector should have (the meter's own "
                    "values and its site's defaults)",
                },
                "applied_settings": {
                    **OBJ,
                    "description": "what the collector confirmed it applied",
                },
                "settings_pending": {
                    **array(STR),
                    "description": "settings whose desired value the collector has not "
                    "confirmed (sent, refused, or not sent yet)",
                },
                "settings_refused": {
                    **OPT_OBJ,
                    "description": "the newest settings command the collector refused, if it "
                    "is newer than the last one it applied: {command, reason, ts}",
                },
                "alarms": array(ref("Alarm")),
            },
            ["settings", "applied_settings", "settings_pending"],
        ),
    ]
}

_MONEY = {
    "id": INT,
    "meter": STR,
    "amount_micro_yuan": MICRO,
    "status": MONEY_STATUS,
    "reason": OPT_STR,
    "command_id": OPT_INT,
    "created_ts": INT,
    "resolved_ts": TS,
    "receipt_no": OPT_STR,
    "operator_id": OPT_INT,
}
REVERSAL_REF = nullable(
    obj(
        {"id": INT, "status": MONEY_STATUS, "receipt_no": OPT_STR, "resolved_ts": TS},
        ["id", "status"],
    )
)
SALE = obj(
    {
        **_MONEY,
        "account": OPT_INT,
        "method": STR,
        "purchase_no": INT,
        "reversed": {
            "type": "boolean",
            "description": "true once a reversal of this sale is applied (money taken back)",
        },
        "reversal": {**REVERSAL_REF, "description": "the sale's reversal, if any not rejected"},
    },
    ["id", "meter", "amount_micro_yuan", "status", "purchase_no", "reversed", "reversal"],
)
REFUND = obj({**_MONEY, "account": OPT_INT, "method": STR}, ["id", "meter", "status"])
REVERSAL = obj({**_MONEY, "sale": INT, "note": STR}, ["id", "sale", "meter", "status"])

COMMAND = obj(
    {
        "id": INT,
        "gateway": STR,
        "meter": OPT_STR,
        "action": STR,
        "op": STR,
        "args": OBJ,
        "status": enum("pending", "sent", "applied", "rejected", "verified"),
        "ref": OPT_OBJ,
        "batch_id": OPT_INT,
        "created_ts": INT,
        "sent_ts": TS,
        "last_sent_ts": TS,
        "send_count": INT,
        "result_ts": TS,
        "result_status": OPT_STR,
        "result_reason": OPT_STR,
        "result_balance_micro_yuan": OPT_INT,
        "verified_ts": TS,
    },
    ["id", "gateway", "op", "status"],
)

SETTLEMENT = obj(
    {
        "id": INT,
        "account": INT,
        "meter": STR,
        "status": MONEY_STATUS,
        "reason": OPT_STR,
        "balance_micro_yuan": OPT_INT,
        "refund_due_micro_yuan": OPT_INT,
        "debt_owed_micro_yuan": OPT_INT,
        "edge_balance_micro_yuan": OPT_INT,
        "command_id": OPT_INT,
        "created_ts": INT,
        "resolved_ts": TS,
    },
    ["id", "account", "meter", "status"],
)

ACCOUNT = obj(
    {
        "id": INT,
        "number": STR,
        "status": enum("open", "closing", "closed"),
        "site": STR,
        "customer": obj({"id": INT, "name": STR, "phone": OPT_STR}, ["id", "name"]),
        "meters": array(STR),
        "former_meters": array(STR),
        "opened_ts": INT,
        "closed_ts": TS,
        "note": STR,
        "settlements": array(ref("Settlement")),
    },
    ["id", "number", "status", "customer", "meters"],
)

METER_SWAP = obj(
    {
        "id": INT,
        "account": INT,
        "old_meter": STR,
        "new_meter": STR,
        "status": enum("closing", "rejected", "moving", "done"),
        "settlement": OPT_INT,
        "transfer_in": OPT_INT,
        "final_energy_wh": OPT_INT,
        "price_micro_yuan_per_kwh": OPT_INT,
        "unmetered_energy_wh": OPT_INT,
        "unmetered_charge_micro_yuan": OPT_INT,
        "settled_balance_micro_yuan": OPT_INT,
        "moved_micro_yuan": OPT_INT,
        "debt_owed_micro_yuan": OPT_INT,
        "note": STR,
        "created_ts": INT,
        "settled_ts": TS,
    },
    ["id", "account", "old_meter", "new_meter", "status"],
)

READING = obj(
    {
        "id": INT,
        "meter": STR,
        "ts": INT,
        "energy_wh": OPT_INT,
        "power_w": OPT_INT,
        "relay": OPT_STR,
        "charge_micro_yuan": MICRO,
        "balance_micro_yuan": OPT_INT,
    },
    ["id", "meter", "ts"],
)

TOKEN = obj(
    {
        "id": INT,
        "operator": STR,
        "name": STR,
        "prefix": STR,
        "created_ts": INT,
        "last_used_ts": TS,
        "expires_ts": TS,
        "revoked_ts": TS,
        "state": enum("active", "expired", "revoked"),
    },
    ["id", "operator", "name", "prefix", "state"],
)

ERROR = obj(
    {
        "error": obj(
            {"code": STR, "message": STR, "field": OPT_STR},
            ["code", "message", "field"],
        )
    },
    ["error"],
)

COMPONENTS: dict[str, Any] = {
    "Meter": METER,
    "MeterDetail": METER_DETAIL,
    "Alarm": ALARM,
    "Sale": SALE,
    "Refund": REFUND,
    "Reversal": REVERSAL,
    "Command": COMMAND,
    "Settlement": SETTLEMENT,
    "Account": ACCOUNT,
    "MeterSwap": METER_SWAP,
    "Reading": READING,
    "Token": TOKEN,
    "Error": ERROR,
}
