"""A meter swap (换表, B06): a tenant's old meter closed and its balance moved to a new meter
of the same account. ``cloud.money.swap`` starts one; ``cloud.money.settlement.settle``
finishes it when the old meter's collector has settled it."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.models.base import Base, now_ts


class MeterSwap(Base):
    """One swap. ``status``: ``closing`` (the old meter's ``close_account`` is out),
    ``settled`` (the old meter settled; ``moved_micro_yuan`` sent to the new meter as a
    transfer-in, ``debt_owed_micro_yuan`` for the tenant to pay), ``rejected`` (the collector
    refused the close; ``reason``).

    ``final_energy_wh`` is a final register reading typed by hand (a dead meter the collector
    cannot read): the energy past the collector's last reading, priced at
    ``price_micro_yuan_per_kwh`` (the price when the swap started), is
    ``unmetered_charge_micro_yuan``, taken from what moves."""

    __tablename__ = "meter_swaps"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    old_meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    new_meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    settlement_id: Mapped[int | None] = mapped_column(ForeignKey("settlements.id"), index=True)
    transfer_in_id: Mapped[int | None] = mapped_column(ForeignKey("transfers_in.id"))
    status: Mapped[str] = mapped_column(String(16), default="closing")
    reason: Mapped[str | None] = mapped_column(String(500))
    final_energy_wh: Mapped[int | None]
    price_micro_yuan_per_kwh: Mapped[int | None]
    unmetered_energy_wh: Mapped[int | None]
    unmetered_charge_micro_yuan: Mapped[int | None]
    settled_balance_micro_yuan: Mapped[int | None]
    moved_micro_yuan: Mapped[int | None]
    debt_owed_micro_yuan: Mapped[int | None]
    note: Mapped[str] = mapped_column(String(500), default="")
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_ts: Mapped[int] = mapped_column(default=now_ts)
    settled_ts: Mapped[int | None]
