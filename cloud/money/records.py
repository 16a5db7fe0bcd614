"""Money records: receipt numbers and the API shapes of sales, refunds, reversals and
transfers-in (``cloud.money.sales``, ``refunds`` and ``reversals`` make them)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.localtime import zone
from cloud.models import APPLIED, REJECTED, Meter, Refund, Reversal, Sale, TransferIn


def receipt_number(prefix: str, record_id: int, tz_name: str | None, now: int) -> str:
    """``S20260101-00000042``: prefix, the local date at the site (zone ``tz_name``) at
    ``now``, the record id."""
    day = dt.datetime.fromtimestamp(now, zone(tz_name)).strftime("%Y%m%d")
    return f"{prefix}{day}-{record_id:08d}"


def receipt_no(session: Session, prefix: str, record_id: int, meter: Meter, now: int) -> str:
    """``receipt_number`` for a record of ``meter`` (its site's time zone)."""
    tz_name = meter.gateway.site.timezone if meter.gateway is not None else "UTC"
    return receipt_number(prefix, record_id, tz_name, now)


def _base(item: Any) -> dict[str, Any]:
    return {
        "id": item.id,
        "meter": item.meter_id,
        "amount_micro_yuan": item.amount_micro_yuan,
        "status": item.status,
        "reason": item.reason,
        "command_id": item.command_id,
        "created_ts": item.created_ts,
        "resolved_ts": item.resolved_ts,
    }


def yuan(micro_yuan: int) -> str:
    """Micro-yuan as yuan for messages, exactly: ``12500000`` → ``12.5``."""
    sign = "-" if micro_yuan < 0 else ""
    whole, frac = divmod(abs(micro_yuan), 1_000_000)
    text = f"{whole:,}"
    return f"{sign}{text}.{frac:06d}".rstrip("0").rstrip(".") if frac else f"{sign}{text}"


def reversal_ref(item: Reversal | None) -> dict[str, Any] | None:
    """How a sale shows its reversal (the one not rejected, if any)."""
    if item is None:
        return None
    return {
        "id": item.id,
        "status": item.status,
        "receipt_no": item.receipt_no,
        "resolved_ts": item.resolved_ts,
    }


def sale_to_dict(sale: Sale, reversal: Reversal | None = None) -> dict[str, Any]:
    """The API shape of a sale (also the printable receipt's content). ``reversal``: the sale's
    reversal that is not rejected, if any (``reversals_of`` finds them): a reversed sale stays
    ``applied`` (its credit did reach the meter) and says ``reversed`` once the money is back."""
    return {
        **_base(sale),
        "account": sale.account_id,
        "method": sale.method,
        "receipt_no": sale.receipt_no,
        "purchase_no": sale.purchase_no,
        "operator_id": sale.operator_id,
        "reversed": reversal is not None and reversal.status == APPLIED,
        "reversal": reversal_ref(reversal),
    }


def reversals_of(session: Session, sale_ids: list[int]) -> dict[int, Reversal]:
    """Sale id → its reversal that is not rejected (a sale has at most one), in one query."""
    if not sale_ids:
        return {}
    rows = session.scalars(
        select(Reversal).where(Reversal.sale_id.in_(sale_ids), Reversal.status != REJECTED)
    )
    return {r.sale_id: r for r in rows}


def refund_to_dict(item: Refund) -> dict[str, Any]:
    return {
        **_base(item),
        "account": item.account_id,
        "method": item.method,
        "receipt_no": item.receipt_no,
        "operator_id": item.operator_id,
    }


def reversal_to_dict(item: Reversal) -> dict[str, Any]:
    return {
        **_base(item),
        "sale": item.sale_id,
        "receipt_no": item.receipt_no,
        "note": item.note,
        "operator_id": item.operator_id,
    }


def transfer_to_dict(item: TransferIn) -> dict[str, Any]:
    return {**_base(item), "account": item.account_id, "source": item.source}
