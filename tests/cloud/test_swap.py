"""Meter swap (B06): the old meter settled by its collector, its balance moved to the new meter
of the same account (less energy read by hand past the collector's last reading), a debt kept
for the tenant to pay, a refused settlement retried; the ledger identity on both meters."""

from __future__ import annotations

import pytest

from cloud.errors import ConflictError, NotFoundError, RuleError
from cloud.models import Account, Command, Meter, MeterSwap, Settlement, TransferIn
from cloud.money import accounts, ledger, sales, swap
from tests.cloud.support import ACTOR, T0, FakeEdge, send, sync

Y = 1_000_000


@pytest.fixture
def edges():
    return {"gw-1": FakeEdge("gw-1"), "gw-2": FakeEdge("gw-2")}


def _open_with(db, edges, sell_y: int, use_wh: int) -> int:
    with db.session() as s:
        account = accounts.open_account(s, {"name": "换表户"}, ["m-101"], ACTOR, now=T0)
        sales.sell(s, "m-101", sell_y * Y, "cash", ACTOR, now=T0)
    sync(db, edges)
    gw1 = edges["gw-1"]
    send(db, gw1, [gw1.reading("m-101", use_wh)])
    return account.id


def test_a_swap_moves_the_settled_balance_to_the_new_meter_whose_counters_start_afresh(
    db, park, edges
):
    account_id = _open_with(db, edges, sell_y=100, use_wh=30_000)  # 70 yuan left
    with db.session() as s:
        item = swap.start(s, account_id, "m-101", "m-102", ACTOR, now=T0 + 60)
        assert swap.state(s, item) == "closing"
        ops = [(c.meter_id, c.op) for c in s.query(Command).filter(Command.created_ts == T0 + 60)]
        assert ("m-102", "open_account") in ops
        assert ("m-101", "close_account") in ops
        swap_id = item.id
    sync(db, edges, now=T0 + 60)
    with db.session() as s:
        item = s.get(MeterSwap, swap_id)
        assert swap.state(s, item) == "done"
        assert item.settled_balance_micro_yuan == 70 * Y
        assert item.moved_micro_yuan == 70 * Y
        assert item.debt_owed_micro_yuan == 0
        old, new = s.get(Meter, "m-101"), s.get(Meter, "m-102")
        assert old.balance_micro_yuan == 0
        assert old.display_state == "closed"
        assert old.account_id is None
        assert new.account_id == account_id
        assert new.balance_micro_yuan == 70 * Y
        assert new.purchase_count == 0  # its own purchase numbers
        transfer = s.get(TransferIn, item.transfer_in_id)
        assert transfer.status == "applied"
        assert transfer.source == "meter swap from m-101"
        account = s.get(Account, account_id)
        assert account.status == "open"
        assert accounts.to_dict(account)["meters"] == ["m-102"]
        assert accounts.to_dict(account)["former_meters"] == ["m-101"]
        for meter_id in ("m-101", "m-102"):
            ledger.verify(s, meter_id)
    # The new meter bills from its own register: its first reading is the baseline.
    gw1 = edges["gw-1"]
    send(db, gw1, [gw1.reading("m-102", 2_000)])
    with db.session() as s:
        new = s.get(Meter, "m-102")
        assert new.balance_micro_yuan == 68 * Y
        ledger.verify(s, "m-102")


def test_a_final_reading_typed_by_hand_is_charged_before_the_balance_moves(db, park, edges):
    account_id = _open_with(db, edges, sell_y=100, use_wh=30_000)  # register at 30 kWh
    with db.session() as s:
        item = swap.start(
            s, account_id, "m-101", "m-102", ACTOR,
            final_energy_wh=35_000, price_micro_yuan_per_kwh=2 * Y, now=T0 + 60,
        )  # fmt: skip
        swap_id = item.id
    sync(db, edges, now=T0 + 60)
    with db.session() as s:
        item = s.get(MeterSwap, swap_id)
        assert item.unmetered_energy_wh == 5_000
        assert item.unmetered_charge_micro_yuan == 10 * Y
        assert item.moved_micro_yuan == 60 * Y
        assert s.get(Meter, "m-102").balance_micro_yuan == 60 * Y
        assert s.get(Meter, "m-101").balance_micro_yuan == 0
        ledger.verify(s, "m-101")
        ledger.verify(s, "m-102")


def test_a_swap_in_debt_moves_nothing_and_records_what_the_tenant_owes(db, park, edges):
    account_id = _open_with(db, edges, sell_y=10, use_wh=25_000)  # 15 yuan in debt
    with db.session() as s:
        swap_id = swap.start(s, account_id, "m-101", "m-102", ACTOR, now=T0 + 60).id
    sync(db, edges, now=T0 + 60)
    with db.session() as s:
        item = s.get(MeterSwap, swap_id)
        assert item.debt_owed_micro_yuan == 15 * Y
        assert item.moved_micro_yuan == 0
        assert item.transfer_in_id is None
        assert swap.state(s, item) == "done"
        assert s.get(Meter, "m-102").balance_micro_yuan == 0
        assert s.get(Meter, "m-101").balance_micro_yuan == 0
        ledger.verify(s, "m-101")
        ledger.verify(s, "m-102")


