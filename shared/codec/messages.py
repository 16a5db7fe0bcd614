"""Sync messages, protocol version 1 (docs/protocol.md, "Messages"): builders and validators.

Every message is a JSON object with ``t`` (its type). An envelope body is ``{"v": 1, "m":
[message, ...]}``. The schemas below are data: one table per direction, each field with a
checker and whether it is required. Validators return the message unchanged or raise
``MalformedError`` naming the type and field, so a receiver can refuse one bad message and
still apply the good ones beside it. Fields not in a schema are allowed and ignored (a newer
sender may add some); a missing required field or a wrong type is an error.

Sans-I/O: no clocks, sockets or files. Money in integer micro-yuan, energy in Wh, times in epoch
seconds; a float anywhere is refused by the envelope codec before it gets here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from shared.codec import readings
from shared.codec.errors import MalformedError, UsageError

PROTOCOL = 1

RELAY_STATES = ("open", "closed")
MODES = ("prepaid", "keep_power", "forced_off")
DISPLAY_STATES = (
    "not_opened",
    "opened",
    "alarm1",
    "alarm2",
    "arrears",
    "lost_contact",
    "closed",
)
RESULT_STATUSES = ("applied", "rejected", "duplicate", "held")
# Known event kinds (docs/protocol.md). The engine may grow new ones, so the validator asks only
# for a snake_case name; receivers handle the kinds they know and keep the others as they are.
EVENT_KINDS = (
    # from the engine (docs/architecture.md, "Actions")
    "alarm1",
    "alarm2",
    "arrears",
    "alarm_clear",
    "overload",
    "relay_fault",
    "counter_reset",
    "counter_wrap",
    "jump_held",
    "anomaly_resolved",
    "unrated",
    "lost_contact",
    "contact_restored",
    # from the agent
    "trip",
    "close",
    "clock_drift",
    "command_failed",
)
# op -> whether it names a meter ("meter" required, None forbidden, or either)
OPS_METER: dict[str, str] = {
    "credit": "required",
    "refund": "required",
    "reversal": "required",
    "transfer_in": "required",
    "tariff": "either",
    "settings": "required",
    "mode": "required",
    "clear_overload": "required",
    "open_account": "required",
    "close_account": "required",
    "resolve_anomaly": "required",
    "read_now": "required",
    "time": "none",
    "config": "none",
}
OPS = tuple(OPS_METER)

Checker = Callable[[Any], bool]


# Every integer lands in a signed 64-bit column (SQLite INTEGER, PostgreSQL BIGINT) or store
# row; JSON integers are unbounded, and a bigger one would fail at the INSERT after the message
# passed as valid (failing the whole envelope or command batch instead of the one message).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


# Each integer checker tests a plain ``int`` (what JSON decodes to) in one comparison first;
# anything else (a subclass, bool refused) the long way.
def _int(v: Any) -> bool:
    if type(v) is int:
        return INT_MIN <= v <= INT_MAX
    return isinstance(v, int) and not isinstance(v, bool) and INT_MIN <= v <= INT_MAX


def _nat(v: Any) -> bool:
    if type(v) is int:
        return 0 <= v <= INT_MAX
    return _int(v) and v >= 0


def _pos(v: Any) -> bool:
    if type(v) is int:
        return 1 <= v <= INT_MAX
    return _int(v) and v >= 1


# The least plain ``int`` each integer checker takes (the validators test those inline).
_LEAST: dict[Checker, int] = {_int: INT_MIN, _nat: 0, _pos: 1}


def _str(v: Any) -> bool:
    # No NUL: PostgreSQL text cannot hold it (the INSERT would fail, not the message).
    return isinstance(v, str) and 0 < len(v) <= 256 and "\x00" not in v


def _opt(check: Checker) -> Checker:
    def opt(v: Any) -> bool:
        return v is None or check(v)

    opt.inner = check  # type: ignore[attr-defined]  # for _compile
    return opt


def _one_of(values: tuple[str, ...]) -> Checker:
    return lambda v: v in values


def _list_of(check: Checker, max_len: int = 100_000) -> Checker:
    least = _LEAST.get(check)

    def list_of(v: Any) -> bool:
        if not isinstance(v, list) or len(v) > max_len:
            return False
        if least is not None:
            for x in v:
                if type(x) is not int or not least <= x <= INT_MAX:
                    break
            else:
                return True  # all plain integers in range
        return all(check(x) for x in v)

    return list_of


def _dict(v: Any) -> bool:
    return isinstance(v, dict)


def _id(v: Any) -> bool:
    return _str(v) or _pos(v)


def _kind(v: Any) -> bool:
    return (
        isinstance(v, str)
        and 0 < len(v) <= 64
        and all(c == "_" or "a" <= c <= "z" or "0" <= c <= "9" for c in v)
    )


def _any(v: Any) -> bool:
    return True


def _band_energy(v: Any) -> bool:
    if not isinstance(v, dict):
        return False
    for k, x in v.items():
        if not isinstance(k, str):
            return False
        if type(x) is int:
            if not 0 <= x <= INT_MAX:
                return False
        elif not _nat(x):
            return False
    return True


def _hello_meter(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and _str(v.get("id"))
        and _str(v.get("model"))
        and _str(v.get("bus"))
        and (_str(v.get("address")) or _nat(v.get("address")))
    )


# name -> (checker, required, what the field should be: for error messages)
Field = tuple[Checker, bool, str]
_REQ, _OPT = True, False

# The checks of a reading's fields; the fields themselves are shared/codec/readings.py's.
_READING_CHECKS: dict[str, Field] = {
    "id": (_pos, _REQ, "a positive integer"),
    "meter": (_str, _REQ, "a meter id string"),
    "ts": (_nat, _REQ, "epoch seconds"),
    "energy_wh": (_nat, _REQ, "integer Wh"),
    "power_w": (_opt(_int), _REQ, "integer W or null"),
    "relay": (_opt(_one_of(RELAY_STATES)), _REQ, "'open', 'closed' or null"),
    "band_energy_wh": (_opt(_band_energy), _OPT, "{band: Wh} or null"),
    "voltages_dv": (_opt(_list_of(_int, 3)), _OPT, "a list of integer 0.1 V or null"),
    "currents_ma": (_opt(_list_of(_int, 3)), _OPT, "a list of integer mA or null"),
    "charge_micro_yuan": (_nat, _REQ, "integer micro-yuan ≥ 0"),
    "balance_micro_yuan": (_int, _REQ, "integer micro-yuan"),
    "credits_micro_yuan": (_nat, _REQ, "integer micro-yuan ≥ 0"),
    "refunds_micro_yuan": (_nat, _REQ, "integer micro-yuan ≥ 0"),
    "charges_micro_yuan": (_nat, _REQ, "integer micro-yuan ≥ 0"),
}

UP_SCHEMAS: dict[str, dict[str, Field]] = {
    "hello": {
        "agent": (_str, _REQ, "the agent version string"),
        "config_hash": (_str, _REQ, "a hash string"),
        "meters": (_list_of(_hello_meter), _REQ, "a list of {id, model, bus, address}"),
        "protocol": (lambda v: v == PROTOCOL, _REQ, f"the integer {PROTOCOL}"),
    },
    "reading": {name: _READING_CHECKS[name] for name in readings.MESSAGE if name != "t"},
    "state": {
        "meter": (_str, _REQ, "a meter id string"),
        "state": (_one_of(DISPLAY_STATES), _REQ, f"one of {DISPLAY_STATES}"),
        "relay": (_opt(_one_of(RELAY_STATES)), _REQ, "'open', 'closed' or null"),
        "mode": (_one_of(MODES), _REQ, f"one of {MODES}"),
        "balance_micro_yuan": (_int, _REQ, "integer micro-yuan"),
        "alarm": (_opt(_one_of(("alarm1", "alarm2", "arrears"))), _REQ, "alarm level or null"),
        "ts": (_nat, _OPT, "epoch seconds"),
    },
    "event": {
        "id": (_pos, _REQ, "a positive integer"),
        "meter": (_opt(_str), _REQ, "a meter id string or null"),
        "ts": (_nat, _REQ, "epoch seconds"),
        "kind": (_kind, _REQ, "a snake_case event kind, e.g. one of EVENT_KINDS"),
        "detail": (_any, _REQ, "any JSON value"),
    },
    "result": {
        "cmd": (_id, _REQ, "the command id"),
        "meter": (_opt(_str), _REQ, "a meter id string or null"),
        "op": (_str, _REQ, "the command's op"),
        "status": (_one_of(RESULT_STATUSES), _REQ, f"one of {RESULT_STATUSES}"),
        "reason": (_opt(_str), _REQ, "a reason string or null"),
        "balance_micro_yuan": (_opt(_int), _REQ, "integer micro-yuan or null"),
        "purchase_no": (_opt(_pos), _OPT, "a purchase number or null"),
        # close_account only: the balance the collector settled (> 0 credit paid back, < 0 a
        # debt written off). The cloud records this, not its mirror, which may still miss
        # charges in envelopes that are being resent.
        "settled_balance_micro_yuan": (_opt(_int), _OPT, "integer micro-yuan or null"),
        # duplicate only: what became of the purchase (or reversal) the first time, when the
        # collector still knows; the cloud settles the record by it instead of asking a person.
        "original_status": (
            _opt(_one_of(("applied", "rejected"))),
            _OPT,
            "'applied', 'rejected' or null",
        ),
    },
    "need_purchase": {
        "meter": (_str, _REQ, "a meter id string"),
        "purchase_no": (_pos, _REQ, "a positive integer"),
    },
    "hb": {
        "ts": (_nat, _REQ, "epoch seconds"),
        "backlog": (_nat, _REQ, "an integer ≥ 0"),
        "buses": (_dict, _REQ, "an object of per-bus health"),
        "uptime_s": (_nat, _REQ, "an integer ≥ 0"),
    },
}

DOWN_SCHEMAS: dict[str, dict[str, Field]] = {
    "ack": {"seqs": (_list_of(_pos), _REQ, "a list of positive sequence numbers")},
    "cmd": {
        "id": (_id, _REQ, "a non-empty string or positive integer"),
        "meter": (_opt(_str), _REQ, "a meter id string or null"),
        "op": (_one_of(OPS), _REQ, f"one of {OPS}"),
        "args": (_dict, _REQ, "an object"),
    },
}

# op -> the args it needs (docs/protocol.md, "Commands")
ARGS_SCHEMAS: dict[str, dict[str, Field]] = {
    "credit": {
        "purchase_no": (_pos, _REQ, "a positive integer"),
        "amount_micro_yuan": (_pos, _REQ, "integer micro-yuan > 0"),
    },
    "refund": {"amount_micro_yuan": (_pos, _REQ, "integer micro-yuan > 0")},
    "reversal": {"purchase_no": (_pos, _REQ, "a positive integer")},
    "transfer_in": {"amount_micro_yuan": (_pos, _REQ, "integer micro-yuan > 0")},
    "tariff": {
        "tariff_id": (_str, _REQ, "a tariff id string"),
        "version": (
            lambda v: (
                isinstance(v, dict) and _nat(v.get("effective_from")) and _pos(v.get("version"))
            ),
            _REQ,
            "a tariff version object with version and effective_from",
        ),
    },
    "settings": {},
    "mode": {"mode": (_one_of(MODES), _REQ, f"one of {MODES}")},
    "clear_overload": {},
    "open_account": {},
    "close_account": {},
    "resolve_anomaly": {"action": (_one_of(("bill", "rebase")), _REQ, "'bill' or 'rebase'")},
    "read_now": {},
    "time": {"utc": (_nat, _REQ, "epoch seconds")},
    "config": {"meters": (_list_of(_dict), _REQ, "a list of meter objects")},
}


# A schema compiled for the validators (every message a collector sends goes through one: the
# bridge's hot path): per field its name, checker, whether required, what it should be, whether
# None passes, and for an integer checker the least plain ``int`` it takes (checked inline, no
# call), else None.
Compiled = tuple[tuple[str, Checker, bool, str, bool, int | None], ...]


def _compile(schema: dict[str, Field]) -> Compiled:
    out = []
    for name, (check, required, expected) in schema.items():
        inner = getattr(check, "inner", None)
        leaf = check if inner is None else inner
        out.append((name, check, required, expected, inner is not None, _LEAST.get(leaf)))
    return tuple(out)


def _fault(msg: dict[str, Any], fields: Compiled) -> str | None:
    """What is wrong with ``msg`` by ``fields`` (the error after its subject), None if nothing."""
    for name, check, required, expected, nullable, least in fields:
        if name not in msg:
            if required:
                return f"lacks field {name!r} ({expected})"
            continue
        v = msg[name]
        if least is not None and type(v) is int:
            if least <= v <= INT_MAX:
                continue
        elif (v is None and nullable) or check(v):
            continue
        return f"field {name!r} is {v!r}; expected {expected}"
    return None


_UP = {kind: _compile(schema) for kind, schema in UP_SCHEMAS.items()}
_DOWN = {kind: _compile(schema) for kind, schema in DOWN_SCHEMAS.items()}
_ARGS = {op: _compile(schema) for op, schema in ARGS_SCHEMAS.items()}


def _validate(msg: Any, schemas: dict[str, Compiled], direction: str) -> dict[str, Any]:
    if not isinstance(msg, dict):
        raise MalformedError(f"{direction} message is a {type(msg).__name__}, expected an object")
    kind = msg.get("t")
    if not isinstance(kind, str) or kind not in schemas:
        raise MalformedError(f"{direction} message type {kind!r} is not one of {sorted(schemas)}")
    fault = _fault(msg, schemas[kind])
    if fault is not None:
        raise MalformedError(f"{direction} {kind!r} message {fault}")
    return msg


def validate_up(msg: Any) -> dict[str, Any]:
    """Check one collector → cloud message; ``MalformedError`` names the field at fault."""
    return _validate(msg, _UP, "up")


def validate_down(msg: Any) -> dict[str, Any]:
    """Check one cloud → collector message, including a command's args and meter."""
    checked = _validate(msg, _DOWN, "down")
    if checked["t"] == "cmd":
        op = checked["op"]
        where = f"command {checked['id']!r} ({op})"
        need = OPS_METER[op]
        if need == "required" and checked["meter"] is None:
            raise MalformedError(f"{where} needs a meter")
        if need == "none" and checked["meter"] is not None:
            raise MalformedError(f"{where} is collector-wide; meter must be null")
        fault = _fault(checked["args"], _ARGS[op])
        if fault is not None:
            raise MalformedError(f"{where} args {fault}")
    return checked


