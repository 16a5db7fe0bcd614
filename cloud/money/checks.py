"""The checks every money movement makes first: amounts, payment methods, idempotency keys
and their request digests, the meter and its open account, and debits still pending."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud import values
from cloud.errors import ConflictError, IdempotencyConflict, InvalidError, NotFoundError
from cloud.models import (
    PENDING,
    Account,
    Meter,
    Refund,
    Reversal,
    Sale,
)

# How the tenant paid, as a cashier records it at the till or through the REST API.
CASHIER_METHODS = ("cash", "card", "alipay", "wechat", "unionpay", "bank", "other")
# What a payment provider records for its own verified payments (cloud.payments: the method is
# the provider's name). "sandbox", the offline provider of the demo and the tests
# (cloud.payments.sandbox), is only ever a provider's: a cashier cannot choose it.
PROVIDER_METHODS = ("alipay", "wechat", "sandbox")
# Every method a record may carry (lists, filters, exports).
METHODS = CASHIER_METHODS + tuple(m for m in PROVIDER_METHODS if m not in CASHIER_METHODS)


# The most one sale or refund may move, whatever a site allows: one million yuan (a site's own
# per-sale limit, out of the box 10,000 yuan, is checked by the sale: cloud.park.defaults).
MAX_AMOUNT_MICRO_YUAN = values.MAX_AMOUNT_MICRO_YUAN


MAX_KEY_LENGTH = 200
_KEY = re.compile("^[!-~](?:[ -~]*[!-~])?$")


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


def check_method(value: Any, methods: tuple[str, ...] = CASHIER_METHODS) -> str:
    """A payment method among ``methods`` (a cashier's by default; the payment providers pass
    ``PROVIDER_METHODS``)."""
    if value not in methods:
        raise InvalidError(f"method must be one of {', '.join(methods)}; got {value!r}", "method")
    return str(value)


def check_key(key: Any) -> str | None:
    """An idempotency key: 1–200 printable ASCII characters, or None."""
    if key is None:
        return None
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH or not _KEY.match(key):
        raise InvalidError(
            f"Idempotency-Key must be 1–{MAX_KEY_LENGTH} printable ASCII characters with no "
            "leading or trailing space",
            "Idempotency-Key",
        )
    return key


def request_hash(payload: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of what was asked."""
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def get_meter(session: Session, meter_id: str, lock: bool = False) -> Meter:
    meter = session.get(Meter, meter_id, with_for_update=lock or None)
    if meter is None:
        raise NotFoundError(f"meter {meter_id!r} does not exist")
    return meter


def open_account_of(session: Session, meter: Meter) -> Account:
    """The meter's open account; ``ConflictError`` if it has none."""
    account = session.get(Account, meter.account_id) if meter.account_id is not None else None
    if account is None or account.status != "open":
        raise ConflictError(
            f"meter {meter.id} has no open account; open one (POST /api/v1/accounts) first"
        )
    return account


def pending_debits(session: Session, meter_id: str) -> int:
    """Refunds and reversals issued but not yet confirmed by the edge."""
    refunds = session.scalar(
        select(func.coalesce(func.sum(Refund.amount_micro_yuan), 0)).where(
            Refund.meter_id == meter_id, Refund.status == PENDING
        )
    )
    reversals = session.scalar(
        select(func.coalesce(func.sum(Reversal.amount_micro_yuan), 0)).where(
            Reversal.meter_id == meter_id, Reversal.status == PENDING
        )
    )
    return int(refunds or 0) + int(reversals or 0)


def check_replay(existing: Sale | Refund, digest: str, key: str) -> None:
    if existing.request_hash != digest:
        raise IdempotencyConflict(
            f"Idempotency-Key {key!r} was used for a different request "
            f"({type(existing).__name__.lower()} {existing.id}); use a new key for a new request",
            "Idempotency-Key",
        )
