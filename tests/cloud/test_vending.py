"""Selling, refunding and reversing: idempotency keys, the hoarding cap, purchase numbers, and
the two-phase rule — money goes back only when the edge confirms."""

from __future__ import annotations

import pytest

from cloud.audit import Actor
from cloud.control import dispatch
from cloud.errors import ConflictError, IdempotencyConflict, InvalidError, NotFoundError, RuleError
from cloud.models import AuditEntry, Command, Meter, Refund, Reversal, Sale
from cloud.money import accounts, ledger, receipts, refunds, reversals, sales
from cloud.money.records import sale_to_dict
from cloud.park import inventory
from tests.cloud.support import ACTOR, T0, FakeEdge, send, sync

Y = 1_000_000


@pytest.fixture
def opened(db, park):
    with db.session() as s:
        accounts.open_account(s, {"name": "Tenant"}, ["m-101", "m-102"], ACTOR, now=T0)
    edges = {"gw-1": FakeEdge("gw-1")}
    sync(db, edges)
    return edges


def test_same_idempotency_key_and_body_returns_the_same_sale(db, opened):
    with db.session() as s:
        first, created = sales.sell(s, "m-101", 10 * Y, "cash", ACTOR, idempotency_key="k-1")
        assert created
    with db.session() as s:
        again, created = sales.sell(s, "m-101", 10 * Y, "cash", ACTOR, idempotency_key="k-1")
        assert not created
        assert again.id == first.id
        assert again.receipt_no == first.receipt_no
        assert s.query(Sale).count() == 1
        assert s.query(Command).filter(Command.op == "credit").count() == 1
    with db.session() as s:
        # The replay used up no purchase number.
        assert sales.sell(s, "m-101", Y, "cash", ACTOR, idempotency_key="k-2")[0].purchase_no == 2


def test_same_idempotency_key_with_another_body_is_a_conflict_and_sells_nothing(db, opened):
    with db.session() as s:
        sales.sell(s, "m-101", 10 * Y, "cash", ACTOR, idempotency_key="k-1")
    for meter, amount, method in (
        ("m-101", 11 * Y, "cash"),
        ("m-102", 10 * Y, "cash"),
        ("m-101", 10 * Y, "alipay"),
        ("no-such-meter", 10 * Y, "cash"),  # the key answers before the meter does
    ):
        with pytest.raises(IdempotencyConflict) as err, db.session() as s:
            sales.sell(s, meter, amount, method, ACTOR, idempotency_key="k-1")
        assert err.value.status == 409
        assert err.value.field == "Idempotency-Key"
    with db.session() as s:
        assert s.query(Sale).count() == 1


def test_sales_take_consecutive_purchase_numbers_per_meter(db, opened):
    with db.session() as s:
        nos = [
            sales.sell(s, m, Y, "cash", ACTOR)[0].purchase_no
            for m in ("m-101", "m-101", "m-102", "m-101")
        ]
    assert nos == [1, 2, 1, 3]
    with db.session() as s:
        args = [
            c.args for c in s.query(Command).filter(Command.op == "credit").order_by(Command.id)
        ]
    assert args[0] == {"purchase_no": 1, "amount_micro_yuan": Y}
    assert [a["purchase_no"] for a in args] == [1, 2, 1, 3]


def test_receipt_number_carries_the_local_date(db, opened):
    with db.session() as s:
        sale, _ = sales.sell(s, "m-101", Y, "cash", ACTOR, now=T0 + 3600)
    # 2026-01-01 01:00 UTC is 09:00 in Shanghai
    assert sale.receipt_no == f"S20260101-{sale.id:08d}"


def test_hoarding_cap_counts_pending_credits(db, opened):
    with db.session() as s:
        inventory.set_defaults(s, "studio", hoarding_cap_micro_yuan=100 * Y)
        sales.sell(s, "m-101", 60 * Y, "cash", ACTOR)
    with pytest.raises(RuleError) as err, db.session() as s:
        sales.sell(s, "m-101", 50 * Y, "cash", ACTOR)  # 60 pending + 50 > 100
    assert err.value.field == "amount_micro_yuan"
    assert "sell at most 40000000" in err.value.message
    with db.session() as s:
        sales.sell(s, "m-101", 40 * Y, "cash", ACTOR)  # exactly the cap is allowed


