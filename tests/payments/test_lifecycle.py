"""The order lifecycle table: legal paths work, everything else raises, nothing leaves a final
state, and a paid order can never become unpaid again."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.payments import lifecycle as lc


def walk(*events: str, start: str = lc.CREATED) -> str:
    state = start
    for event in events:
        state = lc.next_state(state, event)
    return state


def test_the_happy_path_is_created_paid_crediting_credited() -> None:
    assert walk("pay", "credit", "applied") == lc.CREDITED


def test_a_failed_credit_is_retried_then_refunded_or_held() -> None:
    assert walk("pay", "credit", "failed", "retry", "applied") == lc.CREDITED
    assert walk("pay", "credit", "failed", "refund", "refunded") == lc.REFUNDED
    assert walk("pay", "credit", "failed", "hold") == lc.HELD
    assert walk("pay", "credit", "failed", "hold", "retry", "applied") == lc.CREDITED


def test_a_late_payment_for_a_closed_order_still_counts() -> None:
    assert walk("close", "pay", "credit", "applied") == lc.CREDITED


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (lc.CREATED, "credit"),
        (lc.CREDITED, "pay"),
        (lc.PAID, "pay"),
        (lc.REFUNDED, "retry"),
        (lc.CREDITING, "refund"),
    ],
)
def test_illegal_transitions_raise_409(state: str, event: str) -> None:
    with pytest.raises(lc.IllegalTransitionError) as caught:
        lc.next_state(state, event)
    assert caught.value.status == 409


@given(st.lists(st.sampled_from(lc.EVENTS), max_size=12))
def test_any_event_sequence_moves_legally_or_raises_and_paid_stays_paid(events: list[str]) -> None:
    state, was_paid = lc.CREATED, False
    for event in events:
        try:
            new = lc.next_state(state, event)
        except lc.IllegalTransitionError:
            continue
        assert state not in lc.FINAL
        assert new in lc.STATES
        state = new
        was_paid = was_paid or lc.is_paid(state)
        assert lc.is_paid(state) or not was_paid
