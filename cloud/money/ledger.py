"""The ledger mirror of each meter (docs/architecture.md "Where the truth lives").

``balance == credits − refunds − charges``, to the micro-yuan, always. The only code that moves
a meter's totals is here: a credit (an applied sale, transfer-in or settlement credit), a refund
(an applied refund, reversal or settlement refund) and a charge (a reading's
``charge_micro_yuan``). ``recompute`` rebuilds the totals from the rows themselves, so a test or
an audit can prove the mirror equals the sum of its parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Mapped, Session

from cloud.errors import LedgerError
from cloud.models import (
    APPLIED,
    Meter,
    Reading,
    Refund,
    Reversal,
    Sale,
    Settlement,
    TransferIn,
)


class Totalled(Protocol):
    """A meter's ledger as the uplink sees it: a ``Meter`` row, or the plain mirror row a batch
    of readings uses (``cloud.uplink.batch.MeterMirror``)."""

    credits_micro_yuan: int
    refunds_micro_yuan: int
    charges_micro_yuan: int
    balance_micro_yuan: int
    money_result_id: int | None


def _check_amount(amount_micro_yuan: int) -> None:
    if not isinstance(amount_micro_yuan, int) or isinstance(amount_micro_yuan, bool):
        raise LedgerError(f"ledger amounts are integer micro-yuan, got {amount_micro_yuan!r}")
    if amount_micro_yuan < 0:
        raise LedgerError(f"ledger amounts are ≥ 0, got {amount_micro_yuan}")


def credit(meter: Meter, amount_micro_yuan: int) -> None:
    """Money onto the meter: an applied sale, transfer-in or settlement credit."""
    _check_amount(amount_micro_yuan)
    meter.credits_micro_yuan += amount_micro_yuan
    meter.balance_micro_yuan += amount_micro_yuan


def refund(meter: Meter, amount_micro_yuan: int) -> None:
    """Money off the meter back to the tenant: an applied refund, reversal or settlement refund."""
    _check_amount(amount_micro_yuan)
    meter.refunds_micro_yuan += amount_micro_yuan
    meter.balance_micro_yuan -= amount_micro_yuan


def charge(meter: Totalled, amount_micro_yuan: int) -> None:
    """Consumption rated by the edge (a reading's ``charge_micro_yuan``)."""
    _check_amount(amount_micro_yuan)
    meter.charges_micro_yuan += amount_micro_yuan
    meter.balance_micro_yuan -= amount_micro_yuan


def identity_holds(meter: Meter) -> bool:
    """``balance == credits − refunds − charges`` on the mirror."""
    return meter.balance_micro_yuan == (
        meter.credits_micro_yuan - meter.refunds_micro_yuan - meter.charges_micro_yuan
    )


@dataclass(frozen=True)
class Totals:
    """A meter's ledger rebuilt from its rows."""

    credits_micro_yuan: int
    refunds_micro_yuan: int
    charges_micro_yuan: int

    @property
    def balance_micro_yuan(self) -> int:
        return self.credits_micro_yuan - self.refunds_micro_yuan - self.charges_micro_yuan


def _sum(
    session: Session, column: Mapped[int] | Mapped[int | None], *where: ColumnElement[bool]
) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(column), 0)).where(*where)) or 0)


def recompute(session: Session, meter_id: str) -> Totals:
    """The meter's totals from the money and reading rows (archived charges included)."""
    sales = _sum(session, Sale.amount_micro_yuan, Sale.meter_id == meter_id, Sale.status == APPLIED)
    transfers = _sum(
        session,
        TransferIn.amount_micro_yuan,
        TransferIn.meter_id == meter_id,
        TransferIn.status == APPLIED,
    )
    settle_debt = _sum(
        session,
        Settlement.debt_owed_micro_yuan,
        Settlement.meter_id == meter_id,
        Settlement.status == APPLIED,
    )
    refunds = _sum(
        session, Refund.amount_micro_yuan, Refund.meter_id == meter_id, Refund.status == APPLIED
    )
    reversals = _sum(
        session,
        Reversal.amount_micro_yuan,
        Reversal.meter_id == meter_id,
        Reversal.status == APPLIED,
    )
    settle_refund = _sum(
        session,
        Settlement.refund_due_micro_yuan,
        Settlement.meter_id == meter_id,
        Settlement.status == APPLIED,
    )
    readings = _sum(session, Reading.charge_micro_yuan, Reading.meter_id == meter_id)
    meter = session.get(Meter, meter_id)
    archived = meter.archived_charges_micro_yuan if meter is not None else 0
    return Totals(
        credits_micro_yuan=sales + transfers + settle_debt,
        refunds_micro_yuan=refunds + reversals + settle_refund,
        charges_micro_yuan=readings + archived,
    )


def verify(session: Session, meter_id: str) -> Totals:
    """Rebuild the totals and check the mirror equals them and keeps its identity; raises
    ``LedgerError`` naming the difference."""
    totals = recompute(session, meter_id)
    meter = session.get(Meter, meter_id)
    if meter is None:
        raise LedgerError(f"meter {meter_id!r} does not exist")
    mirror = (
        meter.credits_micro_yuan,
        meter.refunds_micro_yuan,
        meter.charges_micro_yuan,
        meter.balance_micro_yuan,
    )
    rows = (
        totals.credits_micro_yuan,
        totals.refunds_micro_yuan,
        totals.charges_micro_yuan,
        totals.balance_micro_yuan,
    )
    if mirror != rows or not identity_holds(meter):
        raise LedgerError(
            f"meter {meter_id}: mirror (credits, refunds, charges, balance) = {mirror}, "
            f"rows say {rows}"
        )
    return totals
