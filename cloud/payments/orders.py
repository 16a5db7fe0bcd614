"""Top-up orders: created → paid → crediting → credited (``cloud.payments.lifecycle``), and the
one place a provider's verified word changes an order.

Never lost, never twice:

* A notification is verified and applied in **one transaction** that first locks the order row
  (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite write transactions are ``BEGIN IMMEDIATE``,
  so they run one at a time). An order already past ``created``/``closed`` makes the
  notification a ``duplicate``: the same one ten times, or ten at once, credits once.
* Paid and crediting happen together: the sale (``cloud.money.sales.sell``, the cashier's own
  path: purchase number, collector command, result) is made in a savepoint inside that
  transaction, with ``method`` = the provider and the idempotency key ``order:<no>:<attempt>``.
  If the sale is refused (account closed meanwhile, hoarding cap), the order is still paid,
  recorded as ``credit_failed``, and retried or held; the money is never dropped.
* A retry uses the next attempt's key only after the previous sale was *rejected*, which is
  final (a late collector answer cannot revive it), so two sales can never both apply.
* Every notification is kept raw in ``payment_notifications`` with its verdict.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.db import Database
from cloud.errors import ConflictError, NotFoundError, RuleError, ServiceError
from cloud.models import APPLIED, REJECTED, Sale, now_ts
from cloud.models.payments import PaymentNotification, PaymentOrder
from cloud.money.checks import PROVIDER_METHODS, get_meter, open_account_of
from cloud.money.sales import sell
from cloud.payments import lifecycle as lc
from cloud.payments.amounts import micro_yuan_from_fen, yuan_text
from cloud.payments.errors import NotificationMismatchError, NotificationRejectedError
from cloud.payments.limits import check_amount_fen, limits
from cloud.payments.provider import (
    CLOSED,
    NotificationRequest,
    PayAction,
    PayRequest,
    Provider,
    Reply,
    TradeEvent,
)

log = logging.getLogger("gridvend.payments")
BEIJING = ZoneInfo("Asia/Shanghai")
MAX_ATTEMPTS = 3  # credit attempts before an order is held for staff
RETRY_AFTER_S = 60  # a failed credit is retried after 60 s, then 120 s (× the attempts so far)
MAX_BODY_CHARS = 20_000


def new_out_trade_no(now: int) -> str:
    """``GV`` + Beijing time to the second + 10 random digits (26 characters, ≤ 32 for both
    providers, only letters and digits)."""
    stamp = dt.datetime.fromtimestamp(now, BEIJING).strftime("%Y%m%d%H%M%S")
    return f"GV{stamp}{secrets.randbelow(10**10):010d}"


def create_order(
    session: Session, provider: str, meter_id: str, amount_fen: Any, now: int | None = None
) -> PaymentOrder:
    """A new order in ``created``, checked as the sale will be (prepaid meter, open account,
    the site's per-sale limit, hoarding cap), so a tenant is never asked to pay what cannot be
    credited."""
    stamp = now if now is not None else now_ts()
    fen = check_amount_fen(amount_fen)
    meter = get_meter(session, meter_id)
    if not meter.prepaid:
        raise ConflictError(f"meter {meter_id} is not prepaid; it takes no top-ups")
    account = open_account_of(session, meter)
    allowed = limits(session, meter)
    if fen > allowed.sale_limit_fen:
        raise RuleError(
            f"{yuan_text(fen)} yuan is over this site's limit of "
            f"{yuan_text(allowed.sale_limit_fen)} yuan per top-up",
            "amount_fen",
        )
    if allowed.cap_room_fen is not None and fen > allowed.cap_room_fen:
        raise RuleError(
            f"{yuan_text(fen)} yuan would pass the meter's hoarding cap; at most "
            f"{yuan_text(allowed.cap_room_fen)} yuan now",
            "amount_fen",
        )
    order = PaymentOrder(
        out_trade_no=new_out_trade_no(stamp),
        provider=provider,
        meter_id=meter_id,
        account_id=account.id,
        amount_fen=fen,
        state=lc.CREATED,
        attempts=0,
        refunded_fen=0,
        last_error="",
        created_ts=stamp,
    )
    session.add(order)
    session.flush()
    record(
        session,
        Actor(f"payment:{provider}"),
        "payment.order",
        "payment_order",
        order.out_trade_no,
        after={"meter": meter_id, "amount_fen": fen},
        now=stamp,
    )
    return order


def _lock(session: Session, out_trade_no: str) -> PaymentOrder | None:
    return session.scalars(
        select(PaymentOrder).where(PaymentOrder.out_trade_no == out_trade_no).with_for_update()
    ).first()


def _move(order: PaymentOrder, event: str) -> None:
    order.state = lc.next_state(order.state, event)


def credit(session: Session, order: PaymentOrder, now: int) -> None:
    """Sell the order's amount on its meter (attempt ``attempts + 1``) in a savepoint; a refusal
    leaves the order paid, as ``credit_failed``."""
    attempt = order.attempts + 1
    _move(order, "credit" if order.state == lc.PAID else "retry")
    order.attempts = attempt
    order.attempted_ts = now
    try:
        with session.begin_nested():
            sale, _ = sell(
                session,
                order.meter_id,
                micro_yuan_from_fen(order.amount_fen),
                order.provider,
                Actor(f"payment:{order.provider}"),
                idempotency_key=f"order:{order.out_trade_no}:{attempt}",
                now=now,
                methods=PROVIDER_METHODS,
            )
    except ServiceError as exc:
        _move(order, "failed")
        order.last_error = exc.message[:500]
        log.warning("order %s paid but not credited: %s", order.out_trade_no, exc.message)
        return
    order.sale_id = sale.id


def apply_event(session: Session, event: TradeEvent, now: int) -> str:
    """Apply a verified provider event (a notification or a query answer) to its order, which
    the caller's transaction has not touched yet. Returns ``accepted`` or ``duplicate``."""
    order = _lock(session, event.out_trade_no)
    if order is None or order.provider != event.provider:
        raise NotificationMismatchError(
            f"out_trade_no {event.out_trade_no!r} is not an order of ours", "out_trade_no"
        )
    if event.state == CLOSED and order.state == lc.CREATED:
        _move(order, "close")
        order.closed_ts = now
        return "accepted"
    if not event.is_paid or lc.is_paid(order.state):
        return "duplicate"
    if event.amount_fen != order.amount_fen:
        raise NotificationMismatchError(
            f"order {order.out_trade_no} is for {order.amount_fen} fen, not {event.amount_fen}",
            "amount",
        )
    clash = session.scalar(
        select(PaymentOrder.out_trade_no).where(
            PaymentOrder.provider == event.provider, PaymentOrder.trade_no == event.trade_no
        )
    )
    if clash is not None:
        raise NotificationMismatchError(
            f"trade {event.trade_no} already paid order {clash}", "trade_no"
        )
    _move(order, "pay")
    order.trade_no = event.trade_no
    order.paid_ts = int(event.occurred_at.timestamp()) if event.occurred_at else now
    record(
        session,
        Actor(f"payment:{order.provider}"),
        "payment.paid",
        "payment_order",
        order.out_trade_no,
        after={"trade_no": event.trade_no, "amount_fen": order.amount_fen},
        now=now,
    )
    credit(session, order, now)
    return "accepted"


def refresh(session: Session, order: PaymentOrder, now: int) -> PaymentOrder:
    """Follow the order's sale: applied → credited; rejected → credit_failed, then retried
    (up to ``MAX_ATTEMPTS``) or held for staff."""
    if order.state == lc.CREDITING and order.sale_id is not None:
        status = session.scalar(select(Sale.status).where(Sale.id == order.sale_id))
        if status == APPLIED:
            _move(order, "applied")
            order.credited_ts = now
        elif status == REJECTED:
            _move(order, "failed")
            order.last_error = str(
                session.scalar(select(Sale.reason).where(Sale.id == order.sale_id)) or "rejected"
            )[:500]
    if order.state == lc.CREDIT_FAILED:
        if order.attempts >= MAX_ATTEMPTS:
            _move(order, "hold")
        elif now - (order.attempted_ts or 0) >= RETRY_AFTER_S * order.attempts:
            credit(session, order, now)
    return order


def follow(session: Session, out_trade_no: str, now: int) -> PaymentOrder:
    """Lock the order and follow it to its sale's outcome (``refresh``)."""
    order = _lock(session, out_trade_no)
    if order is None:
        raise NotFoundError(f"no order {out_trade_no}", "out_trade_no")
    return refresh(session, order, now)


class Payments:
    """The providers of one cloud, over its database: what the web views and jobs call."""

    def __init__(
        self,
        db: Database,
        providers: Mapping[str, Provider],
        clock: Callable[[], float] | None = None,
    ) -> None:

        self.db = db
        self.providers = dict(providers)
        self.clock = clock or time.time

    def provider(self, name: str) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise NotFoundError(
                f"payment provider {name!r} is not configured", "provider"
            ) from None

    def start(
        self,
        provider: str,
        meter_id: str,
        amount_fen: Any,
        *,
        notify_url: str,
        return_url: str = "",
        client_ip: str = "127.0.0.1",
        subject: str = "电费充值",
    ) -> tuple[PaymentOrder, PayAction]:
        """Create the order (in a transaction of its own) and ask the provider where the tenant
        pays it."""
        self.provider(provider)
        now = int(self.clock())
        with self.db.session() as s:
            order = create_order(s, provider, meter_id, amount_fen, now)
        action = self.action(
            order,
            notify_url=notify_url,
            return_url=return_url,
            client_ip=client_ip,
            subject=subject,
        )
        return order, action

    def action(
        self,
        order: PaymentOrder,
        *,
        notify_url: str,
        return_url: str = "",
        client_ip: str = "127.0.0.1",
        subject: str = "电费充值",
    ) -> PayAction:
        """Ask the order's provider where the tenant pays it (``return_url`` may hold
        ``{out_trade_no}``). A caller that made the order in its own transaction (the tenant
        site) calls this itself."""
        return self.provider(order.provider).create(
            PayRequest(
                order.out_trade_no,
                order.amount_fen,
                f"{subject} {order.meter_id}",
                notify_url,
                return_url.format(out_trade_no=order.out_trade_no),
                client_ip,
            )
        )

    def notify(self, provider: str, request: NotificationRequest) -> Reply:
        """Handle one notification end to end; the reply is what the provider expects."""
        chosen = self.provider(provider)
        now = int(self.clock())
        try:
            with self.db.session() as s:

                def amount_of(no: str) -> int | None:
                    return s.scalar(
                        select(PaymentOrder.amount_fen).where(
                            PaymentOrder.out_trade_no == no, PaymentOrder.provider == provider
                        )
                    )

                event = chosen.verify_notification(request, amount_of)
                verdict = apply_event(s, event, now)
                s.add(self._logged(provider, request, verdict, now, event.out_trade_no))
        except NotificationRejectedError as exc:
            log.warning("%s notification rejected (%s): %s", provider, exc.code, exc.message)
            with self.db.session() as s:
                s.add(self._logged(provider, request, "rejected", now, None, exc))
            return chosen.reply_rejected(exc)
        return chosen.reply_ok()

    @staticmethod
    def _logged(
        provider: str,
        request: NotificationRequest,
        verdict: str,
        now: int,
        out_trade_no: str | None,
        error: ServiceError | None = None,
    ) -> PaymentNotification:
        return PaymentNotification(
            provider=provider,
            out_trade_no=out_trade_no,
            received_ts=now,
            verdict=verdict,
            error_code=error.code if error else "",
            detail=(error.message if error else "")[:500],
            headers={
                k: v
                for k, v in request.headers.items()
                if k.startswith("wechatpay-") or k == "content-type"
            },
            body=request.body[:MAX_BODY_CHARS].decode("utf-8", "replace"),
        )

    def status(self, out_trade_no: str) -> PaymentOrder:
        """The order, followed to its sale's outcome (what the result page polls), in a
        transaction of its own."""
        with self.db.session() as s:
            return follow(s, out_trade_no, int(self.clock()))

    def advance(self) -> int:
        """Follow every crediting or failed order (a job, every minute). Returns how many moved."""
        moved = 0
        with self.db.session() as s:
            for order in s.scalars(
                select(PaymentOrder)
                .where(PaymentOrder.state.in_((lc.CREDITING, lc.CREDIT_FAILED)))
                .with_for_update()
            ):
                before = order.state
                refresh(s, order, int(self.clock()))
                moved += order.state != before
        return moved

    def query_stuck(self, older_than_s: int = 5 * 60, close_after_s: int = 2 * 3600) -> int:
        """Ask the provider about orders still ``created`` after ``older_than_s`` (never guess):
        paid ones are applied like a notification, long-unpaid ones closed. An order the
        provider cannot answer about now (``ServiceError``: down, a system error) is logged and
        left for the next round; the others are still asked. Returns how many changed."""
        now = int(self.clock())
        with self.db.session(readonly=True) as s:
            stuck = list(
                s.execute(
                    select(
                        PaymentOrder.out_trade_no, PaymentOrder.provider, PaymentOrder.created_ts
                    )
                    .where(
                        PaymentOrder.state == lc.CREATED,
                        PaymentOrder.created_ts <= now - older_than_s,
                    )
                    .order_by(PaymentOrder.created_ts, PaymentOrder.id)
                )
            )
        changed = 0
        for no, provider, created in stuck:
            if provider not in self.providers:
                continue
            try:
                event = self.providers[provider].query(no)
                with self.db.session() as s:
                    if event.is_paid:
                        changed += apply_event(s, event, now) == "accepted"
                    elif now - created >= close_after_s:
                        order = _lock(s, no)
                        if order is not None and order.state == lc.CREATED:
                            _move(order, "close")
                            order.closed_ts = now
                            changed += 1
            except ServiceError as exc:
                log.warning("order %s: %s query not answered: %s", no, provider, exc.message)
        return changed

    def retry(self, out_trade_no: str, actor: Actor) -> PaymentOrder:
        """Credit a held (or failed) order again through the sale path, under the next
        attempt's key (staff, once the cause is gone: the cap raised, the account reopened).
        Its earlier sales were all rejected, so this one cannot be a second credit."""
        now = int(self.clock())
        with self.db.session() as s:
            order = _lock(s, out_trade_no)
            if order is None:
                raise NotFoundError(f"no order {out_trade_no}", "out_trade_no")
            if order.state not in (lc.HELD, lc.CREDIT_FAILED):
                raise lc.IllegalTransitionError(
                    f"an order that is {order.state} cannot take retry", "state"
                )
            record(s, actor, "payment.retry", "payment_order", order.out_trade_no,
                   before={"state": order.state, "attempts": order.attempts}, now=now)  # fmt: skip
            credit(s, order, now)
            return order

    def refund(self, out_trade_no: str, actor: Actor) -> PaymentOrder:
        """Give a failed or held order's money back through its provider (staff action), with a
        stable request number so a repeat refunds once."""
        now = int(self.clock())
        with self.db.session() as s:
            order = _lock(s, out_trade_no)
            if order is None:
                raise NotFoundError(f"no order {out_trade_no}", "out_trade_no")
            _move(order, "refund")
            provider = self.provider(order.provider)
            refund = getattr(provider, "refund", None)
            if refund is None:
                raise ConflictError(f"{order.provider} cannot refund from here")
            if order.provider == "wechat":
                refund(
                    order.out_trade_no, order.amount_fen, order.amount_fen, f"{order.out_trade_no}R"
                )
            else:
                refund(order.out_trade_no, order.amount_fen, f"{order.out_trade_no}R")
            _move(order, "refunded")
            order.refunded_fen = order.amount_fen
            order.refunded_ts = now
            record(
                s,
                actor,
                "payment.refund",
                "payment_order",
                order.out_trade_no,
                after={"refunded_fen": order.amount_fen},
                now=now,
            )
            return order
