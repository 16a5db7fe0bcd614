"""Who is signed in, and what they may do: the one decorator every office view uses.

``@page(bp, "/rule", "permission.name")`` registers a view with the permission it needs
(``None``: any signed-in operator; ``PUBLIC``: no sign-in, e.g. the login page). The wrapper
loads the operator from the session cookie (checking the cookie's ``epoch`` against the
operator's ``session_epoch``, so logout and password changes end old cookies; the operator is
kept for a few seconds as the API keeps its principals: ``signed_in``; when not kept, a request
that writes reads them in a read-only transaction of its own), redirects to the
login page when nobody is signed in, answers 403 when the role lacks the permission, opens the
request's database session (read-only for GET) as ``g.db``, and commits when the view returns.

``ROUTES`` maps every office endpoint to its permission: ``tests/web/test_routes.py`` walks it
against every built-in role. A view that is not registered through ``page`` is refused
(``check_registered``), so nothing is reachable without a declared permission.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass
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
from sqlalchemy.orm import Session, joinedload
from werkzeug.exceptions import HTTPException

from cloud.access.scope import Scope
from cloud.audit import Actor
from cloud.db import Database
from cloud.models import Operator, Role
from cloud.web.office.signed_in import SignedIn, SignedInCache, generation

PUBLIC = "public"
# endpoint -> permission (None: any signed-in operator; PUBLIC: nobody needs to sign in)
ROUTES: dict[str, str | None] = {}


@dataclass
class User:
    """The signed-in operator of this request: the snapshot every request needs (kept across
    requests by ``signed_in.SignedInCache``) and, for the few views that change the operator,
    their database row."""

    signed_in: SignedIn

    @property
    def permissions(self) -> frozenset[str]:
        return self.signed_in.permissions

    @property
    def scope(self) -> Scope:
        return self.signed_in.scope

    @property
    def actor(self) -> Actor:
        return self.signed_in.actor

    @property
    def username(self) -> str:
        return self.signed_in.username

    @property
    def display_name(self) -> str:
        return self.signed_in.display_name

    @property
    def operator(self) -> Operator:
        """The operator's row in this request's session (read on first use)."""
        op = db().get(Operator, self.signed_in.operator_id)
        assert op is not None, "the signed-in operator's row is gone"
        return op

    def can(self, permission: str | None) -> bool:
        return permission is None or permission in self.signed_in.permissions


def database() -> Database:
    db: Database = current_app.extensions["gridvend.db"]
    return db


def db() -> Session:
    """The request's database session (opened by the ``page`` wrapper)."""
    s: Session = g.db
    return s


def user() -> User | None:
    return g.get("user")


def current() -> User:
    """The signed-in operator (only inside a view that needs sign-in)."""
    u = g.get("user")
    assert u is not None, "current() in a PUBLIC view"
    return u


def can(permission: str | None) -> bool:
    """For templates: show a button only when this is true (``{% if can('sales.sell') %}``)."""
    u = g.get("user")
    return u is not None and u.can(permission)


def sign_in(op: Operator) -> None:
    """Start a new session for ``op``: the old cookie's content is dropped (rotation), the
    language choice kept."""
    lang = session.get("lang")
    session.clear()
    session["op"] = op.id
    session["epoch"] = op.session_epoch or 0
    session["sid"] = secrets.token_urlsafe(16)
    if lang:
        session["lang"] = lang
    session.permanent = True


def sign_out() -> None:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


_USER = select(Operator).options(
    joinedload(Operator.role).joinedload(Role.permissions), joinedload(Operator.buildings)
)


def signed_in_cache() -> SignedInCache:
    """This app's signed-in operators (``init_app`` makes it; TTL ``TOKEN_CACHE_S``)."""
    cache: SignedInCache = current_app.extensions["gridvend.signed_in"]
    return cache


def _load_user(s: Session, readonly: bool) -> User | None:
    op_id = session.get("op")
    if not isinstance(op_id, int):
        return None
    epoch = session.get("epoch")
    cache = signed_in_cache()
    hit = cache.get(op_id)
    if hit is not None and hit.epoch == epoch:
        return User(hit)
    # Not kept (or the cookie's epoch differs from the kept one): the database decides. One
    # statement for the operator, their role's permissions and their buildings; for a request
    # that writes, in a read-only transaction of its own, so that this read does not begin the
    # request's write transaction (on SQLite the one writer's lock, held to the end of a sale).
    read_at = generation()
    if readonly:
        op = s.scalars(_USER.where(Operator.id == op_id)).unique().first()
        return _checked(op, epoch, cache, read_at)
    with database().session(readonly=True) as rs:
        op = rs.scalars(_USER.where(Operator.id == op_id)).unique().first()
        return _checked(op, epoch, cache, read_at)


def _checked(op: Operator | None, epoch: Any, cache: SignedInCache, read_at: int) -> User | None:
    if op is None or not op.active or epoch != (op.session_epoch or 0):
        sign_out()
        return None
    snapshot = SignedIn.of(op)
    cache.put(snapshot, read_at)
    return User(snapshot)


def error_page(status: int) -> Any:
    return render_template("office/error.html", status=status, reason=None), status


def blueprint(name: str, url_prefix: str) -> Blueprint:
    """An office area's blueprint, whose 403 and 404 are pages in the operator's language."""
    bp = Blueprint(name, __name__, url_prefix=url_prefix)

    def _error(exc: HTTPException) -> Any:
        return error_page(exc.code or 500)

    bp.register_error_handler(403, _error)
    bp.register_error_handler(404, _error)
    return bp


def page(
    bp: Blueprint,
    rule: str,
    permission: str | None,
    methods: tuple[str, ...] = ("GET",),
    endpoint: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an office view on ``bp`` with the permission it needs (see the module doc)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        name = endpoint or view.__name__
        ROUTES[f"{bp.name}.{name}"] = permission

        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            readonly = request.method in ("GET", "HEAD")
            with database().session(readonly=readonly) as s:
                g.db = s
                g.user = _load_user(s, readonly)
                if permission != PUBLIC and g.user is None:
                    return redirect(url_for("office_auth.login", next=request.full_path))
                try:
                    if permission != PUBLIC and not g.user.can(permission):
                        abort(403)
                    return view(**kwargs)
                except HTTPException as exc:
                    if exc.code not in (403, 404):
                        raise
                    # rendered here, while the session (and the signed-in operator) is open
                    return error_page(exc.code)

        bp.add_url_rule(rule, name, wrapper, methods=list(methods))
        return wrapper

    return decorate


def check_registered() -> None:
    """before_request of the office blueprints: an endpoint not declared with ``page`` (so
    with no permission on record) is refused."""
    if request.endpoint is not None and request.endpoint not in ROUTES:
        abort(403)
