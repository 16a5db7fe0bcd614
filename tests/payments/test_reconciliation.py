"""Daily reconciliation against real databases: each kind of mismatch is planted (a lost
notification, a bill amount that differs, a payment missing from the bill, a paid order the
meter never got, a 'credited' order whose purchase number the meter has not applied) and is
found, and nothing else; the lost one is queried and credited."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import update

from cloud.db import Database
from cloud.models import Meter
from cloud.models.payments import PaymentOrder, ReconciliationCase
from cloud.money import accounts
from cloud.payments import lifecycle as lc
from cloud.payments import make_provider
from cloud.payments.bills import parse_sandbox_bill, write_sandbox_bill
from cloud.payments.orders import Payments
from cloud.payments.reconciliation import cases_of, reconcile
from cloud.payments.sandbox import SandboxProvider
from tests.cloud.support import ACTOR, T0, FakeEdge, Park, sync

DAY = dt.date(2026, 1, 1)  # T0 is 08:00 on this day in Beijing
NOTIFY = "http://127.0.0.1/pay/notify/sandbox"


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(db: Database, park: Park, tmp_path: Path):
    with db.session() as s:
        accounts.open_account(s, {"name": "Tenant"}, ["m-101", "m-102"], ACTOR, now=T0)
    edges = {"gw-1": FakeEdge("gw-1")}
    sync(db, edges)
    clock = Clock()
    sandbox = make_provider("sandbox", {"directory": str(tmp_path / "sb")}, clock=clock)
    assert isinstance(sandbox, SandboxProvider)
    return Payments(db, {"sandbox": sandbox}, clock), sandbox, edges, clock


def paid(
    payments: Payments, sandbox: SandboxProvider, meter: str, fen: int, deliver: bool = True
) -> str:
    order, _ = payments.start("sandbox", meter, fen, notify_url=NOTIFY)
    note = sandbox.bank.pay(order.out_trade_no)
    if deliver:
        assert payments.notify("sandbox", note).body == b"success"
    return order.out_trade_no


def test_each_planted_mismatch_is_found_and_nothing_else(db: Database, world) -> None:
    payments, sandbox, edges, clock = world
    ok = paid(payments, sandbox, "m-101", 5000)
    amount = paid(payments, sandbox, "m-101", 1000)
    local = paid(payments, sandbox, "m-101", 800)
    lost = paid(payments, sandbox, "m-101", 3000, deliver=False)
    with db.session() as s:  # m-102's cap is lowered after its order: the credit is refused
        order, _ = payments.start("sandbox", "m-102", 2000, notify_url=NOTIFY)
        s.execute(update(Meter).where(Meter.id == "m-102").values(hoarding_cap_micro_yuan=1))
    stuck = order.out_trade_no
    payments.notify("sandbox", sandbox.bank.pay(stuck))
    sync(db, edges)
    unapplied = paid(payments, sandbox, "m-101", 700)
    with db.session() as s:  # the ledger says credited, the meter never applied the sale
        s.execute(
            update(PaymentOrder)
            .where(PaymentOrder.out_trade_no == unapplied)
            .values(state=lc.CREDITED)
        )
    clock.now += 2 * 3600
    payments.advance()
    assert payments.status(ok).state == lc.CREDITED

    path = sandbox.bank.write_bill(DAY)
    rows = parse_sandbox_bill(path.read_bytes())
    rows = [
        dataclasses.replace(r, amount_fen=1100) if r.out_trade_no == amount else r
        for r in rows
        if r.out_trade_no != local
    ]
    path.write_bytes(write_sandbox_bill(rows, "edited"))

    summary = reconcile(db, "sandbox", sandbox, DAY, clock=clock)
    found = {(c.kind, c.out_trade_no, c.status) for c in cases_of(db, "sandbox", DAY)}
    assert found == {
        ("provider_only", lost, "resolved"),
        ("amount_differs", amount, "open"),
        ("local_only", local, "open"),
        ("not_credited", stuck, "open"),
        ("not_applied", unapplied, "open"),
    }
    assert (summary.cases, summary.open_cases, summary.bill_rows) == (5, 4, 5)
    assert payments.status(lost).state == lc.CREDITING  # the lost payment is now on its way
    sync(db, edges)
    assert payments.status(lost).state == lc.CREDITED


def test_a_clean_day_has_no_cases_and_a_rerun_replaces_the_run(db: Database, world) -> None:
    payments, sandbox, edges, clock = world
    no = paid(payments, sandbox, "m-101", 5000)
    sync(db, edges)
    payments.status(no)
    sandbox.bank.write_bill(DAY)
    first = reconcile(db, "sandbox", sandbox, DAY, clock=clock)
    again = reconcile(db, "sandbox", sandbox, DAY, clock=clock)
    assert (first.cases, again.cases, again.bill_paid_fen) == (0, 0, 5000)
    assert cases_of(db, "sandbox", DAY) == []


def test_a_refund_on_a_later_day_is_that_days_and_not_a_case_on_the_payments_day(
    db: Database, world
) -> None:
    """Paid on day 1, the credit refused, refunded by the office on day 2 before day 1 is
    reconciled: day 1's bill has the payment, day 2's the refund. Each day matches; day 1 is not
    a refund mismatch because day 2's refund is not on day 1's bill."""
    payments, sandbox, _edges, clock = world
    with db.session() as s:
        order, _ = payments.start("sandbox", "m-102", 2000, notify_url=NOTIFY)
        s.execute(update(Meter).where(Meter.id == "m-102").values(hoarding_cap_micro_yuan=1))
    no = order.out_trade_no
    payments.notify("sandbox", sandbox.bank.pay(no))
    assert payments.status(no).state == lc.CREDIT_FAILED
    clock.now = T0 + 25 * 3600  # day 2, 09:00 Beijing
    assert payments.refund(no, ACTOR).state == lc.REFUNDED
    clock.now = T0 + 26.5 * 3600  # day 2, 10:30: day 1 is reconciled now
    day2 = DAY + dt.timedelta(days=1)
    for day in (DAY, day2):
        sandbox.bank.write_bill(day)
        reconcile(db, "sandbox", sandbox, day, clock=clock)
    assert [(c.kind, c.out_trade_no) for c in cases_of(db, "sandbox", DAY)] == []
    assert [(c.kind, c.out_trade_no) for c in cases_of(db, "sandbox", day2)] == []
    # Day 2 reconciled again once day 3 has come: still nothing.
    clock.now = T0 + 50 * 3600
    sandbox.bank.write_bill(day2)
    assert reconcile(db, "sandbox", sandbox, day2, clock=clock).cases == 0
    # A bill of day 2 without our refund: found on day 2, the day the refund was made.
    sandbox.bank.write_bill(day2).write_bytes(write_sandbox_bill([], "no refund"))
    reconcile(db, "sandbox", sandbox, day2, clock=clock)
    assert [(c.kind, c.out_trade_no) for c in cases_of(db, "sandbox", day2)] == [
        ("refund_differs", no)
    ]


def test_a_lost_payment_of_another_amount_is_an_open_case_not_a_failed_run(
    db: Database, world
) -> None:
    """The bill and the provider's answer say an order of ours was paid, for another amount than
    ours (the notification never came). Crediting it is for a person to decide: the day is still
    reconciled, with that case open, and nothing is credited."""
    payments, sandbox, edges, clock = world
    ok = paid(payments, sandbox, "m-101", 5000)
    odd = paid(payments, sandbox, "m-101", 2000, deliver=False)
    with db.session() as s:  # our order says 19.00; the provider took 20.00
        s.execute(
            update(PaymentOrder).where(PaymentOrder.out_trade_no == odd).values(amount_fen=1900)
        )
    sync(db, edges)
    payments.status(ok)
    clock.now += 3600
    sandbox.bank.write_bill(DAY)
    summary = reconcile(db, "sandbox", sandbox, DAY, clock=clock)
    found = {(c.kind, c.out_trade_no, c.status) for c in cases_of(db, "sandbox", DAY)}
    assert found == {("provider_only", odd, "open")}
    assert (summary.cases, summary.open_cases) == (1, 1)
    assert payments.status(odd).state == lc.CREATED  # not credited by the run


def test_a_rerun_keeps_what_staff_wrote_on_the_cases_it_finds_again(db: Database, world) -> None:
    """Re-running a day (the office's button, or the command line) replaces its run; a case a
    person resolved with a note, found again, stays resolved with that note."""
    payments, sandbox, edges, clock = world
    local = paid(payments, sandbox, "m-101", 800)
    sync(db, edges)
    payments.status(local)
    path = sandbox.bank.write_bill(DAY)
    path.write_bytes(write_sandbox_bill([], "the payment is missing"))
    reconcile(db, "sandbox", sandbox, DAY, clock=clock)
    (case,) = cases_of(db, "sandbox", DAY)
    with db.session() as s:
        s.execute(
            update(ReconciliationCase)
            .where(ReconciliationCase.id == case.id)
            .values(status="resolved", resolution="bank confirmed by phone", resolved_ts=T0 + 60)
        )
    clock.now += 3600
    summary = reconcile(db, "sandbox", sandbox, DAY, clock=clock)
    (again,) = cases_of(db, "sandbox", DAY)
    assert (again.kind, again.out_trade_no) == ("local_only", local)
    assert (again.status, again.resolution, again.resolved_ts) == (
        "resolved",
        "bank confirmed by phone",
        T0 + 60,
    )
    assert (summary.cases, summary.open_cases) == (1, 0)
