"""Sync messages: builders make valid messages; validators refuse bad ones by field name."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.codec import envelope, messages, readings
from shared.codec.errors import MalformedError, UsageError

READING = {
    "meter": "m-001",
    "ts": 1767225600,
    "energy_wh": 1234560,
    "power_w": 5230,
    "relay": "closed",
    "band_energy_wh": None,
    "voltages_dv": [2201, 2198, 2203],
    "currents_ma": None,
    "charge_micro_yuan": 1500,
    "balance_micro_yuan": -20,
    "credits_micro_yuan": 10_000_000,
    "refunds_micro_yuan": 0,
    "charges_micro_yuan": 10_000_020,
}


def test_every_up_builder_makes_a_message_its_validator_accepts() -> None:
    built = [
        messages.hello("0.1.0", "abc", [{"id": "m1", "model": "acrel", "bus": "b1", "address": 1}]),
        messages.reading(id=7, **READING),
        {**messages.reading_unnumbered(**READING), "id": 8},
        messages.state("m1", "alarm1", "closed", "prepaid", 900, "alarm1", 1767225600),
        {**messages.event_unnumbered("m1", 1767225600, "trip", {"reason": "credit"}), "id": 9},
        messages.result("c-1", "m1", "credit", "applied", None, 5_000_000, purchase_no=3),
        messages.need_purchase("m1", 4),
        messages.hb(1767225600, 12, {"b1": {"polls": 3}}, 60),
    ]
    for msg in built:
        assert messages.validate_up(msg) is msg


def test_down_builders_make_valid_commands_and_acks() -> None:
    assert messages.ack([1, 2, 3]) == {"t": "ack", "seqs": [1, 2, 3]}
    c = messages.cmd("c-9", "m1", "credit", {"purchase_no": 1, "amount_micro_yuan": 10})
    assert messages.validate_down(c) is c
    assert messages.validate_down(messages.cmd(5, None, "time", {"utc": 1767225600}))["id"] == 5


@pytest.mark.parametrize(
    ("msg", "needle"),
    [
        (
            {"t": "cmd", "id": "c", "meter": "m", "op": "credit", "args": {"purchase_no": 1}},
            "amount_micro_yuan",
        ),
        (
            {
                "t": "cmd",
                "id": "c",
                "meter": "m",
                "op": "credit",
                "args": {"purchase_no": 1, "amount_micro_yuan": -5},
            },
            "amount_micro_yuan",
        ),
        (
            {
                "t": "cmd",
                "id": "c",
                "meter": "m",
                "op": "credit",
                "args": {"purchase_no": True, "amount_micro_yuan": 5},
            },
            "purchase_no",
        ),
        (
            {
                "t": "cmd",
                "id": "c",
                "meter": None,
                "op": "refund",
                "args": {"amount_micro_yuan": 5},
            },
            "needs a meter",
        ),
        ({"t": "cmd", "id": "c", "meter": "m", "op": "time", "args": {"utc": 1}}, "collector-wide"),
        ({"t": "cmd", "id": "c", "meter": "m", "op": "explode", "args": {}}, "op"),
        ({"t": "cmd", "id": "", "meter": "m", "op": "read_now", "args": {}}, "'id'"),
        ({"t": "cmd", "id": "c", "meter": "m", "op": "mode", "args": {"mode": "free"}}, "mode"),
        ({"t": "cmd", "id": "c", "meter": "m", "op": "read_now"}, "lacks field 'args'"),
        ({"t": "ack", "seqs": [1, 0]}, "seqs"),
        ({"t": "ack", "seqs": "1"}, "seqs"),
        ({"t": "nope"}, "type 'nope'"),
        ({"seqs": []}, "type None"),
        ([1], "expected an object"),
    ],
)
def test_bad_down_messages_are_refused_naming_the_fault(msg: object, needle: str) -> None:
    with pytest.raises(MalformedError, match=needle):
        messages.validate_down(msg)


def test_bad_up_message_is_refused_naming_the_field() -> None:
    with pytest.raises(MalformedError, match="'charge_micro_yuan'"):
        messages.validate_up({"t": "reading", "id": 1, **READING, "charge_micro_yuan": -1})
    with pytest.raises(MalformedError, match="lacks field 'meter'"):
        messages.validate_up({"t": "need_purchase", "purchase_no": 2})


def test_builder_refuses_to_build_a_bad_message() -> None:
    with pytest.raises(UsageError, match="relay"):
        messages.state("m1", "opened", "ajar", "prepaid", 0, None, 0)


def test_extra_fields_are_allowed_for_forward_compatibility() -> None:
    msg = {"t": "ack", "seqs": [3], "future": True}
    assert messages.validate_down(msg) is msg


def test_body_wraps_and_unwraps_a_batch() -> None:
    batch = [messages.ack([1]), messages.ack([2])]
    assert messages.parse_body(messages.body(batch)) == batch
    for bad in ({"v": 2, "m": []}, {"v": 1, "m": {}}, {"m": []}, [1]):
        with pytest.raises(MalformedError):
            messages.parse_body(bad)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(["t", "id", "meter", "op", "args", "seqs", "cmd", "ack"])
                | st.text(),
                children,
                max_size=5,
            )
        ),
        max_leaves=12,
    )
)
def test_any_json_value_validates_or_raises_malformed(value: object) -> None:
    for validate in (messages.validate_down, messages.validate_up):
        try:
            validate(value)
        except MalformedError:
            pass


def test_event_kind_is_any_snake_case_name_so_new_engine_kinds_pass() -> None:
    ok = {"t": "event", "id": 1, "meter": None, "ts": 0, "kind": "unrated", "detail": None}
    assert messages.validate_up(ok) is ok
    assert messages.validate_up({**ok, "kind": "future_kind_2"})
    for bad in ("Trip!", "", "a b", 5):
        with pytest.raises(MalformedError, match="'kind'"):
            messages.validate_up({**ok, "kind": bad})


def test_integers_beyond_64_bits_are_refused_in_both_directions() -> None:
    # Every integer on the wire lands in a 64-bit column (SQLite INTEGER, PostgreSQL BIGINT) or
    # a store row; a bigger one would fail there after the message had been taken as valid.
    largest = 2**63 - 1
    ok = {"t": "reading", "id": 1, **READING, "energy_wh": largest}
    assert messages.validate_up(ok) is ok
    with pytest.raises(MalformedError, match="'energy_wh'"):
        messages.validate_up({**ok, "energy_wh": 2**63})
    with pytest.raises(MalformedError, match="'balance_micro_yuan'"):
        messages.validate_up({**ok, "balance_micro_yuan": -(2**63) - 1})
    with pytest.raises(MalformedError, match="'amount_micro_yuan'"):
        messages.validate_down(
            {
                "t": "cmd",
                "id": 1,
                "meter": "m1",
                "op": "credit",
                "args": {"purchase_no": 1, "amount_micro_yuan": 2**63},
            }
        )
    with pytest.raises(MalformedError, match="'seqs'"):
        messages.validate_down({"t": "ack", "seqs": [2**64]})


def test_text_with_a_nul_character_is_refused() -> None:
    # PostgreSQL text columns cannot hold NUL; such a field would fail the INSERT, not the check.
    ok = {"t": "reading", "id": 1, **READING}
    with pytest.raises(MalformedError, match="'meter'"):
        messages.validate_up({**ok, "meter": "m\x001"})
    with pytest.raises(MalformedError, match="'reason'"):
        messages.validate_up(
            {
                "t": "result",
                "cmd": 1,
                "meter": "m1",
                "op": "refund",
                "status": "rejected",
                "reason": "no\x00",
                "balance_micro_yuan": 0,
            }
        )


_JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20)
)
_MESSAGE = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda k: k != "id"),
    st.recursive(
        _JSON_SCALARS,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=6,
    ),
    max_size=6,
).map(lambda fields: {"t": "event", **fields})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_MESSAGE, st.integers(1, 2**63 - 1)), max_size=8))
def test_an_encoded_body_is_byte_for_byte_the_body_encoded(batch: list[tuple[dict, int]]) -> None:
    # The collector's outbox keeps each message encoded and numbers it when it is batched; the
    # envelope it seals must carry exactly what encoding the body of those messages would.
    stored = [(messages.encode(msg), id_) for msg, id_ in batch]
    fast = messages.encoded_body(messages.numbered(text, id_) for text, id_ in stored)
    slow = envelope.encode_body(messages.body([{"id": id_, **msg} for msg, id_ in batch]))
    assert fast == slow
    assert messages.parse_body(envelope.decode_body(fast)) == [
        {"id": id_, **msg} for msg, id_ in batch
    ]


def test_the_reading_message_checks_exactly_the_fields_of_the_one_reading_definition() -> None:
    assert ["t", *messages.UP_SCHEMAS["reading"]] == list(readings.MESSAGE)
    assert set(readings.REPORTED) <= set(readings.MEASUREMENT)
    assert set(readings.MESSAGE) == {"t", "id", "meter", *readings.REPORTED, *readings.MONEY}
    measurement = readings.empty(5)
    assert set(measurement) == set(readings.MEASUREMENT)
    assert measurement["ts"] == 5


# The integer checkers test a plain int inline and anything else the long way; these are what
# they took before that fast path, to hold them to it.
class _Int(int):
    """An int subclass (not bool): an integer to the checkers."""


_WIDE = 2**63


def _was_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -_WIDE <= v <= _WIDE - 1


_WAS: dict[str, Any] = {
    "_int": _was_int,
    "_nat": lambda v: _was_int(v) and v >= 0,
    "_pos": lambda v: _was_int(v) and v >= 1,
}
_ODD: list[object] = [
    True,
    False,
    None,
    1.0,
    "1",
    [],
    {},
    _Int(0),
    _Int(1),
    _Int(-1),
    _Int(_WIDE),
    _Int(-_WIDE),
]
_EDGES = [0, 1, -1, 2, _WIDE - 1, _WIDE, -_WIDE, -_WIDE - 1, 2**64]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.sampled_from(_ODD + _EDGES), st.integers(), st.integers().map(_Int)))
def test_the_integer_checkers_take_exactly_what_they_took_before_their_fast_path(v: object) -> None:
    for name, was in _WAS.items():
        assert bool(getattr(messages, name)(v)) == was(v), (name, v)
    for least_name, was in _WAS.items():
        check = messages._list_of(getattr(messages, least_name), 3)
        for items in ([v], [1, v], [v, 1], [1, 2, v], [1, 2, 3, v]):
            want = len(items) <= 3 and all(was(x) for x in items)
            assert bool(check(items)) == want, (least_name, items)
    for bands in ({"a": v}, {"a": 1, "b": v}, {"a": v, 5: 1}, {5: v}):
        want = all(isinstance(k, str) and _WAS["_nat"](x) for k, x in bands.items())
        assert bool(messages._band_energy(bands)) == want, bands


def test_a_bool_or_a_float_is_not_an_integer_and_an_int_subclass_is() -> None:
    ok = {"t": "reading", "id": 1, **READING}
    subclassed = {**ok, "id": _Int(3), "energy_wh": _Int(5), "voltages_dv": [_Int(2200), 1, 2]}
    assert messages.validate_up(subclassed) is subclassed
    cases = [
        ("energy_wh", True, "integer Wh"),
        ("id", True, "a positive integer"),
        ("id", _Int(0), "a positive integer"),
        ("balance_micro_yuan", False, "integer micro-yuan"),
        ("power_w", 1.0, "integer W or null"),
        ("power_w", _Int(_WIDE), "integer W or null"),
        ("voltages_dv", [2200, True, 1], "a list of integer 0.1 V or null"),
        ("currents_ma", [1, 2, _WIDE], "a list of integer mA or null"),
        ("currents_ma", [1, 2, 3, 4], "a list of integer mA or null"),
        ("band_energy_wh", {"peak": True}, "{band: Wh} or null"),
        ("band_energy_wh", {"peak": -1}, "{band: Wh} or null"),
    ]
    for name, value, expected in cases:
        with pytest.raises(MalformedError) as raised:
            messages.validate_up({**ok, name: value})
        assert str(raised.value) == (
            f"up 'reading' message field {name!r} is {value!r}; expected {expected}"
        )
    del ok["energy_wh"]
    with pytest.raises(MalformedError) as raised:
        messages.validate_up(ok)
    assert str(raised.value) == "up 'reading' message lacks field 'energy_wh' (integer Wh)"
    for power in (None, 0, -5, _Int(7)):
        assert messages.validate_up({**ok, "energy_wh": 1, "power_w": power})
    with pytest.raises(MalformedError) as raised:
        messages.validate_down(
            {"t": "cmd", "id": 1, "meter": "m1", "op": "credit", "args": {"purchase_no": True}}
        )
    assert str(raised.value) == (
        "command 1 (credit) args field 'purchase_no' is True; expected a positive integer"
    )
