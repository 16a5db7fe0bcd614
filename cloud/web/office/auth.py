"""Sign in, sign out, change one's own password, switch the language, the start page."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from cloud.access import operators
from cloud.errors import UnauthorizedError
from cloud.models import now_ts
from cloud.web import i18n
from cloud.web.office.forms import Form
from cloud.web.office.security import (
    PUBLIC,
    blueprint,
    current,
    db,
    page,
    sign_in,
    sign_out,
    user,
)

bp = blueprint("office_auth", "/office")


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never //host or a scheme): no open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("office_auth.home")


@page(bp, "/", None)
def home() -> Any:
    return render_template("office/home.html")


@page(bp, "/login", PUBLIC, methods=("GET", "POST"))
def login() -> Any:
    form = Form()
    status = 200
    if request.method == "POST":
        username = form.text("username", max_len=64)
        password = form.text("password", max_len=200)
        if form.ok:
            try:
                op = operators.attempt_login(db(), username, password, ip=request.remote_addr or "")
            except operators.AccountLocked as exc:
                minutes = max(1, -(-(exc.until_ts - _now()) // 60))
                form.fail(
                    None,
                    _(
                        "Too many wrong passwords: this login is locked for %(minutes)d "
                        "minutes. Try again later or ask an administrator to reset it.",
                        minutes=minutes,
                    ),
                )
            except UnauthorizedError:
                form.fail(None, _("Wrong username or password, or the login is disabled."))
            else:
                sign_in(op)
                return redirect(_safe_next(request.args.get("next")))
        status = 401 if form.message else 422
    return render_template("office/auth/login.html", form=form), status


def _now() -> int:
    return now_ts()


@page(bp, "/logout", None, methods=("POST",))
def logout() -> Any:
    operators.logout(db(), current().operator)
    sign_out()
    flash(_("You are signed out."), "info")
    return redirect(url_for("office_auth.login"))


@page(bp, "/password", None, methods=("GET", "POST"))
def password() -> Any:
    form = Form()
    if request.method == "POST":
        old = form.text("old_password", max_len=200)
        new = form.password("new_password", min_len=operators.MIN_PASSWORD)
        again = form.value("confirm_password")
        if form.ok and new != again:
            form.fail("confirm_password", _("The two new passwords differ."))
        if form.ok:
            field_map = {"old_password": "old_password", "new_password": "new_password"}
            form.run(
                lambda: operators.change_password(db(), current().operator, old, new), field_map
            )
            if form.errors.get("old_password"):
                form.errors["old_password"] = _("The current password is wrong.")
        if form.ok:
            sign_in(current().operator)  # the epoch moved on: keep this session, end the others
            flash(_("Your password is changed; your other sessions are signed out."), "success")
            return redirect(url_for("office_auth.home"))
        return render_template("office/auth/password.html", form=form), 422
    return render_template("office/auth/password.html", form=form)


@page(bp, "/language", PUBLIC, methods=("POST",))
def language() -> Any:
    lang = request.form.get("lang", "")
    if lang in i18n.LANGUAGES:
        session["lang"] = lang
    target = request.form.get("next") or (
        url_for("office_auth.home") if user() else url_for("office_auth.login")
    )
    return redirect(_safe_next(target))
