"""Opening and closing accounts: transfer-in per meter, meters added later, the close-account
settlement (credit refunded or debt owed), every meter of the tenant closed."""

from __future__ import annotations

import pytest

from cloud.control import commands
from cloud.errors import ConflictError, InvalidError, NotFoundError, RuleError
from cloud.models import Account, Alarm, Command, Meter, Reversal, Sale, Settlement, TransferIn
from cloud.money import accounts, ledger, reversals, sales, settlement
from cloud.park import inventory
from tests.cloud.support import ACTOR, T0, FakeEdge, send, sync

Y = 1_000_000


@pytest.fixture
def edges():
    return {"gw-1": FakeEdge("gw-1"), "gw-2": FakeEdge("gw-2")}


def test_open_account_sends_open_and_a_transfer_in_per_meter(db, park, edges):
    with db.session() as s:
        account = accounts.open_account(
            s,
            {"name": "Blue Sky Studio", "phone": "13900000000"},
            [{"meter": "m-101", "transfer_in_micro_yuan": 12 * Y}, {"meter": "m-102"}],
            ACTOR,
            now=T0,
        )
        assert account.number == f"A{account.id:06d}"
        ops = [(c.meter_id, c.op) for c in s.query(Command).order_by(Command.id)]
        # The site's default hoarding cap (30,000 yuan out of the box) is sent first.
        assert ops == [
            ("m-101", "settings"),
            ("m-101", "open_account"),
            ("m-101", "transfer_in"),
            ("m-102", "settings"),
            ("m-102", "open_account"),
        ]
    sync(db, edges)
    with db.session() as s:
        m1 = s.get(Meter, "m-101")
        assert m1.display_state == "opened"
        assert m1.balance_micro_yuan == 12 * Y
        assert s.query(TransferIn).one().status == "applied"
        ledger.verify(s, "m-101")


def test_meter_in_an_account_cannot_join_another(db, park):
    with db.session() as s:
        accounts.open_account(s, {"name": "A"}, ["m-101"], ACTOR)
    with pytest.raises(ConflictError), db.session() as s:
        accounts.open_account(s, {"name": "B"}, ["m-102", "m-101"], ACTOR)
    with db.session() as s:  # nothing of the refused account remains
        assert s.query(Account).count() == 1
        assert s.get(Meter, "m-102").account_id is None


def test_bad_open_account_input_names_the_field(db, park):
    cases = [
        ({"name": ""}, ["m-101"], "customer.name", InvalidError),
        ({"name": "X", "age": 3}, ["m-101"], "customer.age", InvalidError),
        ({"name": "X"}, [], "meters", InvalidError),
        (
            {"name": "X"},
            [{"meter": "m-101", "transfer_in_micro_yuan": -5}],
            "meters[0].transfer_in_micro_yuan",
            InvalidError,
        ),
        ({"name": "X"}, ["m-101", "nope"], "meters[1]", NotFoundError),
        ({"name": "X"}, ["m-p1"], "meters[0]", RuleError),
        ({"name": "X"}, ["m-101", "m-101"], "meters", RuleError),
    ]
    for customer, meters, field, kind in cases:
        with pytest.raises(kind) as err, db.session() as s:
            accounts.open_account(s, customer, meters, ACTOR)
        assert err.value.field == field, err.value.message


def test_add_a_meter_later(db, park, edges):
    with db.session() as s:
        account = accounts.open_account(s, {"name": "A"}, ["m-101"], ACTOR)
        accounts.add_meter(s, account.id, "m-103", ACTOR, transfer_in_micro_yuan=3 * Y)
        assert accounts.to_dict(account)["meters"] == ["m-101", "m-103"]
    sync(db, edges)
    with db.session() as s:
        assert s.get(Meter, "m-103").balance_micro_yuan == 3 * Y


def _scenario(db, edges, sell_y, use_wh):
    with db.session() as s:
        account = accounts.open_account(s, {"name": "A"}, ["m-101", "m-201"], ACTOR)
        sales.sell(s, "m-101", sell_y * Y, "cash", ACTOR)
    sync(db, edges)
    gw1 = edges["gw-1"]
    send(db, gw1, [gw1.reading("m-101", use_wh)])
    with db.session() as s:
        settlement.close_account(s, account.id, ACTOR, now=T0 + 60)
        assert s.get(Account, account.id).status == "closing"
    sync(db, edges, now=T0 + 60)
    return account.id


