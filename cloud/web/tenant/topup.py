"""Top-up from the phone (F42): an amount (a preset or the tenant's own, within the meter's
limits: ``cloud.payments.limits``) and a provider → the order (``cloud.payments.orders``) →
the provider's pay page → the result page, which follows the order live: paid → credited on
the meter → power on.

Inside WeChat's browser Alipay's app link (``alipays://``) is blocked, and WeChat Pay's H5 page
does not open inside Alipay's: instead of sending the tenant into a dead end, the page says to
open the site in the phone's browser. No pop-up windows anywhere: in-app browsers block them.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from cloud.errors import ConflictError, InvalidError
from cloud.models import Meter, PaymentOrder
from cloud.payments import lifecycle as lc
from cloud.payments import limits as top_up_limits
from cloud.payments.amounts import fen_from_yuan_text
from cloud.payments.errors import PaymentError
from cloud.payments.orders import create_order
from cloud.web import pay
from cloud.web.office.formatting import money
from cloud.web.office.forms import Form
from cloud.web.tenant.security import db, page

PRESETS_YUAN = (20, 50, 100, 200, 500)


def providers() -> list[tuple[str, Any]]:
    """The configured providers, each with its label."""
    return [(name, pay.label(name)) for name in pay.payments().providers]


def in_app_browser() -> str | None:
    """``wechat`` or ``alipay`` when the page is open inside that app's browser."""
    agent = request.headers.get("User-Agent", "")
    if "MicroMessenger" in agent:
        return "wechat"
    if "AlipayClient" in agent:
        return "alipay"
    return None


def blocked(provider: str) -> bool:
    """The provider's pay page cannot open in this in-app browser."""
    app = in_app_browser()
    return (provider == "alipay" and app == "wechat") or (provider == "wechat" and app == "alipay")


def yuan_text(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _render(meter: Meter, form: Form | None, allowed: top_up_limits.Limits, status: int) -> Any:
    presets = [y for y in PRESETS_YUAN if allowed.min_fen <= y * 100 <= allowed.max_fen]
    return (
        render_template(
            "tenant/topup.html",
            meter=meter,
            form=form,
            limits=allowed,
            presets=presets,
            providers=providers(),
            min_text=yuan_text(allowed.min_fen),
            max_text=yuan_text(max(allowed.max_fen, 0)),
            app=in_app_browser(),
        ),
        status,
    )


def _amount_fen(form: Form) -> int | None:
    """The amount chosen, in fen: a preset, or "other" and the amount typed (plain yuan with at
    most two decimals, as the providers write it: ``amounts.fen_from_yuan_text``)."""
    choice = form.value("preset")
    if choice not in ("", "other"):
        if not choice.isdigit() or int(choice) not in PRESETS_YUAN:
            form.fail("preset", _("Choose one of the options."))
            return None
        return int(choice) * 100
    typed = form.value("amount").replace(",", "")
    if not typed:
        form.fail("amount", _("This field is required."))
        return None
    try:
        return fen_from_yuan_text(typed, "amount")
    except InvalidError:
        form.fail("amount", _("Enter an amount in yuan, like 12.50."))
        return None


@page("/m/<meter_id>/topup", "meter", methods=("GET", "POST"))
def topup(meter_id: str) -> Any:
    meter: Meter = g.meter
    allowed = top_up_limits.limits(db(), meter)
    if request.method == "GET":
        return _render(meter, None, allowed, 200)
    form = Form()
    fen = _amount_fen(form)
    provider = form.choice("provider", [name for name, _label in providers()])
    if fen is not None and not allowed.min_fen <= fen <= allowed.max_fen:
        form.fail(
            "amount",
            _(
                "Enter an amount from %(low)s to %(high)s yuan.",
                low=yuan_text(allowed.min_fen),
                high=yuan_text(max(allowed.max_fen, 0)),
            ),
        )
    if not form.ok:
        return _render(meter, form, allowed, 422)
    try:
        # The provider's action in the order's savepoint: an order it could not start (WeChat's
        # H5 order is a call to WeChat) is not kept.
        with db().begin_nested():
            order = create_order(db(), provider, meter.id, fen)
            action = pay.payments().action(
                order,
                notify_url=pay.notify_url(provider),
                return_url=pay.public_url(url_for("tenant.order", out_trade_no=order.out_trade_no)),
                client_ip=request.remote_addr or "127.0.0.1",
            )
    except (InvalidError, ConflictError, PaymentError) as exc:
        # The meter changed since the form was shown (a sale meanwhile, the account closed),
        # or the provider could not be reached.
        form.fail("amount", _("This amount cannot be topped up now: %(why)s", why=exc.message))
        status = 502 if isinstance(exc, PaymentError) else 422
        return _render(meter, form, top_up_limits.limits(db(), meter), status)
    if blocked(provider) or action.kind != "redirect":
        return render_template(
            "tenant/pay.html", order=order, action=action, blocked=blocked(provider)
        )
    return redirect(action.url, code=303)


@page("/orders/<out_trade_no>", "order")
def order(out_trade_no: str) -> Any:
    found: PaymentOrder = g.order
    return render_template("tenant/order.html", order=found, status=order_status_of(found))


@page("/orders/<out_trade_no>/status", "order")
def order_status(out_trade_no: str) -> Any:
    """The result page's live data (JSON; the page's script polls it)."""
    followed = pay.payments().status(out_trade_no)  # a write transaction of its own
    return jsonify(order_status_of(followed))


def order_status_of(order: PaymentOrder) -> dict[str, Any]:
    """Where an order is: its steps, the meter's balance and relay now, and the words."""
    database = current_app.extensions["gridvend.db"]
    with database.session(readonly=True) as s:  # after the order was followed, not before
        meter = s.get(Meter, order.meter_id)
        balance = meter.balance_micro_yuan if meter is not None else 0
        relay = meter.relay if meter is not None else "unknown"
    paid = lc.is_paid(order.state)
    credited = order.state == lc.CREDITED
    trouble = order.state in (lc.CREDIT_FAILED, lc.HELD, lc.REFUNDING, lc.REFUNDED)
    words = {
        lc.CREATED: _("Waiting for the payment."),
        lc.CLOSED: _("The order was closed without payment."),
        lc.PAID: _("Paid. Crediting the meter…"),
        lc.CREDITING: _("Paid. Crediting the meter…"),
        lc.CREDITED: _("Credited on the meter."),
        lc.CREDIT_FAILED: _("Paid, but the meter has not taken the credit yet; retrying."),
        lc.HELD: _("Paid; the office will credit or refund this payment."),
        lc.REFUNDING: _("The payment is being refunded."),
        lc.REFUNDED: _("The payment was refunded."),
    }
    return {
        "order": order.out_trade_no,
        "state": order.state,
        "paid": paid,
        "credited": credited,
        "power_on": credited and relay == "closed",
        "trouble": trouble,
        "done": (credited and relay == "closed")
        or order.state in (lc.CLOSED, lc.REFUNDED, lc.HELD),
        "message": words.get(order.state, order.state),
        "balance_micro_yuan": balance,
        "balance": money(balance),
        "relay": relay,
    }
