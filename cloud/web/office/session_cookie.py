"""The session cookie: Flask's signed cookie (``SecureCookieSessionInterface``: the same format,
salt, keys and lifetime), with less work per request.

Flask signs the cookie again on every response of a permanent session
(``SESSION_REFRESH_EACH_REQUEST``), so that its 12 h lifetime runs from the last request, and
verifies the signature and decodes the JSON on every request: about a tenth of a cashier's sale
here. Both are pure functions of the secret keys and the cookie, and a cashier's cookie is the
same string sale after sale, so:

- an unchanged session is signed again only once its signature is ``REFRESH_AFTER_S`` old: the
  lifetime still runs from the last request, to within that many seconds (a changed session is
  written at once, as before);
- a cookie verified once is not verified again: its content and signing time are kept (keyed
  by the secret keys and the exact cookie string; only sessions of plain values, as the office
  and the tenant site keep), and its age is checked against the lifetime on every request, as
  itsdangerous does.

``clock`` (seconds since the epoch) signs and ages the cookies; tests pass a fake one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

REFRESH_AFTER_S = 60
_MAX_KEPT = 4096
_PLAIN = (str, int, float, bool, type(None))


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session, signed again when changed or ``REFRESH_AFTER_S`` old, verified
    once per cookie (see the module doc)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        self._signer = _Signer
        self._serializers: dict[tuple[Any, ...], URLSafeTimedSerializer] = {}
        # (secret keys, cookie) -> (signing time, content)
        self._opened: dict[tuple[tuple[Any, ...], str], tuple[int, dict[str, Any]]] = {}

    @staticmethod
    def _keys(app: Flask) -> tuple[Any, ...]:
        return (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Flask's serializer, made once per set of secret keys."""
        if not app.secret_key:
            return None
        keys = self._keys(app)
        found = self._serializers.get(keys)
        if found is None:
            found = super().get_signing_serializer(app)
            assert found is not None
            found.signer = self._signer
            self._serializers = {keys: found}  # new keys replace the old ones
        return found

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        s = self.get_signing_serializer(app)
        if s is None:
            return None
        val = request.cookies.get(self.get_cookie_name(app))
        if not val:
            return self.session_class()
        max_age = int(app.permanent_session_lifetime.total_seconds())
        key = (self._keys(app), val)
        kept = self._opened.get(key)
        if kept is None:
            try:
                data, signed = s.loads(val, max_age=max_age, return_timestamp=True)
            except BadSignature:
                return self.session_class()
            kept = (int(signed.timestamp()), data)
            if isinstance(data, dict) and all(isinstance(v, _PLAIN) for v in data.values()):
                if len(self._opened) >= _MAX_KEPT:
                    self._opened.clear()
                self._opened[key] = kept
        else:
            age = int(self.clock()) - kept[0]
            if age > max_age or age < 0:  # what itsdangerous refuses as SignatureExpired
                return self.session_class()
        session = self.session_class(kept[1])  # a copy: the kept content stays as signed
        session.signed_at = kept[0]  # type: ignore[attr-defined]
        return session

    def should_set_cookie(self, app: Flask, session: Any) -> bool:
        if session.modified:
            return True
        if not (session.permanent and app.config["SESSION_REFRESH_EACH_REQUEST"]):
            return False
        signed_at = getattr(session, "signed_at", None)
        return signed_at is None or self.clock() - signed_at >= REFRESH_AFTER_S
