"""Receipts of money documents (小票 for sales, A5 slips for refunds and settlements): what the
counter knew when the document was made, and how often it was printed. The document number is
the record's own ``receipt_no`` (``cloud.money.records.receipt_number``), never reused."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloud.models.base import Base, now_ts


class Receipt(Base):
    """One money document's receipt: ``kind`` (``sale``, ``refund``, ``reversal``,
    ``settlement``, ``transfer_in``) + ``record_id`` name the record. Balances are the ones the
    counter showed (mirror balance with credits and debits still on their way); ``prints``
    counts every print, so a print after the first is a reprint (补打)."""

    __tablename__ = "receipts"
    __table_args__ = (UniqueConstraint("kind", "record_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[int] = mapped_column(BigInteger)
    meter_id: Mapped[str | None] = mapped_column(String(64))
    balance_before_micro_yuan: Mapped[int | None] = mapped_column(BigInteger)
    balance_after_micro_yuan: Mapped[int | None] = mapped_column(BigInteger)
    purchase_count: Mapped[int | None] = mapped_column(BigInteger)
    tendered_micro_yuan: Mapped[int | None] = mapped_column(BigInteger)
    change_micro_yuan: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(500), default="", server_default="")
    prints: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_printed_ts: Mapped[int | None] = mapped_column(BigInteger)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_ts: Mapped[int] = mapped_column(BigInteger, default=now_ts)