def test_hoarding_cap_prefers_the_meters_own_and_counts_pending_transfers_in(db, opened):
    with db.session() as s:
        accounts.open_account(
            s, {"name": "B"}, [{"meter": "m-103", "transfer_in_micro_yuan": 30 * Y}], ACTOR
        )
        inventory.set_defaults(s, "studio", hoarding_cap_micro_yuan=100 * Y)
        s.get(Meter, "m-103").hoarding_cap_micro_yuan = 50 * Y
        # The caps are not flushed yet: the sale must still see them.
        with pytest.raises(RuleError) as err:
            sales.sell(s, "m-103", 21 * Y, "cash", ACTOR)
        assert "hoarding cap of 50 yuan (50000000 micro-yuan)" in err.value.message
        assert "sell at most 20000000" in err.value.message
    with pytest.raises(RuleError), db.session() as s:
        sales.sell(s, "m-101", 101 * Y, "cash", ACTOR)  # the site default
    with db.session() as s:
        assert sales.sell(s, "m-103", 20 * Y, "cash", ACTOR)[1]
        assert sales.sell(s, "m-101", 100 * Y, "cash", ACTOR)[1]


def test_a_sale_its_credit_command_and_audit_row_name_each_other(db, opened):
    with db.session() as s:
        sale, _ = sales.sell(s, "m-102", 7 * Y, "card", ACTOR, idempotency_key="k", now=T0)
        assert s.get(Sale, sale.id) is sale  # the session holds the sale it returned
        assert not s.dirty
        assert not s.new
    with db.session() as s:
        stored = s.get(Sale, sale.id)
        command = s.get(Command, stored.command_id)
        entry = (
            s.query(AuditEntry)
            .filter(AuditEntry.target_type == "sale", AuditEntry.target_id == str(sale.id))
            .one()
        )
    expected = {
        "id": sale.id,
        "meter": "m-102",
        "amount_micro_yuan": 7 * Y,
        "status": "pending",
        "reason": None,
        "command_id": command.id,
        "created_ts": T0,
        "resolved_ts": None,
        "account": stored.account_id,
        "method": "card",
        "receipt_no": f"S20260101-{sale.id:08d}",
        "purchase_no": 1,
        "operator_id": None,
        "reversed": False,
        "reversal": None,
    }
    assert sale_to_dict(sale) == sale_to_dict(stored) == expected
    assert (command.op, command.action, command.status) == ("credit", "sale", "pending")
    assert (command.ref_kind, command.ref_id, command.gateway_id) == ("sale", sale.id, "gw-1")
    assert command.args == {"purchase_no": 1, "amount_micro_yuan": 7 * Y}
    assert (entry.action, entry.target_type, entry.before, entry.after) == (
        "sale.create",
        "sale",
        None,
        expected,
    )


def test_bad_sale_input_is_refused_with_the_field_named(db, opened):
    cases = [
        (("m-101", 0, "cash"), "amount_micro_yuan"),
        (("m-101", 1.5, "cash"), "amount_micro_yuan"),
        (("m-101", "100", "cash"), "amount_micro_yuan"),
        (("m-101", Y, "bitcoin"), "method"),
    ]
    for args, field in cases:
        with pytest.raises(InvalidError) as err, db.session() as s:
            sales.sell(s, *args, ACTOR)
        assert err.value.field == field
    with pytest.raises(NotFoundError), db.session() as s:
        sales.sell(s, "nope", Y, "cash", ACTOR)
    with pytest.raises(ConflictError), db.session() as s:
        sales.sell(s, "m-103", Y, "cash", ACTOR)  # no account
    with pytest.raises(ConflictError), db.session() as s:
        sales.sell(s, "m-p1", Y, "cash", ACTOR)  # plain meter
    with db.session() as s:
        assert s.query(Sale).count() == 0


