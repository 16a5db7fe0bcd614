"""Self-service payment (F42) and reconciliation (B04): top-up orders, the raw notifications
they received, and the daily reconciliation runs with their cases.

An order's amount is integer fen (what the provider moves); the sale it becomes is micro-yuan
(``amount_fen * 10_000``). ``(provider, trade_no)`` is unique: one provider trade pays one
order. States: ``cloud.payments.lifecycle``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloud.models.base import Base, now_ts


class PaymentOrder(Base):
    __tablename__ = "payment_orders"
    __table_args__ = (UniqueConstraint("provider", "trade_no"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    out_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    provider: Mapped[str] = mapped_column(String(16), index=True)
    trade_no: Mapped[str | None] = mapped_column(String(64))
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount_fen: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), index=True, default="created")
    attempts: Mapped[int] = mapped_column(default=0)  # credit attempts (sales) so far
    sale_id: Mapped[int | None] = mapped_column(ForeignKey("sales.id"))
    refunded_fen: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_ts: Mapped[int] = mapped_column(default=now_ts, index=True)
    paid_ts: Mapped[int | None] = mapped_column(index=True)
    attempted_ts: Mapped[int | None]  # the last credit attempt (retries back off from it)
    credited_ts: Mapped[int | None]
    closed_ts: Mapped[int | None]
    refunded_ts: Mapped[int | None]  # when the money went back (reconciled on that day's bill)


class PaymentNotification(Base):
    """Every notification as received (raw, for the record and for disputes), with what we
    made of it: ``accepted`` (first time), ``duplicate``, or ``rejected`` (with the code)."""

    __tablename__ = "payment_notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    out_trade_no: Mapped[str | None] = mapped_column(String(32), index=True)
    received_ts: Mapped[int] = mapped_column(default=now_ts)
    verdict: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str] = mapped_column(String(40), default="")
    detail: Mapped[str] = mapped_column(String(500), default="")
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    body: Mapped[str] = mapped_column(Text, default="")


class ReconciliationRun(Base):
    __tablename__ = "reconciliation_runs"
    __table_args__ = (UniqueConstraint("provider", "bill_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    bill_date: Mapped[str] = mapped_column(String(10))  # yyyy-mm-dd, the provider's (Beijing) day
    run_ts: Mapped[int] = mapped_column(default=now_ts)
    bill_rows: Mapped[int] = mapped_column(default=0)
    bill_paid_fen: Mapped[int] = mapped_column(default=0)
    bill_refunded_fen: Mapped[int] = mapped_column(default=0)
    orders: Mapped[int] = mapped_column(default=0)
    cases: Mapped[int] = mapped_column(default=0)


class ReconciliationCase(Base):
    __tablename__ = "reconciliation_cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    provider: Mapped[str] = mapped_column(String(16))
    out_trade_no: Mapped[str] = mapped_column(String(32), index=True)
    bill_amount_fen: Mapped[int | None]
    local_amount_fen: Mapped[int | None]
    detail: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved
    resolution: Mapped[str] = mapped_column(String(500), default="")
    resolved_ts: Mapped[int | None]