def body(msgs: list[dict[str, Any]]) -> dict[str, Any]:
    """An envelope body batching ``msgs`` (``envelope.seal`` encodes it)."""
    return {"v": PROTOCOL, "m": list(msgs)}


# A sender that keeps messages encoded (the collector's outbox: one JSON text per row, numbered
# when it is batched) builds the same body bytes without decoding and encoding every message
# again: ``encoded_body([numbered(encode(m), i), ...])`` is, byte for byte,
# ``envelope.encode_body(body([{"id": i, **m}, ...]))`` (tests/codec/test_messages.py). This is
# the uplink's hot path (docs/benchmarks.md, catch-up).
_BODY_HEAD = f'{{"v":{PROTOCOL},"m":['
_BODY_TAIL = "]}"


def encode(msg: dict[str, Any]) -> str:
    """One message as an envelope body carries it: compact JSON, non-ASCII as is."""
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def numbered(encoded: str, id_: int) -> str:
    """An encoded message with ``id`` as its first field (a reading's or event's outbox id)."""
    return f'{{"id":{id_},{encoded[1:]}'


def encoded_body(encoded: Iterable[str]) -> bytes:
    """The body of messages already encoded by :func:`encode` / :func:`numbered`, ready for
    ``envelope.seal_encoded``."""
    return (_BODY_HEAD + ",".join(encoded) + _BODY_TAIL).encode()


