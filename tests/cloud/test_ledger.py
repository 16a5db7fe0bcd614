"""The ledger mirror through sales, refunds, reversals, transfers-in and consumption fed as
uplink messages: ``balance == credits − refunds − charges`` to the micro-yuan, equal to the sum
of the rows, and equal to what the edge reports."""

from __future__ import annotations

from cloud.models import Alarm, Meter, Refund, Reversal, Sale
from cloud.money import accounts, ledger, refunds, reversals, sales
from tests.cloud.support import ACTOR, T0, FakeEdge, send, sync

Y = 1_000_000  # one yuan in micro-yuan


def _open(db, meters, transfer=0):
    with db.session() as s:
        account = accounts.open_account(
            s,
            {"name": "Studio 7 Films", "phone": "13800000000"},
            [{"meter": m, "transfer_in_micro_yuan": transfer} for m in meters],
            ACTOR,
            now=T0,
        )
        return account.id


def _check_identity(db, edges):
    with db.session() as s:
        for edge in edges.values():
            for meter_id, wallet in edge.wallets.items():
                totals = ledger.verify(s, meter_id)
                meter = s.get(Meter, meter_id)
                assert ledger.identity_holds(meter)
                assert (
                    meter.credits_micro_yuan,
                    meter.refunds_micro_yuan,
                    meter.charges_micro_yuan,
                    meter.balance_micro_yuan,
                ) == (wallet.credits, wallet.refunds, wallet.charges, wallet.balance)
                assert totals.balance_micro_yuan == wallet.balance


def test_scenario_of_sales_refunds_reversals_and_consumption_keeps_the_identity(db, park):
    edges = {"gw-1": FakeEdge("gw-1"), "gw-2": FakeEdge("gw-2")}
    _open(db, ["m-101", "m-102"], transfer=5 * Y)
    _open(db, ["m-201"])
    sync(db, edges)
    sale_ids = []
    with db.session() as s:
        for meter, amount in (
            ("m-101", 100 * Y),
            ("m-101", 50 * Y),
            ("m-102", 30 * Y),
            ("m-201", 200 * Y),
        ):
            sale, created = sales.sell(s, meter, amount, "cash", ACTOR, now=T0)
            assert created
            assert sale.status == "pending"
            sale_ids.append(sale.id)
    # Nothing counts until the edge applies it.
    with db.session() as s:
        assert s.get(Meter, "m-101").balance_micro_yuan == 5 * Y
    sync(db, edges)
    with db.session() as s:
        assert [s.get(Sale, i).status for i in sale_ids] == ["applied"] * 4
        assert [s.get(Sale, i).purchase_no for i in sale_ids] == [1, 2, 1, 1]
    # Consumption: 12.345 kWh at 1 yuan/kWh on m-101, some on the others.
    send(
        db,
        edges["gw-1"],
        [edges["gw-1"].reading("m-101", 12_345), edges["gw-1"].reading("m-102", 1_000, 1_230_000)],
    )
    send(db, edges["gw-2"], [edges["gw-2"].reading("m-201", 50_000)])
    with db.session() as s:
        refund, _ = refunds.refund(s, "m-101", 20 * Y, ACTOR, now=T0)
        reversal, _ = reversals.reverse(s, sale_ids[1], ACTOR, now=T0)
    sync(db, edges)
    with db.session() as s:
        assert s.get(Refund, refund.id).status == "applied"
        assert s.get(Reversal, reversal.id).status == "applied"
    send(db, edges["gw-1"], [edges["gw-1"].reading("m-101", 777)])
    _check_identity(db, edges)
    with db.session() as s:
        m = s.get(Meter, "m-101")
        # 5 transfer + 100 + 50 − 20 refund − 50 reversal − 12.345 − 0.777
        assert m.balance_micro_yuan == 5 * Y + 150 * Y - 70 * Y - 12_345_000 - 777_000
        assert m.purchase_count == 2
        active = s.query(Alarm).filter(Alarm.active.is_(True)).all()
        assert [a.kind for a in active] == []
