"""The amount in Chinese capitals (大写) as receipts print it, table-tested against the bill rules
(零 inside the number, 整 after 元 only, 角/分, 万 and 亿 groups, half-up rounding to the fen)
and against the outputs the brief recorded from cn2an 0.5.24."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.money.capitals import DIGITS, capitals, to_fen

Y = 1_000_000  # micro-yuan per yuan
FEN = 10_000

CASES = [
    # (micro-yuan, capitals)
    (0, "人民币零元整"),
    (1 * FEN, "人民币壹分"),
    (5 * FEN, "人民币伍分"),
    (50 * FEN, "人民币伍角"),
    (35 * FEN, "人民币叁角伍分"),  # cn2an: 叁角伍分
    (1 * Y, "人民币壹元整"),
    (10 * Y, "人民币壹拾元整"),  # never a bare 拾
    (15 * Y, "人民币壹拾伍元整"),
    (100 * Y, "人民币壹佰元整"),  # cn2an: 壹佰元整
    (100 * Y + 50 * FEN, "人民币壹佰元伍角"),  # cn2an: 壹佰元伍角 (no 整 after 角)
    (100 * Y + 5 * FEN, "人民币壹佰元零伍分"),  # 零 between 元 and 分
    (10 * Y + 5 * FEN, "人民币壹拾元零伍分"),
    (1005 * Y + 7 * FEN, "人民币壹仟零伍元零柒分"),  # cn2an, and the rules' own example
    (1010 * Y, "人民币壹仟零壹拾元整"),  # cn2an
    (1000 * Y + 50 * FEN, "人民币壹仟元伍角"),  # no 零 between 元 and 角
    (1100 * Y + 10 * FEN, "人民币壹仟壹佰元壹角"),
    (325 * Y + 4 * FEN, "人民币叁佰贰拾伍元零肆分"),
    (16409 * Y + 2 * FEN, "人民币壹万陆仟肆佰零玖元零贰分"),
    (10_000 * Y, "人民币壹万元整"),
    (10_001 * Y, "人民币壹万零壹元整"),
    (10_010 * Y, "人民币壹万零壹拾元整"),
    (11_000 * Y, "人民币壹万壹仟元整"),
    (30_000 * Y, "人民币叁万元整"),
    (100_100 * Y, "人民币壹拾万零壹佰元整"),
    (120_000 * Y, "人民币壹拾贰万元整"),  # cn2an
    (1_000_000 * Y, "人民币壹佰万元整"),
    (1_000_000 * Y + 1 * FEN, "人民币壹佰万元零壹分"),
    (100_000_000 * Y, "人民币壹亿元整"),
    (100_010_000 * Y, "人民币壹亿零壹万元整"),
    (100_000_001 * Y, "人民币壹亿零壹元整"),
    (123_456_789 * Y + 12 * FEN, "人民币壹亿贰仟叁佰肆拾伍万陆仟柒佰捌拾玖元壹角贰分"),
    # rounding half up to the fen
    (5_000, "人民币壹分"),
    (4_999, "人民币零元整"),
    (99 * Y + 995_000, "人民币壹佰元整"),
]


@pytest.mark.parametrize(("micro", "text"), CASES)
def test_amount_in_capitals_follows_the_bill_rules(micro: int, text: str) -> None:
    assert capitals(micro) == text


def test_a_refund_is_printed_as_its_positive_amount_and_a_negative_one_is_refused() -> None:
    refund = 50 * Y
    assert capitals(refund) == "人民币伍拾元整"
    with pytest.raises(ValueError, match="never negative"):
        capitals(-refund)


def test_the_prefix_can_be_left_out() -> None:
    assert capitals(200 * Y, prefix="") == "贰佰元整"


def _read_back(text: str) -> int:
    """Parse capitals back to fen (an independent reading, for the property below)."""
    text = text.removeprefix("人民币").replace("万亿", "兆")  # 兆: the 万亿 group (10^12)
    if text == "零元整":
        return 0
    digits = {c: i for i, c in enumerate(DIGITS)}
    small = {"拾": 10, "佰": 100, "仟": 1000}
    total, section, number = 0, 0, 0
    fen = 0
    for ch in text:
        if ch in digits:
            number = digits[ch]
        elif ch in small:
            section += number * small[ch]
            number = 0
        elif ch in "兆亿万":
            total += (section + number) * {"兆": 10**12, "亿": 10**8, "万": 10**4}[ch]
            section = number = 0
        elif ch == "元":
            total += section + number
            section = number = 0
            fen = total * 100
        elif ch == "角":
            fen += number * 10
            number = 0
        elif ch == "分":
            fen += number
            number = 0
    return fen


@given(st.integers(min_value=0, max_value=10**19))
def test_capitals_read_back_to_the_amount_in_fen(micro: int) -> None:
    text = capitals(micro)
    assert _read_back(text) == to_fen(micro)
    assert text.endswith("整") == (to_fen(micro) % 100 == 0)
    assert "零零" not in text
