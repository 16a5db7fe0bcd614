"""JSON Schemas of the API's bodies and responses (OpenAPI 3.1 components)."""

from __future__ import annotations

from typing import Any

MICRO = {"type": "integer", "description": "micro-yuan (1 yuan = 1,000,000)"}
TS = {"type": ["integer", "null"], "description": "UTC epoch seconds"}
STR = {"type": "string"}
OPT_STR = {"type": ["string", "null"]}
INT = {"type": "integer"}
OPT_INT = {"type": ["integer", "null"]}
BOOL = {"type": "boolean"}
OBJ = {"type": "object"}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


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
        "relay": enum("open", "closed", "unknown"),
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
    }
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
                "settings": OBJ,
                "alarms": array(ref("Alarm")),
            }
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
}
SALE = obj({**_MONEY, "account": OPT_INT, "method": STR, "purchase_no": INT})
REFUND = obj({**_MONEY, "account": OPT_INT, "method": STR})
REVERSAL = obj({**_MONEY, "sale": INT, "note": STR})

COMMAND = obj(
    {
        "id": INT,
        "gateway": STR,
        "meter": OPT_STR,
        "action": STR,
        "op": STR,
        "args": OBJ,
        "status": enum("pending", "sent", "applied", "rejected", "verified"),
        "batch_id": OPT_INT,
        "created_ts": INT,
        "sent_ts": TS,
        "send_count": INT,
        "result_ts": TS,
        "result_status": OPT_STR,
        "result_reason": OPT_STR,
        "verified_ts": TS,
    }
)

SETTLEMENT = obj(
    {
        "id": INT,
        "account": INT,
        "meter": STR,
        "status": MONEY_STATUS,
        "balance_micro_yuan": OPT_INT,
        "refund_due_micro_yuan": OPT_INT,
        "debt_owed_micro_yuan": OPT_INT,
    }
)

ACCOUNT = obj(
    {
        "id": INT,
        "number": STR,
        "status": enum("open", "closing", "closed"),
        "site": STR,
        "customer": obj({"id": INT, "name": STR, "phone": OPT_STR}),
        "meters": array(STR),
        "former_meters": array(STR),
        "opened_ts": INT,
        "closed_ts": TS,
        "settlements": array(ref("Settlement")),
    }
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
    }
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
    "Reading": READING,
    "Error": ERROR,
}
