"""Money records: input checks, idempotency digests, receipt numbers and the API shapes of
sales, refunds, reversals and transfers-in (``cloud.vending`` makes them)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import zoneinfo
from typing import Any

from sqlalchemy.orm import Session

from cloud.errors import InvalidError
from cloud.models import Meter, Refund, Reversal, Sale, TransferIn

METHODS = ("cash", "card", "alipay", "wechat", "unionpay", "bank", "other")
# The most one sale or refund may move: one million yuan.
MAX_AMOUNT_MICRO_YUAN = 1_000_000 * 1_000_000
MAX_KEY_LENGTH = 200


def check_amount(value: Any, field: str = "amount_micro_yuan") -> int:
    """An amount in integer micro-yuan, 1 … one million yuan."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidError(f"{field} must be an integer number of micro-yuan, got {value!r}", field)
    if value <= 0:
        raise InvalidError(f"{field} must be more than 0, got {value}", field)
    if value > MAX_AMOUNT_MICRO_YUAN:
        raise InvalidError(
            f"{field} {value} is over the limit of {MAX_AMOUNT_MICRO_YUAN} (one million yuan)",
            field,
        )
    return value


def check_method(value: Any) -> str:
    if value not in METHODS:
        raise InvalidError(f"method must be one of {', '.join(METHODS)}; got {value!r}", "method")
    return str(value)


def check_key(key: Any) -> str | None:
    """An idempotency key: 1–200 printable ASCII characters, or None."""
    if key is None:
        return None
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidError(
            f"Idempotency-Key must be 1–{MAX_KEY_LENGTH} printable characters",
            "Idempotency-Key",
        )
    if not key.isascii():
        raise InvalidError("Idempotency-Key must be ASCII", "Idempotency-Key")
    return key


def request_hash(payload: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of what was asked."""
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


@functools.lru_cache(maxsize=64)
def site_zone(tz_name: str | None) -> dt.tzinfo:
    """A site's time zone (cached per process: building one costs more than a sale's other
    arithmetic); an unknown or empty name falls back to UTC."""
    try:
        return zoneinfo.ZoneInfo(tz_name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def receipt_number(prefix: str, record_id: int, tz_name: str | None, now: int) -> str:
    """``S20260101-00000042``: prefix, the local date at the site (zone ``tz_name``) at
    ``now``, the record id."""
    day = dt.datetime.fromtimestamp(now, site_zone(tz_name)).strftime("%Y%m%d")
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


def sale_to_dict(sale: Sale) -> dict[str, Any]:
    """The API shape of a sale (also the printable receipt's content)."""
    return {
        **_base(sale),
        "account": sale.account_id,
        "method": sale.method,
        "receipt_no": sale.receipt_no,
        "purchase_no": sale.purchase_no,
        "operator_id": sale.operator_id,
    }


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