def test_refund_the_edge_rejects_returns_no_money(db, opened):
    edge = opened["gw-1"]
    with db.session() as s:
        sales.sell(s, "m-101", 30 * Y, "cash", ACTOR)
    sync(db, opened)
    with db.session() as s:
        refund, _ = refunds.refund(s, "m-101", 25 * Y, ACTOR)  # the mirror allows it...
    # ...but before the refund reaches the edge, consumption brings its balance to 10 yuan.
    send(db, edge, [edge.reading("m-101", 20_000)])
    sync(db, opened)
    with db.session() as s:
        item = s.get(Refund, refund.id)
        assert item.status == "rejected"
        assert "balance 10000000" in item.reason  # the edge's own reason, kept
        meter = s.get(Meter, "m-101")
        assert meter.refunds_micro_yuan == 0
        assert meter.balance_micro_yuan == 10 * Y == edge.wallet("m-101").balance
        ledger.verify(s, "m-101")


def test_refund_counts_only_after_the_edge_applies_it(db, opened):
    with db.session() as s:
        sales.sell(s, "m-101", 30 * Y, "cash", ACTOR)
    sync(db, opened)
    with db.session() as s:
        refund, _ = refunds.refund(s, "m-101", 10 * Y, ACTOR, idempotency_key="r-1")
        assert s.get(Meter, "m-101").balance_micro_yuan == 30 * Y
    with db.session() as s:  # the same request again: the same refund
        again, created = refunds.refund(s, "m-101", 10 * Y, ACTOR, idempotency_key="r-1")
        assert again.id == refund.id
        assert not created
    with pytest.raises(RuleError) as err, db.session() as s:
        refunds.refund(s, "m-101", 25 * Y, ACTOR)  # 30 − 10 pending leaves 20
    assert "at most 20000000" in err.value.message
    sync(db, opened)
    with db.session() as s:
        assert s.get(Refund, refund.id).status == "applied"
        assert s.get(Meter, "m-101").balance_micro_yuan == 20 * Y
        ledger.verify(s, "m-101")


def test_reversal_of_a_sale_is_two_phase_and_asked_once(db, opened):
    with db.session() as s:
        sale, _ = sales.sell(s, "m-101", 30 * Y, "cash", ACTOR)
    with pytest.raises(ConflictError), db.session() as s:
        reversals.reverse(s, sale.id, ACTOR)  # still pending
    sync(db, opened)
    with db.session() as s:
        first, created = reversals.reverse(s, sale.id, ACTOR)
        assert created
        again, created = reversals.reverse(s, sale.id, ACTOR)
        assert again.id == first.id
        assert not created
        assert s.get(Meter, "m-101").balance_micro_yuan == 30 * Y
    sync(db, opened)
    with db.session() as s:
        assert s.get(Reversal, first.id).status == "applied"
        meter = s.get(Meter, "m-101")
        assert meter.balance_micro_yuan == 0
        assert meter.refunds_micro_yuan == 30 * Y
        ledger.verify(s, "m-101")


def test_reversal_the_edge_rejects_moves_no_money_and_may_be_asked_again(db, opened):
    edge = opened["gw-1"]
    with db.session() as s:
        sale, _ = sales.sell(s, "m-101", 30 * Y, "cash", ACTOR)
    sync(db, opened)
    with db.session() as s:
        first, _ = reversals.reverse(s, sale.id, ACTOR)
    send(db, edge, [edge.reading("m-101", 5_000)])  # balance 25 at the edge: cannot reverse 30
    sync(db, opened)
    with db.session() as s:
        assert s.get(Reversal, first.id).status == "rejected"
        assert s.get(Meter, "m-101").refunds_micro_yuan == 0
        ledger.verify(s, "m-101")
    with pytest.raises(RuleError), db.session() as s:
        reversals.reverse(s, sale.id, ACTOR)  # the mirror now knows the balance is too low


