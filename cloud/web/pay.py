"""The providers' side of the web app: notification endpoints and the sandbox's pay page.

``POST /pay/notify/<provider>`` takes no session and no CSRF token: the only thing that makes a
notification count is its signature, verified by the provider (``cloud.payments``); the reply
is exactly what that provider expects (``success``, or 204). The raw body is read once with
``request.get_data()`` and handed over untouched (WeChat signs the bytes).

``/pay/sandbox/<out_trade_no>`` is the sandbox provider's own "cashier": POSTing it pays the
trade at the sandbox bank, which signs a notification, delivered here through the same
``Payments.notify`` as a real provider's (in process: the demo runs offline).

Configuration: ``PAYMENTS`` maps provider names to their settings (``cloud.payments.
make_provider``); without it, the app's instance folder decides as for ``gridvend cloud serve``
(``cloud.payments.config``: its ``payments.json``, else no providers; never the sandbox unasked).
``PAYMENTS_PUBLIC_URL`` (else the environment's ``GRIDVEND_PUBLIC_URL``, as cloud.env sets it
for ``gridvend cloud serve``): the https base URL providers and tenants' browsers reach us at
(notify and return URLs). Without it, the request's own host: right only when nothing stands in
front of the app (behind the deployment's TLS proxy that is ``http://127.0.0.1:8000``).
"""

from __future__ import annotations

import os
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
)
from flask_babel import lazy_gettext as _l

from cloud.errors import NotFoundError
from cloud.payments import config as payment_config
from cloud.payments.orders import Payments
from cloud.payments.provider import NotificationRequest
from cloud.payments.sandbox import SandboxProvider

bp = Blueprint("pay", __name__, url_prefix="/pay")

# How pages name each provider (the tenant's top-up, the office's reconciliation).
LABELS: dict[str, Any] = {
    "alipay": _l("Alipay"),
    "wechat": _l("WeChat Pay"),
    "sandbox": _l("Sandbox pay (demo)"),
}


def label(name: str) -> str:
    return str(LABELS.get(name, name))


def init_app(app: Flask) -> None:
    settings: dict[str, Any] | None = app.config.get("PAYMENTS")
    if settings is None:
        settings = payment_config.settings(app.instance_path)
    app.extensions["gridvend.payments"] = payment_config.payments(
        app.extensions["gridvend.db"], settings
    )
    if not app.config.get("PAYMENTS_PUBLIC_URL") and os.environ.get("GRIDVEND_PUBLIC_URL"):
        app.config["PAYMENTS_PUBLIC_URL"] = os.environ["GRIDVEND_PUBLIC_URL"]
    app.register_blueprint(bp)

    # Providers cannot hold a CSRF token; the signature is the check (the office shell's
    # CSRFProtect, registered by create_app before this).
    app.extensions["csrf"].exempt(bp)


def payments() -> Payments:
    found: Payments = current_app.extensions["gridvend.payments"]
    return found


def public_url(path: str) -> str:
    """``path`` on this site as providers and the tenant's browser reach it
    (``PAYMENTS_PUBLIC_URL``, else the request's own host)."""
    base = current_app.config.get("PAYMENTS_PUBLIC_URL") or request.host_url
    return base.rstrip("/") + path


def notify_url(provider: str) -> str:
    return public_url(f"/pay/notify/{provider}")


@bp.post("/notify/<provider>")
def notify(provider: str) -> Response:
    try:
        reply = payments().notify(
            provider, NotificationRequest.of(dict(request.headers), request.get_data())
        )
    except NotFoundError:
        abort(404)
    return Response(reply.body, status=reply.status, content_type=reply.content_type)


@bp.get("/sandbox/<out_trade_no>")
def sandbox_page(out_trade_no: str) -> Any:
    """The sandbox's cashier page: the amount and one button (what a provider's page is)."""
    sandbox = payments().providers.get("sandbox")
    if not isinstance(sandbox, SandboxProvider):
        abort(404)
    try:
        trade = sandbox.bank.trade(out_trade_no)
    except NotFoundError:
        abort(404)
    fen = int(trade["amount_fen"])
    return render_template(
        "pay/sandbox.html",
        trade=trade,
        amount=f"{fen // 100}.{fen % 100:02d}",
        paid=trade.get("state") != "pending",
    )


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
