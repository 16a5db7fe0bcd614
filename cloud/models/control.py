"""Commands to collectors and their lifecycle (B03): ``pending`` → ``sent`` → ``applied`` |
``rejected``, then ``applied`` → ``verified`` by a later reading. The transitions live in
``cloud.control.commands``; this is the row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.models.base import Base, BigId, now_ts


class CommandBatch(Base):
    """A batch operation (F18) over a selection of meters or all of them."""

    __tablename__ = "command_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    op: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    selection: Mapped[dict[str, Any]] = mapped_column(default=dict)
    count: Mapped[int] = mapped_column(default=0)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_ts: Mapped[int] = mapped_column(default=now_ts)


class Command(Base):
    """One ``cmd`` message (docs/protocol.md) and everything that happened to it.

    ``ref_kind``/``ref_id`` name the money record (sale, refund, reversal, transfer_in,
    settlement) whose status the result decides. ``action`` is the office's name for it
    (``trip``, ``dispatch_tariff``, …) where it differs from the wire ``op``."""

    __tablename__ = "commands"
    __table_args__ = (
        Index("ix_commands_gateway_id_status", "gateway_id", "status"),
        Index("ix_commands_meter_id_status", "meter_id", "status"),
        Index("ix_commands_ref", "ref_kind", "ref_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"))
    meter_id: Mapped[str | None] = mapped_column(ForeignKey("meters.id"))
    op: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    ref_kind: Mapped[str | None] = mapped_column(String(16))
    ref_id: Mapped[int | None]
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("command_batches.id"), index=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_ts: Mapped[int] = mapped_column(default=now_ts)
    sent_ts: Mapped[int | None]
    last_sent_ts: Mapped[int | None]
    send_count: Mapped[int] = mapped_column(default=0)
    result_ts: Mapped[int | None]
    result_status: Mapped[str | None] = mapped_column(String(16))
    result_reason: Mapped[str | None] = mapped_column(String(500))
    result_balance_micro_yuan: Mapped[int | None]
    verified_ts: Mapped[int | None]
