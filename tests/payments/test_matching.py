"""Reconciliation matching: a test plants each kind of mismatch and checks it is found, and
nothing else."""

from __future__ import annotations

from cloud.payments import lifecycle as lc
from cloud.payments.matching import KINDS, LocalOrder, match
from cloud.payments.provider import BillRow

NOW = 1_772_400_000.0
HOUR = 3600.0


def pay(no: str, fen: int) -> BillRow:
    return BillRow("alipay", no, "T" + no, "payment", fen, "2026-03-01 12:00:00")


def order(no: str, fen: int, state: str = lc.CREDITED, **kw: object) -> LocalOrder:
    return LocalOrder(no, "alipay", fen, state, NOW - 10 * HOUR, **kw)  # type: ignore[arg-type]


def test_a_clean_day_has_no_cases() -> None:
    bill = [
        pay("A", 5000),
        pay("B", 2000),
        BillRow("alipay", "B", "TB", "refund", 500, "2026-03-01 13:00:00", "B-R1"),
    ]
    orders = [
        order("A", 5000, purchase_applied=True),
        order("B", 2000, lc.REFUNDED, refunded_fen=500),
    ]
    assert match(bill, orders, now_s=NOW) == []


def test_each_planted_mismatch_is_found_and_nothing_else() -> None:
    bill = [
        pay("OK", 5000),
        pay("LOST", 3000),  # provider-only: the notification never came
        pay("AMOUNT", 1000),  # the order says 1200
        pay("REFUND", 4000),
        BillRow("alipay", "REFUND", "TR", "refund", 900, "2026-03-01 14:00:00", "R1"),  # ours: 1000
        pay("STUCK", 2000),
        pay("UNAPPLIED", 700),
    ]
    orders = [
        order("OK", 5000, purchase_applied=True),
        order("LOST", 3000, lc.CREATED),
        order("AMOUNT", 1200),
        order("REFUND", 4000, lc.REFUNDED, refunded_fen=1000),
        order("LOCAL", 800),  # local-only: not on the bill
        order("STUCK", 2000, lc.CREDIT_FAILED),
        order("UNAPPLIED", 700, purchase_applied=False),
        order("YESTERDAY", 600, lc.CREDITED, on_bill_day=False),  # not this bill's business
        order("UNPAID", 100, lc.CLOSED),
    ]
    found = {(c.kind, c.out_trade_no) for c in match(bill, orders, now_s=NOW)}
    assert found == {
        ("provider_only", "LOST"),
        ("amount_differs", "AMOUNT"),
        ("refund_differs", "REFUND"),
        ("local_only", "LOCAL"),
        ("not_credited", "STUCK"),
        ("not_applied", "UNAPPLIED"),
    }
    assert {kind for kind, _ in found} == set(KINDS)


def test_a_provider_only_trade_we_have_no_order_for_at_all_is_found() -> None:
    cases = match([pay("GHOST", 100)], [], now_s=NOW)
    assert [(c.kind, c.bill_amount_fen, c.local_amount_fen) for c in cases] == [
        ("provider_only", 100, None)
    ]


def test_not_credited_waits_for_the_threshold() -> None:
    fresh = LocalOrder("F", "alipay", 100, lc.CREDITING, NOW - 60)
    assert match([pay("F", 100)], [fresh], now_s=NOW, stale_after_s=30 * 60) == []
    assert [c.kind for c in match([pay("F", 100)], [fresh], now_s=NOW, stale_after_s=30)] == [
        "not_credited"
    ]


def test_our_refund_missing_from_the_bill_is_a_refund_case() -> None:
    cases = match([pay("R", 100)], [order("R", 100, lc.REFUNDED, refunded_fen=100)], now_s=NOW)
    assert [(c.kind, c.bill_amount_fen, c.local_amount_fen) for c in cases] == [
        ("refund_differs", 0, 100)
    ]