def test_sale_rejected_by_the_edge_leaves_the_balance_alone(db, park):
    with db.session() as s:
        accounts.open_account(s, {"name": "T"}, ["m-101"], ACTOR)
        sale, _ = sales.sell(s, "m-101", 5 * Y, "cash", ACTOR)
    edge = FakeEdge("gw-1")
    with db.session() as s:
        msgs = dispatch.next_to_send(s, "gw-1")
        dispatch.mark_sent(s, [m["id"] for m in msgs])
    credit = next(m for m in msgs if m["op"] == "credit")
    answers = edge.handle(credit)  # arrives before open_account: rejected by the edge
    send(db, edge, answers)
    with db.session() as s:
        assert s.get(Sale, sale.id).status == "rejected"
        assert s.get(Meter, "m-101").balance_micro_yuan == 0
        ledger.verify(s, "m-101")


def test_money_actions_write_the_audit_log(db, opened):
    cashier = Actor("operator:carol", None)
    with db.session() as s:
        sale, _ = sales.sell(s, "m-101", 3 * Y, "cash", cashier, now=T0)
    sync(db, opened)
    with db.session() as s:
        rows = (
            s.query(AuditEntry)
            .filter(AuditEntry.target_type == "sale", AuditEntry.target_id == str(sale.id))
            .all()
        )
        assert [(r.action, r.actor) for r in rows] == [
            ("sale.create", "operator:carol"),
            ("sale.applied", "bridge"),
        ]
        assert rows[0].after["amount_micro_yuan"] == 3 * Y
        assert rows[0].ts == T0


def test_a_counter_receipt_prints_the_balances_it_keeps_with_credits_and_debits_pending(db, opened):
    """``receipts.issued`` (the sale screen's: the receipt's counter facts and its document in
    one read) on both databases: before/after are the mirror plus credits on their way less
    debits on their way, and the document is the one ``receipts.document`` reads back."""
    with db.session() as s:
        first, _ = sales.sell(s, "m-101", 30 * Y, "cash", ACTOR)
        sales.sell(s, "m-101", 40 * Y, "cash", ACTOR)
    sync(db, opened)  # applied: the mirror holds 70
    with db.session() as s:
        pending_sale, _ = sales.sell(s, "m-101", 8 * Y, "cash", ACTOR)
        refund, _ = refunds.refund(s, "m-101", 10 * Y, ACTOR)
        docs = {"refund": receipts.issued(s, "refund", refund, ACTOR, note="moving out")}
        reversal, _ = reversals.reverse(s, first.id, ACTOR, note="wrong meter")
        docs["reversal"] = receipts.issued(s, "reversal", reversal, ACTOR, note="wrong meter")
        sale, _ = sales.sell(s, "m-101", 5 * Y, "cash", ACTOR)
        docs["sale"] = receipts.issued(s, "sale", sale, ACTOR, tendered_micro_yuan=10 * Y)
        counter = receipts.counter_balance(s, s.get(Meter, "m-101"))
    # 70 applied, + 8 + 5 sold and pending, - 10 refunded and - 30 reversed, pending.
    assert counter == 70 * Y + 13 * Y - 40 * Y
    assert (docs["sale"].balance_before_micro_yuan, docs["sale"].balance_after_micro_yuan) == (
        counter - 5 * Y,
        counter,
    )
    assert docs["sale"].change_micro_yuan == 5 * Y
    assert docs["refund"].balance_after_micro_yuan == 70 * Y + 8 * Y - 10 * Y
    assert docs["refund"].balance_before_micro_yuan == 70 * Y + 8 * Y
    assert docs["reversal"].balance_after_micro_yuan == 70 * Y + 8 * Y - 40 * Y
    assert docs["reversal"].original_number == first.receipt_no
    with db.session() as s:
        for kind, doc in docs.items():
            assert doc == receipts.document(s, kind, doc.record_id), kind
        assert s.get(Sale, pending_sale.id).status == "pending"
        ledger.verify(s, "m-101")
