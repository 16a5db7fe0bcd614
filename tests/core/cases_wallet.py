"""Wallet: purchase numbers, held gaps, duplicates, refunds, reversals, caps, settlement.
Plain cases (CPython + MicroPython). Every case checks the ledger identity."""

from edge.core import engine, wallet
from edge.core.errors import EventError, TransitionError
from tests.core.casekit import T0, check_ledger, ctx_with, of_type, opened, raises, run


def _credit(n, amount):
    return {"type": "credit", "purchase_no": n, "amount_micro_yuan": amount}


def _results(actions):
    return [
        (a["op"], a["status"], a["purchase_no"], a["balance_micro_yuan"])
        for a in of_type(actions, "result")
    ]


def test_credit_in_sequence_is_applied_with_a_ledger_entry():
    ctx = ctx_with()
    state = opened(ctx)
    actions = run(state, ctx, [_credit(1, 5_000_000)], T0)
    assert of_type(actions, "ledger") == [
        {"type": "ledger", "kind": "credit", "amount_micro_yuan": 5_000_000, "purchase_no": 1}
    ]
    assert _results(actions) == [("credit", "applied", 1, 5_000_000)]
    assert state["last_purchase_no"] == 1
    check_ledger(state)


def test_credit_with_gap_is_held_until_missing_one_arrives():
    ctx = ctx_with()
    state = opened(ctx)
    actions = run(state, ctx, [_credit(3, 300)], T0)
    assert _results(actions) == [("credit", "held", 3, 0)]
    assert [a["purchase_no"] for a in of_type(actions, "request_purchase")] == [1, 2]
    actions = run(state, ctx, [_credit(2, 200)], T0)
    assert _results(actions) == [("credit", "held", 2, 0)]
    assert [a["purchase_no"] for a in of_type(actions, "request_purchase")] == [1]
    assert state["balance_micro_yuan"] == 0
    actions = run(state, ctx, [_credit(1, 100)], T0)
    # the gap filled: 1, then the held 2 and 3, in number order
    assert [(a["purchase_no"], a["amount_micro_yuan"]) for a in of_type(actions, "ledger")] == [
        (1, 100),
        (2, 200),
        (3, 300),
    ]
    assert _results(actions) == [
        ("credit", "applied", 1, 100),
        ("credit", "applied", 2, 300),
        ("credit", "applied", 3, 600),
    ]
    assert state["held"] == []
    assert state["last_purchase_no"] == 3
    check_ledger(state)


def test_duplicate_credit_returns_the_original_result_and_changes_nothing():
    ctx = ctx_with()
    state = opened(ctx)
    run(state, ctx, [_credit(1, 1_000), _credit(2, 2_000)], T0)
    actions = run(state, ctx, [_credit(1, 1_000)], T0)
    result = of_type(actions, "result")[0]
    assert result["status"] == "duplicate"
    assert result["balance_micro_yuan"] == 1_000  # the balance right after purchase 1
    assert "already applied" in result["reason"]
    assert result["original_status"] == "applied"  # the cloud settles the sale by it
    assert of_type(actions, "ledger") == []
    assert state["balance_micro_yuan"] == 3_000
    check_ledger(state)


def test_duplicate_of_a_rejected_credit_says_it_was_rejected():
    ctx = ctx_with(defaults={"tariff_id": "tou", "hoarding_cap_micro_yuan": 1_000})
    state = opened(ctx)
    run(state, ctx, [_credit(1, 5_000)], T0)  # over the cap: rejected, number used up
    result = of_type(run(state, ctx, [_credit(1, 5_000)], T0), "result")[0]
    assert result["status"] == "duplicate"
    assert result["original_status"] == "rejected"
    assert state["balance_micro_yuan"] == 0
    check_ledger(state)


def test_hoarding_cap_rejects_a_credit_but_uses_up_its_number():
    ctx = ctx_with(defaults={"tariff_id": "tou", "hoarding_cap_micro_yuan": 10_000})
    state = opened(ctx)
    actions = run(state, ctx, [_credit(1, 8_000), _credit(2, 5_000), _credit(3, 2_000)], T0)
    assert _results(actions) == [
        ("credit", "applied", 1, 8_000),
        ("credit", "rejected", 2, 8_000),
        ("credit", "applied", 3, 10_000),  # exactly at the cap is allowed
    ]
    assert "hoarding cap" in of_type(actions, "result")[1]["reason"]
    dup = of_type(run(state, ctx, [_credit(2, 5_000)], T0), "result")[0]
    assert dup["status"] == "duplicate"
    assert "rejected" in dup["reason"]
    check_ledger(state)


def test_refund_only_while_the_balance_stays_non_negative():
    ctx = ctx_with()
    state = opened(ctx, 5_000)
    actions = run(state, ctx, [{"type": "refund", "amount_micro_yuan": 6_000}], T0)
    result = of_type(actions, "result")[0]
    assert result["status"] == "rejected"
    assert "negative" in result["reason"]
    actions = run(state, ctx, [{"type": "refund", "amount_micro_yuan": 5_000}], T0)
    assert _results(actions) == [("refund", "applied", None, 0)]
    assert state["refunds_micro_yuan"] == 5_000
    check_ledger(state)


