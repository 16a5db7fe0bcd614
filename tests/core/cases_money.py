"""Exact money: charges with carry, exact integer splits. Plain cases (CPython + MicroPython)."""

from edge.core import money
from tests.core.casekit import raises


def test_charge_carries_the_sub_micro_yuan_remainder():
    # 333,333 micro-yuan/kWh, 1 Wh at a time: exactly 333.333 micro-yuan each.
    carry = 0
    amounts = []
    for _ in range(4):
        amount, carry = money.charge([{"wh": 1, "price": 333333}], carry)
        amounts.append(amount)
    # 333 (carry 333), 333 (666), 333 (999), then 333 + 999 = 1332 -> 334 (carry 332)
    assert amounts == [333, 333, 333, 334]
    assert carry == 332
    # sum of charges + carry/1000 is the exact product: 4 * 333333 = 1,333,332 -> 1333 and 332
    assert sum(amounts) * 1000 + carry == 4 * 333333


def test_charge_sums_pieces_before_dividing():
    pieces = [{"wh": 1, "price": 500}, {"wh": 1, "price": 500}]
    assert money.charge(pieces, 0) == (1, 0)


def test_split_by_weights_sums_exactly_and_favours_largest_remainder():
    # 7 Wh over 60 s and 40 s: 4.2 and 2.8 -> 4 and 2, the spare unit to the .8
    assert money.split_by_weights(7, [60, 40]) == [4, 3]
    assert money.split_by_weights(10, [1, 1, 1]) == [4, 3, 3]  # tie: earliest first
    assert money.split_by_weights(0, [5, 5]) == [0, 0]
    assert money.split_by_weights(5, [0, 0]) == [0, 5]
    parts = money.split_by_weights(10**15 + 7, [3, 7, 11, 13])
    assert sum(parts) == 10**15 + 7


def test_split_by_weights_refuses_negative_weights():
    exc = raises(ValueError, money.split_by_weights, 5, [1, -1])
    assert "weights must be >= 0" in str(exc)
