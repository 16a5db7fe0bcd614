"""The payment jobs on their schedule (``cloud.payments.jobs``, ``gridvend cloud payments``),
against real databases and the sandbox bank, on a clock the test moves: crediting orders become
credited once the meter applies them, an order whose notification was lost is queried and
credited, an unpaid one is closed, and the previous Beijing day is reconciled once, after the
hour the bills come out, with its summary stored for the office."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.db import Database
from cloud.models import Meter
from cloud.models.payments import PaymentOrder, ReconciliationRun
from cloud.money import accounts
from cloud.payments import cli as payments_cli
from cloud.payments import config as payment_config
from cloud.payments import jobs, make_provider
from cloud.payments import lifecycle as lc
from cloud.payments.orders import Payments
from cloud.payments.sandbox import SandboxProvider
from tests.cloud.support import ACTOR, T0, FakeEdge, Park, sync
from tests.payments.players import alipay_settings

NOTIFY = "http://127.0.0.1/pay/notify/sandbox"
DAY = dt.date(2026, 1, 1)  # T0 is 08:00 on this day in Beijing
NEXT_MORNING = T0 + 24 * 3600 + 2 * 3600 + 30 * 60  # 10:30 on 2 January, Beijing


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(db: Database, park: Park, tmp_path: Path):
    with db.session() as s:
        accounts.open_account(s, {"name": "Tenant"}, ["m-101"], ACTOR, now=T0)
    edges = {"gw-1": FakeEdge("gw-1")}
    sync(db, edges)
    clock = Clock()
    sandbox = make_provider("sandbox", {"directory": str(tmp_path / "sb")}, clock=clock)
    assert isinstance(sandbox, SandboxProvider)
    payments = Payments(db, {"sandbox": sandbox}, clock)
    return payments, sandbox, edges, clock


def _state(db: Database, no: str) -> str:
    with db.session(readonly=True) as s:
        return str(s.scalar(select(PaymentOrder.state).where(PaymentOrder.out_trade_no == no)))


def test_a_round_follows_orders_queries_stuck_ones_and_closes_unpaid(db: Database, world) -> None:
    payments, sandbox, edges, clock = world
    runner = jobs.Jobs(db, payments, jobs.Schedule(stuck_after_s=300, close_after_s=7200))
    seen, _ = payments.start("sandbox", "m-101", 5000, notify_url=NOTIFY)
    payments.notify("sandbox", sandbox.bank.pay(seen.out_trade_no))
    lost, _ = payments.start("sandbox", "m-101", 2000, notify_url=NOTIFY)
    sandbox.bank.pay(lost.out_trade_no)  # paid at the bank; the notification never arrives
    unpaid, _ = payments.start("sandbox", "m-101", 900, notify_url=NOTIFY)
    assert _state(db, seen.out_trade_no) == lc.CREDITING
    first = runner.tick()
    assert (first.advanced, first.queried, first.errors) == (0, 0, [])  # too early for both
    sync(db, edges)  # the collector applies the first sale
    clock.now += 301
    second = runner.tick()
    assert second.advanced == 1
    assert _state(db, seen.out_trade_no) == lc.CREDITED
    assert second.queried == 1  # the lost one, asked about, paid: credited through the sale
    assert _state(db, lost.out_trade_no) == lc.CREDITING
    assert _state(db, unpaid.out_trade_no) == lc.CREATED  # unpaid, not closed yet
    sync(db, edges)
    clock.now = T0 + 7201
    third = runner.tick()
    assert third.advanced == 1
    assert third.queried == 1
    assert _state(db, lost.out_trade_no) == lc.CREDITED
    assert _state(db, unpaid.out_trade_no) == lc.CLOSED
    with db.session(readonly=True) as s:
        meter = s.get(Meter, "m-101")
        assert meter is not None
        assert meter.balance_micro_yuan == 70_000_000  # 50 + 20 yuan, nothing twice
        assert meter.balance_micro_yuan == (
            meter.credits_micro_yuan - meter.refunds_micro_yuan - meter.charges_micro_yuan
        )


def test_the_previous_day_is_reconciled_once_after_the_bills_come_out(db: Database, world) -> None:
    payments, sandbox, edges, clock = world
    runner = jobs.Jobs(db, payments, jobs.Schedule(stuck_after_s=10**9))
    order, _ = payments.start("sandbox", "m-101", 3000, notify_url=NOTIFY)
    lost, _ = payments.start("sandbox", "m-101", 1200, notify_url=NOTIFY)
    payments.notify("sandbox", sandbox.bank.pay(order.out_trade_no))
    sandbox.bank.pay(lost.out_trade_no)  # lost notification, never queried by the round
    sync(db, edges)
    clock.now = NEXT_MORNING - 60  # 10:29: the bills are not out yet
    assert runner.tick().reconciled == []
    clock.now = NEXT_MORNING + 60
    done = runner.tick()
    assert [(s.provider, s.bill_date) for s in done.reconciled] == [("sandbox", DAY.isoformat())]
    summary = done.reconciled[0]
    assert (summary.bill_rows, summary.bill_paid_fen) == (2, 4200)
    assert summary.cases == 1  # the lost one: on the bill only, queried and credited
    assert summary.open_cases == 0
    assert _state(db, lost.out_trade_no) == lc.CREDITING
    assert "reconciled sandbox 2026-01-01: bill 2 rows, paid 42.00 yuan" in jobs.summary_line(
        summary
    )
    clock.now += 3600
    assert runner.tick().reconciled == []  # once a day
    with db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(ReconciliationRun)) == 1


def test_a_provider_without_a_bill_is_tried_again_later(db: Database, world) -> None:
    payments, _sandbox, _edges, clock = world
    # Alipay with no way out (no transport): its bill download fails, as when Alipay is
    # unreachable; the sandbox is reconciled all the same.
    payments.providers["alipay"] = make_provider("alipay", alipay_settings(), clock=clock)
    runner = jobs.Jobs(db, payments, jobs.Schedule(bill_retry_s=1800))
    clock.now = NEXT_MORNING + 60
    first = runner.tick()
    assert [s.provider for s in first.reconciled] == ["sandbox"]
    assert any(e.startswith("reconcile alipay 2026-01-01") for e in first.errors)
    clock.now += 600
    assert runner.due_reconciliations(clock.now) == []  # not again within bill_retry_s
    clock.now += 1800
    assert runner.due_reconciliations(clock.now) == [("alipay", DAY)]


def test_the_command_line_reconciles_a_day(db: Database, world, tmp_path: Path, capsys) -> None:
    payments, sandbox, edges, _clock = world
    order, _ = payments.start("sandbox", "m-101", 1500, notify_url=NOTIFY)
    payments.notify("sandbox", sandbox.bank.pay(order.out_trade_no))
    sync(db, edges)
    instance = tmp_path / "instance"
    instance.mkdir()
    settings = {"sandbox": {"directory": str(sandbox.bank.directory)}}
    (instance / payment_config.FILE).write_text(json.dumps(settings), encoding="utf-8")
    argv = ["reconcile", "--database", db.url, "--instance", str(instance), "--day", "2026-01-01"]
    assert payments_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "reconciled sandbox 2026-01-01: bill 1 rows, paid 15.00 yuan" in out
    assert "0 cases, 0 open" in out


def test_staff_refund_or_credit_again_a_held_order_from_the_command_line(
    db: Database, world, tmp_path: Path, capsys
) -> None:
    """ "Held for staff" needs something staff can do: ``gridvend cloud payments refund NO``
    gives the money back through the provider, ``retry NO`` credits it again through the sale
    path once the cause is gone. Both audited; the ledger identity holds on the meter."""
    payments, sandbox, edges, clock = world
    held = []
    for fen in (3000, 4000):
        order, _ = payments.start("sandbox", "m-101", fen, notify_url=NOTIFY)
        with db.session() as s:  # the cap falls after the order: its credit is refused
            s.execute(
                Meter.__table__.update()
                .where(Meter.id == "m-101")
                .values(hoarding_cap_micro_yuan=1_000_000)
            )
        payments.notify("sandbox", sandbox.bank.pay(order.out_trade_no))
        for _ in range(3):
            clock.now += 600
            payments.advance()
        assert _state(db, order.out_trade_no) == lc.HELD
        held.append(order.out_trade_no)
        with db.session() as s:
            s.execute(
                Meter.__table__.update()
                .where(Meter.id == "m-101")
                .values(hoarding_cap_micro_yuan=None)
            )
    with db.session() as s:
        s.execute(
            Meter.__table__.update().where(Meter.id == "m-101").values(hoarding_cap_micro_yuan=1)
        )
    instance = tmp_path / "instance"
    instance.mkdir()
    settings = {"sandbox": {"directory": str(sandbox.bank.directory)}}
    (instance / payment_config.FILE).write_text(json.dumps(settings), encoding="utf-8")
    common = ["--database", db.url, "--instance", str(instance)]
    assert payments_cli.main(["refund", held[0], *common]) == 0
    assert _state(db, held[0]) == lc.REFUNDED
    assert sandbox.query(held[0]).state == "refunded"
    assert payments_cli.main(["refund", held[0], *common]) == 1  # once
    assert "refunded cannot take refund" in capsys.readouterr().err
    with db.session() as s:
        s.execute(
            Meter.__table__.update().where(Meter.id == "m-101").values(hoarding_cap_micro_yuan=None)
        )
    assert payments_cli.main(["retry", held[1], *common]) == 0
    assert _state(db, held[1]) == lc.CREDITING
    sync(db, edges)
    assert payments.status(held[1]).state == lc.CREDITED
    with db.session(readonly=True) as s:
        meter = s.get(Meter, "m-101")
        assert meter is not None
        assert meter.balance_micro_yuan == (
            meter.credits_micro_yuan - meter.refunds_micro_yuan - meter.charges_micro_yuan
        )
        assert meter.credits_micro_yuan == 4000 * 10_000