def test_close_with_credit_left_refunds_it_to_the_tenant(db, park, edges):
    account_id = _scenario(db, edges, sell_y=100, use_wh=30_000)  # 70 yuan left
    with db.session() as s:
        account = s.get(Account, account_id)
        assert account.status == "closed"
        assert account.closed_ts == T0 + 60
        settlements = {st.meter_id: st for st in s.query(Settlement)}
        assert settlements["m-101"].refund_due_micro_yuan == 70 * Y
        assert settlements["m-101"].debt_owed_micro_yuan == 0
        assert settlements["m-201"].balance_micro_yuan == 0
        for meter_id in ("m-101", "m-201"):
            meter = s.get(Meter, meter_id)
            assert meter.balance_micro_yuan == 0
            assert meter.display_state == "closed"
            assert meter.account_id is None
            ledger.verify(s, meter_id)
        m = s.get(Meter, "m-101")
        assert (m.credits_micro_yuan, m.refunds_micro_yuan, m.charges_micro_yuan) == (
            100 * Y,
            70 * Y,
            30 * Y,
        )
        assert accounts.to_dict(account, s)["former_meters"] == ["m-101", "m-201"]


def test_close_in_debt_records_what_the_tenant_owes(db, park, edges):
    account_id = _scenario(db, edges, sell_y=10, use_wh=25_000)  # 15 yuan in debt
    with db.session() as s:
        st = s.query(Settlement).filter(Settlement.meter_id == "m-101").one()
        assert st.debt_owed_micro_yuan == 15 * Y
        assert st.refund_due_micro_yuan == 0
        m = s.get(Meter, "m-101")
        assert m.balance_micro_yuan == 0
        assert m.credits_micro_yuan == 25 * Y
        ledger.verify(s, "m-101")
        assert s.get(Account, account_id).status == "closed"
    # The edge reports totals after the close; the mirror agrees (no ledger alarm).
    gw1 = edges["gw-1"]
    send(db, gw1, [gw1.reading("m-101", 0)])
    with db.session() as s:
        assert s.query(Alarm).filter(Alarm.active.is_(True)).count() == 0


def test_close_settles_what_the_collector_settled_when_its_last_charges_arrive_late(
    db, park, edges
):
    # The collector charged 12 yuan whose reading is still being resent (a broker restart lost
    # it) when the close result arrives. Settling the cloud's mirror would refund 12 yuan too
    # much; the result carries the balance the collector settled, and the late reading brings
    # the mirror to exactly zero.
    with db.session() as s:
        account = accounts.open_account(s, {"name": "A"}, ["m-101"], ACTOR)
        sales.sell(s, "m-101", 50 * Y, "cash", ACTOR)
    sync(db, edges)
    gw1 = edges["gw-1"]
    late = gw1.reading("m-101", 12_000)  # consumed at the edge, delivered after the close
    with db.session() as s:
        settlement.close_account(s, account.id, ACTOR, now=T0 + 60)
    sync(db, edges, now=T0 + 60)
    with db.session() as s:
        st = s.query(Settlement).filter(Settlement.meter_id == "m-101").one()
        assert st.status == "applied"
        assert st.refund_due_micro_yuan == 38 * Y
        assert s.get(Meter, "m-101").balance_micro_yuan == 12 * Y  # charges still on their way
    send(db, gw1, [late])
    with db.session() as s:
        m = s.get(Meter, "m-101")
        assert (m.credits_micro_yuan, m.refunds_micro_yuan, m.charges_micro_yuan) == (
            50 * Y,
            38 * Y,
            12 * Y,
        )
        assert m.balance_micro_yuan == 0
        ledger.verify(s, "m-101")
    # The late reading predates the settlement, so its totals disagree with the mirror until
    # the collector's next report, which agrees and clears the alarm.
    send(db, gw1, [gw1.reading("m-101", 0)])
    with db.session() as s:
        assert s.query(Alarm).filter(Alarm.active.is_(True)).count() == 0


def test_close_is_refused_while_money_is_in_flight(db, park, edges):
    with db.session() as s:
        account = accounts.open_account(s, {"name": "A"}, ["m-101"], ACTOR)
    sync(db, edges)
    with db.session() as s:
        sale, _ = sales.sell(s, "m-101", Y, "cash", ACTOR)
    with pytest.raises(ConflictError) as err, db.session() as s:
        settlement.close_account(s, account.id, ACTOR)
    assert f"sale {sale.id}" in err.value.message
    sync(db, edges)
    with db.session() as s:
        settlement.close_account(s, account.id, ACTOR)
    with pytest.raises(ConflictError), db.session() as s:
        sales.sell(s, "m-101", Y, "cash", ACTOR)  # closing: no more sales


