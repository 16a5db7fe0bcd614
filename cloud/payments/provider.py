"""The one interface every payment provider implements, and the values that cross it.

Theory of operation. A tenant's top-up becomes an order with an ``out_trade_no`` (ours) and an
amount in fen. ``create`` turns it into a ``PayAction``: where to send the tenant's browser (a
redirect URL for Alipay's phone site, an ``h5_url`` for WeChat H5, the local pay page for the
sandbox). The provider later tells us the outcome by an asynchronous notification; the web
layer hands the raw request (headers, raw body) to ``verify_notification``, which checks the
signature exactly as that provider signs, then the business fields (our app, our merchant,
an order we know, the order's amount), and returns a ``TradeEvent`` or raises a
``NotificationRejectedError``. ``reply_ok``/``reply_rejected`` give the bytes the provider expects
back. ``query`` asks the provider about one order (for orders stuck in created, and for
reconciliation's provider-only rows); ``bill`` fetches a day's bill for reconciliation.

Nothing here touches the database: the order service (``cloud.payments.orders``) decides what
an event does. Outbound HTTP goes through an injected ``Transport`` so tests play the provider.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cloud.payments.errors import NotificationMismatchError

# What a notification or a query says about a trade, in our words.
PAID = "paid"  # money received: Alipay TRADE_SUCCESS/TRADE_FINISHED, WeChat SUCCESS
PENDING = "pending"  # created, not (yet) paid: WAIT_BUYER_PAY, NOTPAY, USERPAYING
CLOSED = "closed"  # will never be paid: TRADE_CLOSED, CLOSED, REVOKED, PAYERROR
REFUNDED = "refunded"  # paid, then (partly) refunded: WeChat REFUND
NOT_FOUND = "not_found"  # the provider has no such trade (Alipay: before the QR is scanned)
TRADE_STATES = (PAID, PENDING, CLOSED, REFUNDED, NOT_FOUND)


@dataclass(frozen=True)
class PayRequest:
    """What the order service asks a provider to collect."""

    out_trade_no: str
    amount_fen: int
    subject: str
    notify_url: str
    return_url: str = ""
    client_ip: str = "127.0.0.1"  # WeChat H5 needs the payer's IP
    timeout_minutes: int = 30


@dataclass(frozen=True)
class PayAction:
    """Where the tenant's browser goes next. ``kind``: ``redirect`` (GET ``url``), ``form``
    (auto-submit ``fields`` to ``url``) or ``qr`` (show ``url`` as a QR code)."""

    kind: str
    url: str
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NotificationRequest:
    """A notification as it arrived: header names lower-cased, the body's raw bytes (WeChat
    signs the bytes; Alipay's form is parsed from them, once)."""

    headers: Mapping[str, str]
    body: bytes

    @classmethod
    def of(cls, headers: Mapping[str, str], body: bytes) -> NotificationRequest:
        return cls({k.lower(): v for k, v in headers.items()}, body)


@dataclass(frozen=True)
class TradeEvent:
    """A verified statement by a provider about one of our trades."""

    provider: str
    out_trade_no: str
    trade_no: str  # the provider's own number (unique per provider)
    amount_fen: int
    state: str  # one of TRADE_STATES
    occurred_at: dt.datetime | None = None  # aware, when the provider says when
    raw: Mapping[str, object] = field(default_factory=dict)  # the verified fields, for the record

    @property
    def is_paid(self) -> bool:
        return self.state == PAID


@dataclass(frozen=True)
class Reply:
    """The HTTP answer a provider expects to a notification."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class BillRow:
    """One line of a provider's daily bill, normalised."""

    provider: str
    out_trade_no: str
    trade_no: str
    kind: str  # "payment" or "refund"
    amount_fen: int  # positive for both kinds
    at: str  # the provider's local (Beijing) time as printed, "YYYY-MM-DD HH:MM:SS"
    refund_no: str = ""


# The order service's answer to "what amount, in fen, is this order of ours?": None when the
# out_trade_no is not ours. Providers call it so a notification is checked against the order.
OrderAmount = Callable[[str], "int | None"]


def check_order(event: TradeEvent, order_amount_fen: OrderAmount) -> TradeEvent:
    """The business checks every provider asks for: the order is ours and the amount is the
    order's, to the fen. Raises ``NotificationMismatchError``."""
    expected = order_amount_fen(event.out_trade_no)
    if expected is None:
        raise NotificationMismatchError(
            f"out_trade_no {event.out_trade_no!r} is not an order of ours", "out_trade_no"
        )
    if event.amount_fen != expected:
        raise NotificationMismatchError(
            f"order {event.out_trade_no} is for {expected} fen, the notification says "
            f"{event.amount_fen}",
            "amount",
        )
    return event


class Provider(Protocol):
    """A payment provider: sandbox, alipay, wechat. ``name`` is also the sale's ``method``."""

    name: str

    def create(self, request: PayRequest) -> PayAction: ...

    def verify_notification(
        self, request: NotificationRequest, order_amount_fen: OrderAmount
    ) -> TradeEvent: ...

    def reply_ok(self) -> Reply: ...

    def reply_rejected(self, error: Exception) -> Reply: ...

    def query(self, out_trade_no: str) -> TradeEvent: ...

    def bill(self, day: dt.date) -> list[BillRow]: ...