def parse_body(body_: Any) -> list[Any]:
    """The message list of an opened envelope's body (each still to be validated one by one)."""
    if not isinstance(body_, dict):
        raise MalformedError("body is not an object")
    if body_.get("v") != PROTOCOL:
        raise MalformedError(f"body protocol version {body_.get('v')!r}; this side speaks 1")
    msgs = body_.get("m")
    if not isinstance(msgs, list):
        raise MalformedError("body field 'm' is not a list of messages")
    return msgs


# --- builders: each returns a validated message (UsageError if we built a bad one) -----------


def _built(msg: dict[str, Any], validate: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    try:
        return validate(msg)
    except MalformedError as exc:
        raise UsageError(f"cannot build this message: {exc}") from None


def hello(agent: str, config_hash: str, meters: list[dict[str, Any]]) -> dict[str, Any]:
    """``hello``: sent on every (re)connect."""
    msg: dict[str, Any] = {"t": "hello", "agent": agent, "config_hash": config_hash}
    msg.update(meters=meters, protocol=PROTOCOL)
    return _built(msg, validate_up)


def reading(**fields: Any) -> dict[str, Any]:
    """``reading``: the fields of the ``reading`` schema as keywords, ``id`` included."""
    return _built({"t": "reading", **fields}, validate_up)


def reading_unnumbered(**fields: Any) -> dict[str, Any]:
    """A ``reading`` without its ``id``: the outbox numbers it when it is queued."""
    msg = {"t": "reading", **fields}
    _built({**msg, "id": 1}, validate_up)
    return msg


def state(
    meter: str,
    state_: str,
    relay: str | None,
    mode: str,
    balance_micro_yuan: int,
    alarm: str | None,
    ts: int,
) -> dict[str, Any]:
    """``state``: the display state, relay or mode changed."""
    msg = {
        "t": "state",
        "meter": meter,
        "state": state_,
        "relay": relay,
        "mode": mode,
        "balance_micro_yuan": balance_micro_yuan,
        "alarm": alarm,
        "ts": ts,
    }
    return _built(msg, validate_up)


def event_unnumbered(meter: str | None, ts: int, kind: str, detail: Any) -> dict[str, Any]:
    """An ``event`` without its ``id``: the outbox numbers it when it is queued."""
    msg = {"t": "event", "meter": meter, "ts": ts, "kind": kind, "detail": detail}
    _built({**msg, "id": 1}, validate_up)
    return msg


def result(
    cmd: str | int,
    meter: str | None,
    op: str,
    status: str,
    reason: str | None,
    balance_micro_yuan: int | None,
    purchase_no: int | None = None,
    settled_balance_micro_yuan: int | None = None,
    original_status: str | None = None,
) -> dict[str, Any]:
    """``result``: a command's outcome (sent again, identical, for a repeated command id). A
    ``duplicate`` carries ``original_status`` when the collector knows it."""
    msg = {
        "t": "result",
        "cmd": cmd,
        "meter": meter,
        "op": op,
        "status": status,
        "reason": reason,
        "balance_micro_yuan": balance_micro_yuan,
        "purchase_no": purchase_no,
    }
    if settled_balance_micro_yuan is not None:
        msg["settled_balance_micro_yuan"] = settled_balance_micro_yuan
    if original_status is not None:
        msg["original_status"] = original_status
    return _built(msg, validate_up)


def need_purchase(meter: str, purchase_no: int) -> dict[str, Any]:
    """``need_purchase``: a credit arrived after a gap; ask for the missing number."""
    return _built({"t": "need_purchase", "meter": meter, "purchase_no": purchase_no}, validate_up)


def hb(ts: int, backlog: int, buses: dict[str, Any], uptime_s: int) -> dict[str, Any]:
    """``hb``: heartbeat with the outbox backlog and bus health."""
    msg = {"t": "hb", "ts": ts, "backlog": backlog, "buses": buses, "uptime_s": uptime_s}
    return _built(msg, validate_up)


def ack(seqs: list[int]) -> dict[str, Any]:
    """``ack``: the uplink sequence numbers the cloud has applied."""
    return _built({"t": "ack", "seqs": list(seqs)}, validate_down)


def cmd(id_: str | int, meter: str | None, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """``cmd``: a command for one meter (or the collector when ``meter`` is None)."""
    return _built({"t": "cmd", "id": id_, "meter": meter, "op": op, "args": args}, validate_down)