def test_a_rejected_close_can_be_retried(db, park, edges):
    with db.session() as s:
        account = accounts.open_account(s, {"name": "A"}, ["m-101"], ACTOR)
    sync(db, edges)
    with db.session() as s:
        settlement.close_account(s, account.id, ACTOR)
        cmd = s.query(Command).filter(Command.op == "close_account").one()
    gw1 = edges["gw-1"]
    send(
        db,
        gw1,
        [
            {
                "t": "result",
                "cmd": cmd.id,
                "meter": "m-101",
                "op": "close_account",
                "status": "rejected",
                "reason": "relay fault",
                "balance_micro_yuan": 0,
            }
        ],
    )
    with db.session() as s:
        assert s.query(Settlement).one().status == "rejected"
        assert s.get(Account, account.id).status == "closing"
        settlement.close_account(s, account.id, ACTOR)  # retry: a new settlement
    sync(db, edges)
    with db.session() as s:
        assert [st.status for st in s.query(Settlement).order_by(Settlement.id)] == [
            "rejected",
            "applied",
        ]
        assert s.get(Account, account.id).status == "closed"


def test_a_closed_meter_can_open_for_a_new_tenant(db, park, edges):
    account_id = _scenario(db, edges, sell_y=10, use_wh=1_000)
    with db.session() as s:
        assert s.get(Account, account_id).status == "closed"
        new = accounts.open_account(s, {"name": "Next"}, ["m-101"], ACTOR)
    sync(db, edges)
    with db.session() as s:
        sale, _ = sales.sell(s, "m-101", 5 * Y, "cash", ACTOR)
        assert sale.purchase_no == 2
        assert sale.account_id == new.id
    sync(db, edges)
    with db.session() as s:
        assert s.get(Meter, "m-101").balance_micro_yuan == 5 * Y
        ledger.verify(s, "m-101")


def test_opening_an_account_sends_the_meters_prices_and_thresholds_first(db, park, edges):
    # The cloud holds prices and thresholds; the collector bills by them. A meter opened without
    # them would be sold credit and never charged, so its settings (its own, else the site's
    # defaults, F13) go out ahead of open_account, in the meter's command lane.

    with db.session() as s:
        inventory.set_defaults(
            s, park.site, price_micro_yuan_per_kwh=1_200_000, alarm1_micro_yuan=30 * Y
        )
        s.get(Meter, "m-102").alarm1_micro_yuan = 80 * Y  # its own value wins
        s.get(Meter, "m-102").price_override_micro_yuan_per_kwh = 900_000
        accounts.open_account(s, {"name": "A"}, ["m-101", "m-102"], ACTOR)
    with db.session() as s:
        sent = {
            m: [
                (c.op, c.args)
                for c in s.query(Command).filter(Command.meter_id == m).order_by(Command.id)
            ]
            for m in ("m-101", "m-102")
        }
        assert [op for op, _ in sent["m-101"]] == ["settings", "open_account"]
        assert sent["m-101"][0][1] == {
            "price_override_micro_yuan_per_kwh": 1_200_000,
            "alarm1_micro_yuan": 30 * Y,
            "hoarding_cap_micro_yuan": 30_000 * Y,  # the default out of the box
        }
        assert sent["m-102"][0][1] == {
            "price_override_micro_yuan_per_kwh": 900_000,
            "alarm1_micro_yuan": 80 * Y,
            "hoarding_cap_micro_yuan": 30_000 * Y,
        }
        # The defaults were sent, not copied into the meter's own settings.
        assert s.get(Meter, "m-101").price_override_micro_yuan_per_kwh is None
        assert commands.validate_settings(sent["m-101"][0][1])
    sync(db, edges)
    assert {c["op"] for c in edges["gw-1"].applied_cmds} >= {"settings", "open_account"}


def test_a_sale_of_a_closed_account_cannot_be_reversed_out_of_the_next_tenants_credit(
    db, park, edges
):
    # Tenant A's sale was settled when A's account closed (the credit left was paid back).
    # Reversing it later pays the same money back a second time, and the collector (which keeps
    # the meter's purchases across tenants) takes it out of tenant B's credit.
    account_id = _scenario(db, edges, sell_y=100, use_wh=0)
    with db.session() as s:
        assert s.get(Account, account_id).status == "closed"
        old_sale = s.query(Sale).filter(Sale.meter_id == "m-101").one()
        accounts.open_account(s, {"name": "B"}, ["m-101"], ACTOR)
    sync(db, edges)
    with db.session() as s:
        sales.sell(s, "m-101", 200 * Y, "cash", ACTOR)
    sync(db, edges)
    with db.session() as s, pytest.raises(ConflictError, match="closed"):
        reversals.reverse(s, old_sale.id, ACTOR)
    sync(db, edges)
    with db.session() as s:
        m = s.get(Meter, "m-101")
        assert m.balance_micro_yuan == 200 * Y
        assert m.refunds_micro_yuan == 100 * Y  # the settlement, once
        assert s.query(Reversal).count() == 0
        ledger.verify(s, "m-101")
