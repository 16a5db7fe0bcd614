"""Yuan text ↔ fen ↔ micro-yuan, exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.errors import InvalidError
from cloud.payments.amounts import (
    fen_from_int,
    fen_from_micro_yuan,
    fen_from_yuan_text,
    micro_yuan_from_fen,
    yuan_text,
)


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("12.30", 1230),
        ("12.3", 1230),
        ("12", 1200),
        ("0.01", 1),
        ("0", 0),
        ("0.10", 10),
        ("100000.99", 10000099),
    ],
)
def test_yuan_text_is_parsed_to_exact_fen(text: str, fen: int) -> None:
    assert fen_from_yuan_text(text) == fen


@pytest.mark.parametrize(
    "text",
    [
        "12.305",
        "-1.00",
        "1e3",
        " 12.30",
        "12.30 ",
        "12.",
        ".5",
        "012.30",
        "12,30",
        "",
        "NaN",
        "１２.30",
        "+1",
    ],
)
def test_anything_but_plain_two_place_yuan_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidError) as caught:
        fen_from_yuan_text(text, "total_amount")
    assert caught.value.field == "total_amount"
    assert caught.value.status == 422


def test_a_float_is_never_accepted_as_yuan() -> None:
    with pytest.raises(InvalidError):
        fen_from_yuan_text(12.3)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**13))
def test_fen_round_trips_through_yuan_text(fen: int) -> None:
    assert fen_from_yuan_text(yuan_text(fen)) == fen


def test_yuan_text_prints_two_places() -> None:
    assert yuan_text(1230) == "12.30"
    assert yuan_text(5) == "0.05"
    assert yuan_text(-1230) == "-12.30"


def test_wechat_fen_must_be_a_non_negative_int() -> None:
    assert fen_from_int(1230) == 1230
    for bad in (12.3, True, "1230", -1, None):
        with pytest.raises(InvalidError):
            fen_from_int(bad)


def test_micro_yuan_and_fen() -> None:
    assert micro_yuan_from_fen(1230) == 12_300_000
    assert fen_from_micro_yuan(50_000_000) == 5000
    with pytest.raises(InvalidError, match="whole number of fen"):
        fen_from_micro_yuan(50_000_001)
