"""Orders against real SQLite and PostgreSQL: a sandbox payment credits the meter through the
cashier's sale path; the same notification ten times, or eight at once, credits once; a
refused credit is kept, retried, held, refunded; stuck orders are queried, not guessed."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from cloud.db import Database
from cloud.errors import ConflictError, InvalidError, RuleError
from cloud.models import Base, Meter, Sale
from cloud.models.payments import PaymentNotification, PaymentOrder
from cloud.money import accounts, ledger
from cloud.payments import lifecycle as lc
from cloud.payments import make_provider
from cloud.payments.orders import Payments
from cloud.payments.provider import NotificationRequest
from cloud.payments.sandbox import SandboxProvider
from tests.cloud.support import ACTOR, T0, FakeEdge, Park, sync
from tests.payments.players import FakeGateway, alipay_settings

NOTIFY = "http://127.0.0.1/pay/notify/sandbox"


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def edges(db: Database, park: Park) -> dict[str, FakeEdge]:
    with db.session() as s:
        accounts.open_account(
            s, {"name": "Tenant", "phone": "13800000000"}, ["m-101"], ACTOR, now=T0
        )
    found = {"gw-1": FakeEdge("gw-1")}
    sync(db, found)
    return found


@pytest.fixture
def payments(db: Database, tmp_path: Path, clock: Clock) -> Payments:
    sandbox = make_provider("sandbox", {"directory": str(tmp_path / "sandbox")}, clock=clock)
    return Payments(db, {"sandbox": sandbox}, clock)


def sandbox_of(payments: Payments) -> SandboxProvider:
    provider = payments.providers["sandbox"]
    assert isinstance(provider, SandboxProvider)
    return provider


def top_up(payments: Payments, fen: int = 5000) -> tuple[str, NotificationRequest]:
    order, action = payments.start("sandbox", "m-101", fen, notify_url=NOTIFY)
    assert action.url == f"/pay/sandbox/{order.out_trade_no}"
    return order.out_trade_no, sandbox_of(payments).bank.pay(order.out_trade_no)


def sales_of(db: Database) -> list[tuple[str, int, str | None]]:
    with db.session(readonly=True) as s:
        return [
            tuple(row)  # type: ignore[misc]
            for row in s.execute(
                select(Sale.method, Sale.amount_micro_yuan, Sale.idempotency_key).where(
                    Sale.meter_id == "m-101"
                )
            )
        ]


def test_the_schema_of_the_payment_tables_matches_the_models(db: Database) -> None:

    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diffs if any(t in repr(d) for t in ("payment_", "reconciliation_"))]
    assert mine == []


def test_a_sandbox_payment_credits_the_meter_through_the_sale_path(
    db: Database, edges, payments: Payments
) -> None:
    no, note = top_up(payments, 5000)
    assert payments.notify("sandbox", note).body == b"success"
    order = payments.status(no)
    assert order.state == lc.CREDITING
    assert order.attempts == 1
    assert sales_of(db) == [("sandbox", 50_000_000, f"order:{no}:1")]
    sync(db, edges)
    assert payments.status(no).state == lc.CREDITED
    with db.session() as s:
        meter = s.get(Meter, "m-101")
        assert meter is not None
        assert meter.balance_micro_yuan == 50_000_000
        ledger.verify(s, "m-101")  # balance == credits − refunds − charges
    assert edges["gw-1"].wallet("m-101").balance == 50_000_000


def test_the_same_notification_ten_times_credits_once(
    db: Database, edges, payments: Payments
) -> None:
    _no, note = top_up(payments)
    replies = [payments.notify("sandbox", note).body for _ in range(10)]
    assert replies == [b"success"] * 10
    assert len(sales_of(db)) == 1
    with db.session(readonly=True) as s:
        verdicts = sorted(s.scalars(select(PaymentNotification.verdict)))
    assert verdicts == ["accepted"] + ["duplicate"] * 9
    sync(db, edges)
    assert edges["gw-1"].wallet("m-101").balance == 50_000_000


def test_eight_concurrent_deliveries_credit_once(db: Database, edges, payments: Payments) -> None:
    no, note = top_up(payments)
    barrier, replies, errors = threading.Barrier(8), [], []

    def deliver() -> None:
        barrier.wait()
        try:
            replies.append(payments.notify("sandbox", note).body)
        except Exception as exc:  # a failure must fail the test, not vanish in a thread
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert replies == [b"success"] * 8
    assert len(sales_of(db)) == 1
    sync(db, edges)
    assert payments.status(no).state == lc.CREDITED


def test_a_tampered_notification_is_rejected_logged_and_credits_nothing(
    db: Database, edges, payments: Payments
) -> None:
    no, note = top_up(payments, 5000)
    form = dict(parse_qsl(note.body.decode(), keep_blank_values=True))
    form["total_amount"] = "500.00"
    reply = payments.notify("sandbox", NotificationRequest(note.headers, urlencode(form).encode()))
    assert reply.status == 400
    assert reply.body != b"success"
    assert sales_of(db) == []
    assert payments.status(no).state == lc.CREATED
    with db.session() as s:
        logged = s.scalars(select(PaymentNotification)).one()
    assert (logged.verdict, logged.error_code) == ("rejected", "signature_invalid")
    assert "total_amount=500.00" in logged.body


def test_a_refused_credit_keeps_the_payment_and_is_retried(
    db: Database, edges, payments: Payments, clock: Clock
) -> None:
    no, note = top_up(payments, 5000)
    with db.session() as s:
        meter = s.get(Meter, "m-101")
        assert meter is not None
        meter.hoarding_cap_micro_yuan = (
            10_000_000  # lowered after the order: 50 yuan no longer fits
        )
    assert payments.notify("sandbox", note).body == b"success"  # the payment is taken
    order = payments.status(no)
    assert (order.state, order.attempts) == (lc.CREDIT_FAILED, 1)
    assert "hoarding cap" in order.last_error
    assert sales_of(db) == []
    clock.now += 59
    assert payments.status(no).attempts == 1  # retries back off
    clock.now += 1
    assert (payments.status(no).attempts, payments.advance()) == (2, 0)
    clock.now += 120
    assert payments.advance() == 0  # attempt 3 fails too: still credit_failed
    held = payments.status(no)  # three attempts failed: held for staff
    assert (held.state, held.attempts) == (lc.HELD, 3)
    with db.session() as s:
        meter = s.get(Meter, "m-101")
        assert meter is not None
        meter.hoarding_cap_micro_yuan = None
    refunded = payments.refund(no, ACTOR)
    assert (refunded.state, refunded.refunded_fen) == (lc.REFUNDED, 5000)
    assert sandbox_of(payments).query(no).state == "refunded"


def test_a_lost_notification_is_found_by_querying_stuck_orders(
    db: Database, edges, payments: Payments, clock: Clock
) -> None:
    no, _lost = top_up(payments)
    unpaid, _ = payments.start("sandbox", "m-101", 100, notify_url=NOTIFY)
    assert payments.query_stuck(older_than_s=300) == 0  # too young to ask about
    clock.now += 600
    assert payments.query_stuck(older_than_s=300) == 1
    assert payments.status(no).state == lc.CREDITING
    assert len(sales_of(db)) == 1
    clock.now += 3 * 3600
    assert payments.query_stuck(older_than_s=300) == 1
    assert payments.status(unpaid.out_trade_no).state == lc.CLOSED


def test_a_payment_arriving_after_the_order_closed_still_credits(
    db: Database, edges, payments: Payments, clock: Clock
) -> None:
    order, _ = payments.start("sandbox", "m-101", 700, notify_url=NOTIFY)
    clock.now += 3 * 3600
    payments.query_stuck()
    assert payments.status(order.out_trade_no).state == lc.CLOSED
    sandbox = sandbox_of(payments)
    sandbox.bank._append({"op": "reopen", "out_trade_no": order.out_trade_no, "state": "pending"})
    payments.notify("sandbox", sandbox.bank.pay(order.out_trade_no))
    assert payments.status(order.out_trade_no).state == lc.CREDITING


def test_orders_are_checked_like_sales(db: Database, edges, payments: Payments) -> None:
    with pytest.raises(InvalidError) as caught:
        payments.start("sandbox", "m-101", 0, notify_url=NOTIFY)
    assert caught.value.field == "amount_fen"
    with pytest.raises(InvalidError):
        payments.start("sandbox", "m-101", 12.5, notify_url=NOTIFY)
    with pytest.raises(ConflictError):
        payments.start("sandbox", "m-p1", 100, notify_url=NOTIFY)  # plain meter
    with pytest.raises(ConflictError, match="no open account"):
        payments.start("sandbox", "m-103", 100, notify_url=NOTIFY)
    with db.session() as s:
        meter = s.get(Meter, "m-101")
        assert meter is not None
        meter.hoarding_cap_micro_yuan = 10_000_000
    with pytest.raises(RuleError, match="hoarding cap"):
        payments.start("sandbox", "m-101", 2000, notify_url=NOTIFY)
    with db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(PaymentOrder)) == 0


def test_one_order_the_provider_cannot_answer_does_not_hold_up_the_others(
    db: Database, edges, clock: Clock
) -> None:
    """Stuck orders are asked about one by one: a provider that fails on one (a system error,
    a timeout) leaves that one for the next round, and the others are still queried and
    credited in this one."""
    gateway = FakeGateway("alipay", clock)
    alipay = make_provider("alipay", alipay_settings(), gateway, clock)
    payments = Payments(db, {"alipay": alipay}, clock)
    failing, _ = payments.start("alipay", "m-101", 1000, notify_url=NOTIFY)
    clock.now += 1
    paid, _ = payments.start("alipay", "m-101", 2000, notify_url=NOTIFY)

    def query(request: object) -> tuple[int, bytes]:
        biz = dict(parse_qsl(request.body.decode()))["biz_content"]  # type: ignore[attr-defined]
        if failing.out_trade_no in biz:
            answer = {"code": "20000", "msg": "Service Currently Unavailable",
                      "sub_code": "ACQ.SYSTEM_ERROR"}  # fmt: skip
        else:
            answer = {"code": "10000", "msg": "Success", "trade_no": "2026010122001",
                      "out_trade_no": paid.out_trade_no, "trade_status": "TRADE_SUCCESS",
                      "total_amount": "20.00"}  # fmt: skip
        return 200, gateway.alipay_answer("alipay_trade_query_response", answer)

    gateway.routes["alipay.trade.query"] = query
    clock.now += 600
    assert payments.query_stuck(older_than_s=300) == 1
    assert payments.status(paid.out_trade_no).state == lc.CREDITING
    assert payments.status(failing.out_trade_no).state == lc.CREATED
    assert [m for m, _a, _k in sales_of(db)] == ["alipay"]