def test_a_refused_settlement_of_the_old_meter_is_retried(db, park, edges):
    account_id = _open_with(db, edges, sell_y=20, use_wh=0)
    with db.session() as s:
        swap_id = swap.start(s, account_id, "m-101", "m-103", ACTOR, now=T0 + 60).id
        cmd = s.query(Command).filter(Command.op == "close_account").one()
    gw1 = edges["gw-1"]
    refusal = {"t": "result", "cmd": cmd.id, "meter": "m-101", "op": "close_account",
               "status": "rejected", "reason": "relay fault", "balance_micro_yuan": 20 * Y}  # fmt: skip
    send(db, gw1, [refusal])
    with db.session() as s:
        item = s.get(MeterSwap, swap_id)
        assert swap.state(s, item) == "rejected"
        assert s.get(Meter, "m-101").account_id == account_id  # still the tenant's
        swap.retry(s, swap_id, ACTOR, now=T0 + 120)
    sync(db, edges, now=T0 + 120)
    with db.session() as s:
        item = s.get(MeterSwap, swap_id)
        assert swap.state(s, item) == "done"
        assert [st.status for st in s.query(Settlement).order_by(Settlement.id)] == [
            "rejected",
            "applied",
        ]
        assert s.get(Meter, "m-103").balance_micro_yuan == 20 * Y
        ledger.verify(s, "m-101")
        ledger.verify(s, "m-103")
    with pytest.raises(ConflictError), db.session() as s:
        swap.retry(s, swap_id, ACTOR)


def test_a_swap_is_refused_with_the_field_named_and_nothing_written(db, park, edges):
    account_id = _open_with(db, edges, sell_y=10, use_wh=1_000)
    cases = [
        ({"old_meter_id": "m-102", "new_meter_id": "m-103"}, RuleError, "old_meter"),
        ({"old_meter_id": "m-101", "new_meter_id": "m-101"}, RuleError, "new_meter"),
        ({"old_meter_id": "m-101", "new_meter_id": "nope"}, NotFoundError, "meter"),
    ]
    for kwargs, error, field in cases:
        with pytest.raises(error) as err, db.session() as s:
            swap.start(s, account_id, actor=ACTOR, **kwargs)
        assert err.value.field == field, kwargs
    with pytest.raises(RuleError) as err, db.session() as s:
        swap.start(s, account_id, "m-101", "m-102", ACTOR, final_energy_wh=500,
                   price_micro_yuan_per_kwh=Y)  # fmt: skip
    assert err.value.field == "final_energy_wh"  # below the collector's last reading
    with pytest.raises(RuleError) as err, db.session() as s:
        swap.start(s, account_id, "m-101", "m-102", ACTOR, final_energy_wh=5_000)
    assert err.value.field == "final_energy_wh"  # no price to charge it at
    with db.session() as s:
        sales.sell(s, "m-101", Y, "cash", ACTOR)
    with pytest.raises(ConflictError) as err, db.session() as s:
        swap.start(s, account_id, "m-101", "m-102", ACTOR)
    assert "waiting for its collector" in err.value.message
    with db.session() as s:
        assert s.query(MeterSwap).count() == 0
        assert s.get(Meter, "m-102").account_id is None
        assert s.query(Settlement).count() == 0


def test_a_swap_over_the_api_follows_the_same_service(db, park, edges, client, tokens):
    account_id = _open_with(db, edges, sell_y=50, use_wh=10_000)  # 40 yuan left
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    bad = client.post(
        f"/api/v1/accounts/{account_id}/swap",
        json={"old_meter": "m-101", "new_meter": "m-101"},
        headers=headers,
    )
    assert bad.status_code == 409
    assert bad.get_json()["error"]["field"] == "new_meter"
    resp = client.post(
        f"/api/v1/accounts/{account_id}/swap",
        json={"old_meter": "m-101", "new_meter": "m-102", "note": "meter burnt"},
        headers=headers,
    )
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert (body["status"], body["old_meter"], body["new_meter"]) == ("closing", "m-101", "m-102")
    sync(db, edges, now=T0 + 60)
    done = client.get(f"/api/v1/swaps/{body['id']}", headers=headers).get_json()
    assert done["status"] == "done"
    assert done["moved_micro_yuan"] == 40 * Y
    with db.session() as s:
        ledger.verify(s, "m-101")
        assert ledger.verify(s, "m-102").balance_micro_yuan == 40 * Y
    assert client.get("/api/v1/swaps/999999", headers=headers).status_code == 404
