"""Customers, accounts and every movement of money: sales, refunds, reversals, transfers-in and
close-account settlements. Each movement is ``pending`` until the collector's result says
``applied`` (counted in the meter's ledger mirror) or ``rejected`` (no money moved)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloud.models.base import Base, now_ts

PENDING, APPLIED, REJECTED = "pending", "applied", "rejected"


class Customer(Base):
    """A tenant."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    id_number: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(String(1000), default="")
    created_ts: Mapped[int] = mapped_column(default=now_ts)


class Account(Base):
    """One tenant's account at a site, with one or more meters (F14). Status: ``open`` →
    ``closing`` (close commands sent) → ``closed`` (every meter settled)."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_ts: Mapped[int] = mapped_column(default=now_ts)
    closed_ts: Mapped[int | None]
    note: Mapped[str] = mapped_column(String(1000), default="")

    customer: Mapped[Customer] = relationship()
    links: Mapped[list[AccountMeter]] = relationship(
        back_populates="account", order_by="AccountMeter.id"
    )


class AccountMeter(Base):
    """A meter's membership of an account; ``removed_ts`` is set when it is settled at close."""

    __tablename__ = "account_meters"
    __table_args__ = (UniqueConstraint("account_id", "meter_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    added_ts: Mapped[int] = mapped_column(default=now_ts)
    removed_ts: Mapped[int | None]

    account: Mapped[Account] = relationship(back_populates="links")


class Sale(Base):
    """Credit sold to a meter (F20). ``purchase_no`` is the meter's next purchase number (F39);
    ``idempotency_key`` + ``request_hash`` make a retried request return the same sale."""

    __tablename__ = "sales"
    __table_args__ = (
        UniqueConstraint("meter_id", "purchase_no"),
        # The hoarding-cap sum of a sale reads only the meter's pending credits (0005).
        Index(
            "ix_sales_pending_meter",
            "meter_id",
            "amount_micro_yuan",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount_micro_yuan: Mapped[int]
    method: Mapped[str] = mapped_column(String(32))
    purchase_no: Mapped[int]
    receipt_no: Mapped[str | None] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    reason: Mapped[str | None] = mapped_column(String(500))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    command_id: Mapped[int | None]
    created_ts: Mapped[int] = mapped_column(default=now_ts, index=True)
    resolved_ts: Mapped[int | None]


class Refund(Base):
    """Credit taken back from a meter and paid to the tenant (F22, 退电). Two-phase: the money
    counts as returned only when the edge confirms it took the credit away."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount_micro_yuan: Mapped[int]
    method: Mapped[str] = mapped_column(String(32), default="cash")
    receipt_no: Mapped[str | None] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    reason: Mapped[str | None] = mapped_column(String(500))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    command_id: Mapped[int | None]
    created_ts: Mapped[int] = mapped_column(default=now_ts, index=True)
    resolved_ts: Mapped[int | None]


class Reversal(Base):
    """Correction (冲正, F24) of a mistaken sale: the edge takes that purchase back."""

    __tablename__ = "reversals"

    id: Mapped[int] = mapped_column(primary_key=True)
    sale_id: Mapped[int] = mapped_column(ForeignKey("sales.id"), index=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    amount_micro_yuan: Mapped[int]
    receipt_no: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    reason: Mapped[str | None] = mapped_column(String(500))
    note: Mapped[str] = mapped_column(String(500), default="")
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    command_id: Mapped[int | None]
    created_ts: Mapped[int] = mapped_column(default=now_ts, index=True)
    resolved_ts: Mapped[int | None]

    sale: Mapped[Sale] = relationship()


class TransferIn(Base):
    """An opening balance moved from a tenant's old meter (F14)."""

    __tablename__ = "transfers_in"
    __table_args__ = (
        Index(
            "ix_transfers_in_pending_meter",
            "meter_id",
            "amount_micro_yuan",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount_micro_yuan: Mapped[int]
    source: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    reason: Mapped[str | None] = mapped_column(String(500))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    command_id: Mapped[int | None]
    created_ts: Mapped[int] = mapped_column(default=now_ts)
    resolved_ts: Mapped[int | None]


class Settlement(Base):
    """The final settlement of one meter at account close (F16). When the edge confirms the
    close: ``balance_micro_yuan`` is the mirror balance settled; a positive one is credit
    refunded to the tenant (``refund_due_micro_yuan``, a settlement refund in the ledger), a
    negative one is debt the tenant owes (``debt_owed_micro_yuan``, a settlement credit)."""

    __tablename__ = "settlements"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    reason: Mapped[str | None] = mapped_column(String(500))
    balance_micro_yuan: Mapped[int | None]
    refund_due_micro_yuan: Mapped[int | None]
    debt_owed_micro_yuan: Mapped[int | None]
    edge_balance_micro_yuan: Mapped[int | None]
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    command_id: Mapped[int | None]
    created_ts: Mapped[int] = mapped_column(default=now_ts)
    resolved_ts: Mapped[int | None]