def test_reversal_of_a_named_purchase():
    ctx = ctx_with()
    state = opened(ctx)
    run(state, ctx, [_credit(1, 1_000), _credit(2, 2_000)], T0)
    actions = run(state, ctx, [{"type": "reversal", "purchase_no": 2}], T0)
    assert of_type(actions, "ledger")[0]["kind"] == "reversal"
    assert _results(actions) == [("reversal", "applied", 2, 1_000)]
    again = of_type(run(state, ctx, [{"type": "reversal", "purchase_no": 2}], T0), "result")[0]
    assert again["status"] == "duplicate"
    unknown = of_type(run(state, ctx, [{"type": "reversal", "purchase_no": 9}], T0), "result")[0]
    assert unknown["status"] == "rejected"
    assert "not been applied" in unknown["reason"]
    assert state["balance_micro_yuan"] == 1_000
    check_ledger(state)


def test_reversal_that_would_go_negative_is_rejected_with_the_reason():
    ctx = ctx_with()
    state = opened(ctx)
    run(state, ctx, [_credit(1, 1_000), {"type": "refund", "amount_micro_yuan": 500}], T0)
    result = of_type(run(state, ctx, [{"type": "reversal", "purchase_no": 1}], T0), "result")[0]
    assert result["status"] == "rejected"
    assert "negative" in result["reason"]
    check_ledger(state)


def test_transfer_in_is_an_opening_balance():
    ctx = ctx_with(defaults={"tariff_id": "tou", "hoarding_cap_micro_yuan": 10})
    state = opened(ctx)
    actions = run(state, ctx, [{"type": "transfer_in", "amount_micro_yuan": 7_000_000}], T0)
    assert of_type(actions, "ledger")[0]["kind"] == "transfer_in"
    assert state["balance_micro_yuan"] == 7_000_000 == state["credits_micro_yuan"]
    check_ledger(state)


def test_close_account_settles_a_positive_balance_as_a_refund():
    ctx = ctx_with()
    state = opened(ctx, 3_000)
    actions = run(state, ctx, [{"type": "close_account"}], T0)
    assert of_type(actions, "ledger") == [
        {
            "type": "ledger",
            "kind": "settlement_refund",
            "amount_micro_yuan": 3_000,
            "purchase_no": None,
        }
    ]
    assert state["balance_micro_yuan"] == 0
    assert state["account"] == "closed"
    assert ("trip", "closed_account") in [(a["op"], a["reason"]) for a in of_type(actions, "relay")]
    check_ledger(state)


def test_close_account_writes_a_debt_off_as_a_settlement_credit():
    ctx = ctx_with()
    state = opened(ctx, 0, {"overdraft_floor_micro_yuan": -1_000_000})
    state["balance_micro_yuan"] = -400
    state["charges_micro_yuan"] = 400
    actions = run(state, ctx, [{"type": "close_account"}], T0)
    assert of_type(actions, "ledger")[0]["kind"] == "settlement_credit"
    assert of_type(actions, "ledger")[0]["amount_micro_yuan"] == 400
    assert state["balance_micro_yuan"] == 0
    check_ledger(state)


def test_credits_on_a_closed_or_unopened_account_are_rejected():
    ctx = ctx_with()
    state = engine.new_state("m1")
    result = of_type(run(state, ctx, [_credit(1, 100)], T0), "result")[0]
    assert result["status"] == "rejected"
    assert "not opened" in result["reason"]
    run(state, ctx, [{"type": "open_account"}, {"type": "close_account"}], T0)
    result = of_type(run(state, ctx, [_credit(2, 100)], T0), "result")[0]
    assert result["status"] == "rejected"
    assert "closed" in result["reason"]


def test_account_transitions_follow_the_table():
    ctx = ctx_with()
    state = engine.new_state("m1")
    assert "cannot close account" in str(
        raises(TransitionError, engine.step, state, {"type": "close_account"}, T0, ctx)
    )
    run(state, ctx, [{"type": "open_account"}], T0)
    assert "account is opened" in str(
        raises(TransitionError, engine.step, state, {"type": "open_account"}, T0, ctx)
    )
    run(state, ctx, [{"type": "close_account"}, {"type": "open_account"}], T0)
    assert state["account"] == "opened"


def test_malformed_wallet_events_raise_and_change_nothing():
    ctx = ctx_with()
    state = opened(ctx, 1_000)
    before = repr(state)
    assert "amount_micro_yuan" in str(
        raises(EventError, engine.step, state, _credit(2, "10"), T0, ctx)
    )
    assert ">= 1" in str(raises(EventError, engine.step, state, _credit(2, 0), T0, ctx))
    assert "purchase_no" in str(raises(EventError, engine.step, state, _credit(True, 5), T0, ctx))
    assert repr(state) == before


def test_purchase_history_is_bounded():
    ctx = ctx_with()
    state = opened(ctx)
    for n in range(1, wallet.PURCHASE_HISTORY + 11):
        run(state, ctx, [_credit(n, 1)], T0)
    assert len(state["purchases"]) == wallet.PURCHASE_HISTORY
    old = of_type(run(state, ctx, [_credit(1, 1)], T0), "result")[0]
    assert old["status"] == "duplicate"
    assert "older than" in old["reason"]
    check_ledger(state)


def test_a_credit_too_far_ahead_is_rejected_without_using_a_number():
    ctx = ctx_with()
    state = opened(ctx)
    result = of_type(run(state, ctx, [_credit(wallet.MAX_GAP + 2, 5)], T0), "result")[0]
    assert result["status"] == "rejected"
    assert "too far ahead" in result["reason"]
    assert state["held"] == []
    assert state["last_purchase_no"] == 0
