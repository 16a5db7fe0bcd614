"""Who is signed in on the phone site, and what they may open: the one decorator every tenant
view uses.

``@page(rule, kind)`` registers a view on the tenant blueprint. ``kind`` says what the URL
names and so what is checked before the view runs:

* ``public``  nobody needs to sign in (the login page);
* ``tenant``  any signed-in tenant (the start page, sign-out);
* ``meter``   ``<meter_id>`` must be one of the tenant's meters (``Tenant.meter_ids``);
* ``order``   ``<out_trade_no>`` must be an order of one of the tenant's accounts and meters;
* ``sale``    ``<sale_id>`` must be a sale of one of the tenant's accounts and meters.

Anything else answers 404, never 403: a tenant cannot tell another tenant's meter, order or
receipt from one that does not exist. The wrapper opens the request's database session (read
only for GET) as ``g.db``, loads the tenant from the session cookie (its login id and epoch:
``cloud.access.tenants``) and commits when the view returns. ``ROUTES`` maps every tenant
endpoint to its kind (``tests/tenant/test_isolation.py`` walks it with another tenant's
session); a tenant view not registered through ``page`` is refused.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from cloud.access import tenants
from cloud.db import Database
from cloud.models import Meter, Sale
from cloud.models.payments import PaymentOrder
from cloud.models.tenants import TenantLogin

KINDS = ("public", "tenant", "meter", "order", "sale")
ROUTES: dict[str, str] = {}

bp = Blueprint("tenant", __name__, url_prefix="/t")


def db() -> Session:
    s: Session = g.db
    return s


def tenant() -> tenants.Tenant | None:
    return g.get("tenant")


def current() -> tenants.Tenant:
    found = g.get("tenant")
    assert found is not None, "current() in a public tenant view"
    return found


def sign_in(login: TenantLogin) -> None:
    """A new session for the tenant: the old cookie's content is dropped, the language kept."""
    lang = session.get("lang")
    session.clear()
    session["tenant_login"] = login.id
    session["tenant_epoch"] = login.session_epoch
    session["tenant_sid"] = secrets.token_urlsafe(16)
    if lang:
        session["lang"] = lang
    session.permanent = True


def sign_out() -> None:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def _load(s: Session) -> tenants.Tenant | None:
    login_id, epoch = session.get("tenant_login"), session.get("tenant_epoch")
    if not isinstance(login_id, int) or not isinstance(epoch, int):
        return None
    found = tenants.tenant_of(s, login_id, epoch)
    if found is None:
        sign_out()
    return found


def error_page(status: int) -> Any:
    return render_template("tenant/error.html", status=status), status


def _owned(kind: str, who: tenants.Tenant, kwargs: dict[str, Any]) -> None:
    """404 unless the object the URL names belongs to ``who``."""
    s = db()
    if kind == "meter":
        if kwargs.get("meter_id") not in who.meter_ids:
            abort(404)
        g.meter = s.get(Meter, kwargs["meter_id"])
    elif kind == "order":
        order = s.scalars(
            select(PaymentOrder).where(PaymentOrder.out_trade_no == kwargs.get("out_trade_no"))
        ).first()
        if order is None or order.account_id not in who.account_ids:
            abort(404)
        if order.meter_id not in who.meter_ids:
            abort(404)
        g.order = order
    elif kind == "sale":
        sale = s.get(Sale, kwargs.get("sale_id"))
        if sale is None or sale.account_id not in who.account_ids:
            abort(404)
        if sale.meter_id not in who.meter_ids:
            abort(404)
        g.sale = sale


def page(
    rule: str, kind: str, methods: tuple[str, ...] = ("GET",), endpoint: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a tenant view (see the module docstring)."""
    assert kind in KINDS, kind

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        name = endpoint or view.__name__
        ROUTES[f"{bp.name}.{name}"] = kind

        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            database: Database = current_app.extensions["gridvend.db"]
            readonly = request.method in ("GET", "HEAD")
            with database.session(readonly=readonly) as s:
                g.db = s
                g.tenant = _load(s)
                if kind != "public" and g.tenant is None:
                    return redirect(url_for("tenant.login", next=request.full_path))
                try:
                    if kind not in ("public", "tenant"):
                        _owned(kind, g.tenant, kwargs)
                    return view(**kwargs)
                except HTTPException as exc:
                    if exc.code not in (403, 404):
                        raise
                    return error_page(exc.code)

        bp.add_url_rule(rule, name, wrapper, methods=list(methods))
        return wrapper

    return decorate


@bp.before_request
def _declared_views_only() -> None:
    if request.endpoint is not None and request.endpoint not in ROUTES:
        abort(403)


@bp.errorhandler(404)
def _not_found(exc: HTTPException) -> Any:
    return error_page(404)


@bp.errorhandler(403)
def _forbidden(exc: HTTPException) -> Any:
    return error_page(403)
