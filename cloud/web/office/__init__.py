"""The office web UI's shell: ``init_app(app)`` installs what every page relies on.

- Session cookies: signed with ``SECRET_KEY`` (config, else a random key kept in
  ``instance/secret_key``), ``HttpOnly``, ``Secure`` (on unless ``OFFICE_COOKIE_SECURE=False``
  or ``GRIDVEND_OFFICE_COOKIE_SECURE=0``, for plain HTTP on a LAN: browsers keep a Secure
  cookie over HTTP only from 127.0.0.1/localhost), ``SameSite=Lax``, 12 h lifetime counted from
  the last request (to within a minute: an unchanged cookie is signed again once a minute,
  ``session_cookie``).
- CSRF on every POST/PUT/PATCH/DELETE (Flask-WTF ``CSRFProtect``); the REST API keeps its
  bearer tokens and is exempt. Forms include ``{{ csrf_field() }}``; htmx sends the token from
  ``<meta name="csrf-token">`` (static/js/csrf.js).
- Headers on every response: CSP ``script-src 'self'`` (no inline script; chart data goes in
  ``<script type="application/json">``), ``frame-ancestors 'none'``, ``nosniff``,
  ``Referrer-Policy``.
- The catalog (``cloud.web.i18n``), the menu and ``can()`` in every template.
- The blueprints in ``BLUEPRINTS``: one per area, each view registered with
  ``security.page`` and the permission it needs.
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, g, render_template, request, session
from flask_wtf import csrf as flask_wtf_csrf
from flask_wtf.csrf import CSRFError, generate_csrf
from markupsafe import Markup, escape

from cloud.web import i18n
from cloud.web.office import formatting, menu, security, signed_in
from cloud.web.office.blueprints import BLUEPRINTS
from cloud.web.office.session_cookie import CookieSessionInterface


class CSRFProtect(flask_wtf_csrf.CSRFProtect):
    """Flask-WTF's CSRF check, its signature verified once per token: a posted token verified
    before for this secret (with no time limit every signature of a session's raw token stays
    good) is only compared with the session's raw token, as Flask-WTF does after verifying;
    anything else (a new token, a refusal, a time limit, HTTPS referrer checks) goes through
    Flask-WTF's own ``protect``."""

    def __init__(self) -> None:
        super().__init__()
        self._verified: dict[tuple[object, str], str] = {}  # (secret, signed) -> raw token

    def protect(self, apply_exemptions: bool = False) -> None:
        if apply_exemptions and (not request.endpoint or self._is_exempt()):
            return  # as Flask-WTF (the API)
        config = current_app.config
        key = None
        if (
            config.get("WTF_CSRF_TIME_LIMIT") is None
            and request.method in config["WTF_CSRF_METHODS"]
            and not (request.is_secure and config["WTF_CSRF_SSL_STRICT"])
        ):
            signed = self._get_csrf_token()
            field = config.get("WTF_CSRF_FIELD_NAME") or "csrf_token"
            raw = session.get(field)
            if signed and isinstance(raw, str):
                key = (config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key, signed)
                known = self._verified.get(key)
                if known is not None and hmac.compare_digest(raw, known):
                    g.csrf_valid = True
                    return
        super().protect(apply_exemptions)  # refuses with its own messages
        if key is not None and g.get("csrf_valid"):
            if len(self._verified) >= _MAX_SIGNED:
                self._verified.clear()
            self._verified[key] = session[config.get("WTF_CSRF_FIELD_NAME") or "csrf_token"]


csrf = CSRFProtect()

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def _secret_key(app: Flask) -> str:
    path = Path(app.instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


# Signed CSRF tokens by (CSRF secret, the session's token). Flask-WTF signs the session's token
# anew on every page (~50 us); with no time limit (WTF_CSRF_TIME_LIMIT = None, set below) every
# signature of it is as good as another for that session, so the first one is shown again.
_SIGNED: dict[tuple[object, object], str] = {}
_MAX_SIGNED = 4096


def csrf_token() -> str:
    """The CSRF token for this session's forms (``generate_csrf``, signed once per session)."""
    config = current_app.config
    if config.get("WTF_CSRF_TIME_LIMIT") is not None:  # a token that expires: sign each time
        return str(generate_csrf())
    field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    secret = config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
    raw = session.get(field)
    token = _SIGNED.get((secret, raw)) if raw else None
    if token is None:
        token = str(generate_csrf())
        if len(_SIGNED) >= _MAX_SIGNED:
            _SIGNED.clear()
        _SIGNED[(secret, session.get(field))] = token
    return token


def csrf_field() -> Markup:
    # Concatenated, not ``Markup.format`` (its escaping formatter costs more than the field).
    value = str(escape(csrf_token()))
    return Markup('<input type="hidden" name="csrf_token" value="' + value + '">')


def init_app(app: Flask, api_blueprint: Any = None) -> None:
    """Install the shell on ``app`` (``create_app`` calls this after registering the API)."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(app)
    # Flask's own defaults for these are weaker, so they are set here, not defaulted.
    # Browsers keep a Secure cookie over plain HTTP only from 127.0.0.1/localhost; an office on
    # a LAN without TLS sets OFFICE_COOKIE_SECURE=False (or GRIDVEND_OFFICE_COOKIE_SECURE=0).
    secure = app.config.get("OFFICE_COOKIE_SECURE", True)
    if os.environ.get("GRIDVEND_OFFICE_COOKIE_SECURE") == "0":
        secure = False
    app.config["SESSION_COOKIE_SECURE"] = bool(secure)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_NAME"] = "gridvend_session"
    app.config["PERMANENT_SESSION_LIFETIME"] = dt.timedelta(hours=12)
    app.config["WTF_CSRF_TIME_LIMIT"] = None  # the token lives as long as the session
    # Re-signed when changed or a minute old, verified once per cookie (session_cookie.py).
    app.session_interface = CookieSessionInterface()
    if app.static_folder is None:  # create_app makes the app without one
        app.static_folder = str(Path(__file__).resolve().parents[1] / "static")
        app.static_url_path = "/static"
        app.add_url_rule(
            "/static/<path:filename>", endpoint="static", view_func=app.send_static_file
        )
    # The signed-in operators, kept as the API keeps its principals (same TTL and rules).
    app.extensions["gridvend.signed_in"] = signed_in.SignedInCache(
        ttl_s=float(app.config.get("TOKEN_CACHE_S", 30.0))
    )
    i18n.init_app(app)
    csrf.init_app(app)
    if api_blueprint is not None:
        csrf.exempt(api_blueprint)
    # Templates' csrf_token() (Flask-WTF's context processor gives generate_csrf): signed once.
    app.context_processor(lambda: {"csrf_token": csrf_token})

    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    office_blueprints = {bp.name for bp in BLUEPRINTS}

    @app.before_request
    def _declared_views_only() -> None:
        if request.blueprint in office_blueprints:
            security.check_registered()

    app.jinja_env.globals.update(
        can=security.can,
        current_user=security.user,
        csrf_field=csrf_field,
        menu=menu.visible,
        menu_html=menu.rendered,
    )

    formatting.install(app)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Any:
        return render_template("office/error.html", status=400, reason=exc.description), 400
