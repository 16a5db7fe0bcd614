"""Concurrent sales (threads, one session each) on SQLite and PostgreSQL: purchase numbers stay
gap-free and unique per meter, and one idempotency key makes one sale however many requests
race with it."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from cloud.errors import IdempotencyConflict
from cloud.models import Command, Sale
from cloud.money import accounts, sales
from cloud.park import gateways
from tests.cloud.support import ACTOR

Y = 1_000_000


def _race(n: int, work) -> list:
    results: list = []
    errors: list = []
    start = threading.Barrier(n)

    def run(i: int) -> None:
        start.wait(timeout=60)
        try:
            results.append(work(i))
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return [results, errors]


def test_concurrent_sales_take_gap_free_purchase_numbers(db, park):
    with db.session() as s:
        accounts.open_account(s, {"name": "A"}, ["m-101"], ACTOR)

    def sell(i: int) -> int:
        with db.session() as s:
            sale, _ = sales.sell(s, "m-101", Y, "cash", ACTOR, idempotency_key=f"k-{i}")
            return sale.purchase_no

    results, errors = _race(12, sell)
    assert errors == []
    assert sorted(results) == list(range(1, 13))
    with db.session() as s:
        assert s.query(Command).filter(Command.op == "credit").count() == 12


def test_one_idempotency_key_racing_makes_one_sale(db, park):
    with db.session() as s:
        accounts.open_account(s, {"name": "A"}, ["m-101", "m-102"], ACTOR)

    def sell(i: int) -> tuple[int, bool]:
        with db.session() as s:
            # Half the racers send the same body, half another meter with the same key.
            meter = "m-101" if i % 2 == 0 else "m-102"
            sale, created = sales.sell(s, meter, Y, "cash", ACTOR, idempotency_key="same")
            return sale.id, created

    results, errors = _race(8, sell)
    with db.session() as s:
        (sale,) = s.query(Sale).all()
    winners = [r for r in results if r[1]]
    assert len(winners) == 1
    assert all(r[0] == sale.id for r in results)
    # The other body with the same key is a conflict, never a second sale.
    assert all(isinstance(e, IdempotencyConflict) for e in errors)
    assert len(results) + len(errors) == 8


def test_requests_racing_with_one_key_leave_no_gap_in_purchase_numbers(db, park):
    with db.session() as s:
        accounts.open_account(s, {"name": "A"}, ["m-101"], ACTOR)

    def sell(i: int) -> tuple[int, bool]:
        with db.session() as s:
            sale, created = sales.sell(s, "m-101", Y, "cash", ACTOR, idempotency_key="same")
            return sale.id, created

    results, errors = _race(8, sell)
    assert errors == []
    assert len(results) == 8
    assert sum(created for _, created in results) == 1
    assert len({sale_id for sale_id, _ in results}) == 1
    # The replays took no purchase number for good: the next sale is number 2, so the
    # collector is not left waiting for a purchase that never comes.
    with db.session() as s:
        sale, created = sales.sell(s, "m-101", Y, "cash", ACTOR, idempotency_key="next")
    assert created
    assert sale.purchase_no == 2


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_sale_does_not_wait_for_a_bridge_holding_its_collector(db, park):
    """A bridge acting for a collector holds its row (``GATEWAY_LOCK``) while it updates the
    collector's meters; a sale inserting its credit command checks the foreign key to that row.
    With FOR UPDATE the sale waited for the bridge, which could be waiting for the sale's meter
    row: a deadlock, a 500 at the counter (seen in the e2e pipeline on PostgreSQL)."""
    with db.session() as s:
        accounts.open_account(s, {"name": "A"}, ["m-101"], ACTOR)
    with db.session() as bridge:
        gateways.get(bridge, "gw-1", lock=True)  # held until this block commits
        with db.session() as s:
            s.execute(text("SET LOCAL lock_timeout = '2s'"))  # a wait fails the test
            sale, created = sales.sell(s, "m-101", Y, "cash", ACTOR, idempotency_key="k")
            assert created
        with db.session() as s:  # committed while the bridge still holds the collector
            assert s.get(Sale, sale.id) is not None
            assert s.query(Command).filter(Command.op == "credit").count() == 1
