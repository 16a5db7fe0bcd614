"""The providers' side of the web app: notification endpoints and the sandbox's pay page.

``POST /pay/notify/<provider>`` takes no session and no CSRF token: the only thing that makes a
notification count is its signature, verified by the provider (``cloud.payments``); the reply
is exactly what that provider expects (``success``, or 204). The raw body is read once with
``request.get_data()`` and handed over untouched (WeChat signs the bytes).

``/pay/sandbox/<out_trade_no>`` is the sandbox provider's own "cashier": POSTing it pays the
trade at the sandbox bank, which signs a notification, delivered here through the same
``Payments.notify`` as a real provider's (in process: the demo runs offline).

Configuration: ``PAYMENTS`` maps provider names to their settings (``cloud.payments.
make_provider``); default: the sandbox alone, kept in ``<instance>/sandbox-pay``.
``PAYMENTS_PUBLIC_URL``: the base URL providers reach us at (notify URLs); default the request's.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, redirect, request

from cloud.errors import NotFoundError
from cloud.payments import make_provider
from cloud.payments.orders import Payments
from cloud.payments.provider import NotificationRequest
from cloud.payments.sandbox import SandboxProvider
from cloud.web.office import csrf

bp = Blueprint("pay", __name__, url_prefix="/pay")


def init_app(app: Flask) -> None:
    settings: dict[str, Any] = app.config.get("PAYMENTS") or {
        "sandbox": {"directory": os.path.join(app.instance_path, "sandbox-pay")}
    }
    providers = {name: make_provider(name, values) for name, values in settings.items()}
    app.extensions["gridvend.payments"] = Payments(app.extensions["gridvend.db"], providers)
    app.register_blueprint(bp)

    csrf.exempt(bp)  # providers cannot hold a CSRF token; the signature is the check


def payments() -> Payments:
    found: Payments = current_app.extensions["gridvend.payments"]
    return found


def notify_url(provider: str) -> str:
    base = current_app.config.get("PAYMENTS_PUBLIC_URL") or request.host_url
    return base.rstrip("/") + f"/pay/notify/{provider}"


@bp.post("/notify/<provider>")
def notify(provider: str) -> Response:
    try:
        reply = payments().notify(
            provider, NotificationRequest.of(dict(request.headers), request.get_data())
        )
    except NotFoundError:
        abort(404)
    return Response(reply.body, status=reply.status, content_type=reply.content_type)


@bp.post("/sandbox/<out_trade_no>")
def sandbox_pay(out_trade_no: str) -> Any:
    sandbox = payments().providers.get("sandbox")
    if not isinstance(sandbox, SandboxProvider):
        abort(404)
    try:
        trade = sandbox.bank.trade(out_trade_no)
    except NotFoundError:
        abort(404)
    note = sandbox.bank.pay(out_trade_no)
    payments().notify("sandbox", note)
    return redirect(trade.get("return_url") or f"/pay/sandbox/{out_trade_no}", code=303)
