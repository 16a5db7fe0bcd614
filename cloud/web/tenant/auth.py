"""Signing in on the phone site: 户号 + phone → a one-time code → the code (``cloud.access.
tenants`` holds the rules); signing out; the start page (the tenant's first meter).

The code goes out through ``TENANT_CODE_SENDER`` (app config: a callable ``(session, phone,
code, unit_number)`` that queues it in the request's transaction; ``gridvend cloud serve
--login-codes sms`` sets the notifier's, ``cloud.notify.login_codes.sender``). Without
one the code is written to the server's log, marked as the demo's stand-in for an SMS, and the
page says so: nothing pretends a text message was sent.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _

from cloud.access import tenants
from cloud.errors import InvalidError
from cloud.web.office.forms import Form
from cloud.web.tenant.security import current, db, page, sign_in, sign_out, tenant

log = logging.getLogger("gridvend.tenant")


def demo_codes() -> bool:
    """True when no SMS sender is configured (the code goes to the log)."""
    return current_app.config.get("TENANT_CODE_SENDER") is None


def deliver(issued: tenants.Issued) -> None:
    if issued.code is None:
        return
    sender = current_app.config.get("TENANT_CODE_SENDER")
    if sender is not None:
        sender(db(), issued.phone, issued.code, issued.unit_number)
        return
    log.warning(
        "DEMO ONLY (no SMS channel configured): tenant login code for unit %s, phone %s: %s",
        issued.unit_number,
        tenants.masked(issued.phone),
        issued.code,
    )


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/t/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("tenant.start")


def _field_of(exc: Exception) -> str:
    return getattr(exc, "field", None) or "code"


@page("/login", "public", methods=("GET", "POST"))
def login() -> Any:
    form = Form()
    step = "start"
    status = 200
    if request.method == "POST":
        action = request.form.get("action", "send")
        unit = form.text("unit", max_len=64)
        phone = form.text("phone", max_len=32)
        code = form.text("code", max_len=12) if action == "verify" else ""
        step = "code" if action == "verify" else "start"
        if form.ok:
            try:
                if action == "verify":
                    login_row = tenants.verify_code(db(), unit, phone, code)
                    sign_in(login_row)
                    return redirect(_safe_next(request.args.get("next")))
                issued = tenants.request_code(db(), unit, phone)
                deliver(issued)
                step = "code"
            except tenants.LoginPaused as exc:
                form.fail(
                    None,
                    _(
                        "Too many wrong codes: please try again in %(minutes)d minutes.",
                        minutes=exc.minutes,
                    ),
                )
            except tenants.WrongCode as exc:
                form.fail(
                    "code",
                    _(
                        "The code is wrong or has expired. %(n)d tries left.",
                        n=exc.tries_left,
                    ),
                )
            except tenants.TooSoon as exc:
                step = "code"
                form.fail(
                    "code" if action == "send" else None,
                    _("A code was sent a moment ago; ask again in %(s)d seconds.", s=exc.wait_s),
                )
            except InvalidError as exc:
                if _field_of(exc) == "unit":
                    form.fail("unit", _("Enter the unit number as on your contract."))
                else:
                    form.fail("phone", _("Enter the phone number on file for your account."))
                step = "start"
        if not form.ok:
            status = 401 if form.message or "code" in form.errors else 422
    return (
        render_template(
            "tenant/login.html",
            form=form,
            step=step,
            demo_codes=demo_codes(),
            max_tries=tenants.MAX_TRIES,
        ),
        status,
    )


@page("/logout", "tenant", methods=("POST",))
def logout() -> Any:
    tenants.sign_out(db(), current().login_id)
    sign_out()
    return redirect(url_for("tenant.login"))


@page("/", "tenant")
def start() -> Any:
    """The first of the tenant's meters (a picker on its page lists the others)."""
    who = tenant()
    assert who is not None
    if not who.meter_ids:
        return render_template("tenant/no_meters.html"), 200
    return redirect(url_for("tenant.home", meter_id=who.meter_ids[0]))
