"""The sandbox provider signs its notifications like a real provider and keeps a bill, so the
whole flow runs offline; our side verifies with the bank's public key only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest

from cloud.errors import InvalidError
from cloud.payments import make_provider
from cloud.payments.errors import NotificationMismatchError, ProviderError, SignatureInvalidError
from cloud.payments.provider import (
    CLOSED,
    NOT_FOUND,
    PAID,
    PENDING,
    REFUNDED,
    NotificationRequest,
    PayRequest,
)
from cloud.payments.sandbox import SandboxBank, SandboxProvider

DAY = dt.date(2026, 3, 1)
NOON = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOON)


@pytest.fixture
def sandbox(tmp_path: Path, clock: Clock) -> SandboxProvider:
    made = make_provider("sandbox", {"directory": str(tmp_path)}, clock=clock)
    assert isinstance(made, SandboxProvider)
    return made


def order(no: str = "GV1", fen: int = 5000) -> PayRequest:
    return PayRequest(no, fen, "电费充值 A-101", "http://127.0.0.1/pay/notify/sandbox")


def test_create_pay_verify_is_a_paid_event(sandbox: SandboxProvider) -> None:
    action = sandbox.create(order())
    assert action.kind == "redirect"
    assert action.url == "/pay/sandbox/GV1"
    assert sandbox.query("GV1").state == PENDING
    note = sandbox.bank.pay("GV1")
    event = sandbox.verify_notification(note, {"GV1": 5000}.get)
    assert (event.state, event.amount_fen, event.provider) == (PAID, 5000, "sandbox")
    assert event.trade_no.startswith("SB20260301")
    assert sandbox.query("GV1").state == PAID


def test_the_notification_is_signed_rsa2_like_alipays(sandbox: SandboxProvider) -> None:
    sandbox.create(order())
    form = dict(parse_qsl(sandbox.bank.pay("GV1").body.decode(), keep_blank_values=True))
    assert form["sign_type"] == "RSA2"
    assert form["total_amount"] == "50.00"
    form["total_amount"] = "500.00"

    with pytest.raises(SignatureInvalidError):
        sandbox.verify_notification(
            NotificationRequest({}, urlencode(form).encode()), {"GV1": 50000}.get
        )


def test_another_banks_notification_does_not_verify(
    tmp_path: Path, sandbox: SandboxProvider
) -> None:
    other = SandboxBank(tmp_path / "other")
    other.open_trade(order())
    with pytest.raises(SignatureInvalidError):
        sandbox.verify_notification(other.pay("GV1"), {"GV1": 5000}.get)


def test_paying_twice_resends_the_same_trade(sandbox: SandboxProvider) -> None:
    sandbox.create(order())
    first = sandbox.verify_notification(sandbox.bank.pay("GV1"), {"GV1": 5000}.get)
    again = sandbox.verify_notification(sandbox.bank.pay("GV1"), {"GV1": 5000}.get)
    assert first.trade_no == again.trade_no


def test_a_lost_notification_is_found_by_query(sandbox: SandboxProvider) -> None:
    sandbox.create(order())
    sandbox.bank.pay("GV1")  # never delivered
    assert sandbox.query("GV1").state == PAID
    assert sandbox.query("GV-UNKNOWN").state == NOT_FOUND


def test_two_bank_objects_on_one_directory_share_trades_and_key(
    tmp_path: Path, clock: Clock
) -> None:
    a, b = SandboxBank(tmp_path, clock), SandboxBank(tmp_path, clock)
    a.open_trade(order())
    provider_b = SandboxProvider(b)
    assert provider_b.verify_notification(a.pay("GV1"), {"GV1": 5000}.get).is_paid


def test_close_refund_and_unknown_app(sandbox: SandboxProvider) -> None:
    sandbox.create(order("GV2"))
    sandbox.close("GV2")
    assert sandbox.query("GV2").state == CLOSED
    with pytest.raises(InvalidError, match="closed"):
        sandbox.bank.pay("GV2")
    sandbox.create(order("GV3"))
    sandbox.bank.pay("GV3")
    sandbox.refund("GV3", 2000, "GV3-R1")
    sandbox.refund("GV3", 2000, "GV3-R1")  # the same request again: once
    assert sandbox.query("GV3").state == REFUNDED
    with pytest.raises(InvalidError, match="exceed"):
        sandbox.refund("GV3", 4000, "GV3-R2")
    with pytest.raises(NotificationMismatchError):
        sandbox.verify_notification(sandbox.bank.pay("GV3"), {}.get)


def test_the_days_bill_lists_payments_and_refunds_by_beijing_day(
    sandbox: SandboxProvider, clock: Clock
) -> None:
    sandbox.create(order("GV1", 5000))
    sandbox.bank.pay("GV1")
    sandbox.create(order("GV2", 2000))
    sandbox.bank.pay("GV2")
    sandbox.refund("GV2", 500, "GV2-R1")
    clock.now = NOON + 12 * 3600 + 60  # 00:01 next day, Beijing
    sandbox.create(order("GV3", 100))
    sandbox.bank.pay("GV3")
    with pytest.raises(ProviderError, match="not published"):
        sandbox.bill(DAY)
    sandbox.bank.write_bill(DAY)
    rows = sandbox.bill(DAY)
    assert [(r.out_trade_no, r.kind, r.amount_fen) for r in rows] == [
        ("GV1", "payment", 5000),
        ("GV2", "payment", 2000),
        ("GV2", "refund", 500),
    ]
    assert rows[2].refund_no == "GV2-R1"
    sandbox.bank.write_bill(DAY + dt.timedelta(days=1))
    assert [r.out_trade_no for r in sandbox.bill(DAY + dt.timedelta(days=1))] == ["GV3"]


def test_unknown_sandbox_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidError, match="dir"):
        make_provider("sandbox", {"dir": str(tmp_path)})
    with pytest.raises(InvalidError, match="provider must be one of"):
        make_provider("unionpay", {})
