"""The office's session cookie (``cloud.web.office.session_cookie``): Flask's signed cookie, signed
again when the session changes or once a minute rather than on every response, and verified
once per cookie; its 12 h lifetime still runs from the last request and is checked on every
request, a cookie verified before included. Through the real sign-in on a real SQLite file, the
interface's clock a fake one."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.sessions import SecureCookieSessionInterface

from cloud.web import create_app
from cloud.web.office.session_cookie import REFRESH_AFTER_S, CookieSessionInterface
from tests.web.support import PASSWORDS, make_database

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
COOKIE = "gridvend_session"
RECORDS = "/office/sales/records"
LIFETIME_S = 12 * 3600


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("session_cookie")
    db, _park = make_database(tmp)
    app = create_app(
        {
            "TESTING": False,
            "DATABASE": db,
            "SECRET_KEY": "test-secret-key-0123456789",
            "OFFICE_COOKIE_SECURE": False,
        }
    )
    try:
        yield {"db": db, "app": app}
    finally:
        db.dispose()


@pytest.fixture
def clock(office: dict[str, Any]) -> Clock:
    fake = Clock()
    office["app"].session_interface = CookieSessionInterface(clock=fake)
    return fake


def _signed_in(office: dict[str, Any]) -> Any:
    client = office["app"].test_client()
    token = _TOKEN.search(client.get("/office/login").text).group(1)  # type: ignore[union-attr]
    answer = client.post(
        "/office/login",
        data={"username": "cashier", "password": PASSWORDS["cashier"], "csrf_token": token},
    )
    assert answer.status_code == 302
    return client


def _sets_cookie(answer: Any) -> bool:
    return any(v.startswith(f"{COOKIE}=") for v in answer.headers.getlist("Set-Cookie"))


def _signed_out(answer: Any) -> bool:
    return answer.status_code == 302 and "/office/login" in answer.headers["Location"]


def test_an_unchanged_session_is_signed_again_once_a_minute_not_on_every_response(
    office: dict[str, Any], clock: Clock
) -> None:
    client = _signed_in(office)
    assert _sets_cookie(client.get(RECORDS))  # the first page keeps a CSRF token: a change
    first = client.get_cookie(COOKIE).value
    answer = client.get(RECORDS)
    assert answer.status_code == 200
    assert not _sets_cookie(answer)
    clock.now += REFRESH_AFTER_S - 1
    assert not _sets_cookie(client.get(RECORDS))
    clock.now += 1
    answer = client.get(RECORDS)
    assert answer.status_code == 200
    assert _sets_cookie(answer)
    assert client.get_cookie(COOKIE).value != first
    assert not _sets_cookie(client.get(RECORDS))  # the new signature is fresh again


def test_a_changed_session_is_written_at_once(office: dict[str, Any], clock: Clock) -> None:
    client = _signed_in(office)
    token = _TOKEN.search(client.get(RECORDS).text).group(1)  # type: ignore[union-attr]
    answer = client.post(
        "/office/language", data={"csrf_token": token, "lang": "en", "next": RECORDS}
    )
    assert _sets_cookie(answer)
    assert 'lang="en"' in client.get(RECORDS).text


def test_the_lifetime_runs_from_the_last_request(office: dict[str, Any], clock: Clock) -> None:
    client = _signed_in(office)
    for _ in range(26):  # 13 hours of requests half an hour apart: each one signs again
        clock.now += 1800
        assert client.get(RECORDS).status_code == 200


def test_a_cookie_verified_before_still_expires_with_its_signature(
    office: dict[str, Any], clock: Clock
) -> None:
    client = _signed_in(office)
    client.get(RECORDS)  # the first page keeps a CSRF token: a new cookie
    assert client.get(RECORDS).status_code == 200  # that one verified and kept
    stale = client.get_cookie(COOKIE).value
    clock.now += LIFETIME_S + 1
    assert _signed_out(client.get(RECORDS))
    other = office["app"].test_client()
    other.set_cookie(COOKIE, stale)
    assert _signed_out(other.get(RECORDS))
    clock.now -= 2 * LIFETIME_S  # a signature from the future is refused too
    other.set_cookie(COOKIE, stale)
    assert _signed_out(other.get(RECORDS))


def test_a_tampered_or_foreign_cookie_signs_nobody_in(office: dict[str, Any], clock: Clock) -> None:
    client = _signed_in(office)
    good = client.get_cookie(COOKIE).value
    payload, stamp, signature = good.rsplit(".", 2)
    forged = f"{payload}.{stamp}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    other = office["app"].test_client()
    other.set_cookie(COOKIE, forged)
    assert _signed_out(other.get(RECORDS))
    foreign = create_app(
        {"TESTING": False, "DATABASE": office["db"], "SECRET_KEY": "another-key-0123456789"}
    )
    with foreign.test_request_context():
        cookie = SecureCookieSessionInterface().get_signing_serializer(foreign)
        assert cookie is not None
        made = cookie.dumps({"op": 1, "epoch": 0, "sid": "x", "_permanent": True})
    other.set_cookie(COOKIE, made)
    assert _signed_out(other.get(RECORDS))


def test_the_cookie_is_flasks_own_format(office: dict[str, Any], clock: Clock) -> None:
    """Cookies signed before this interface keep working, and the other way round."""
    client = _signed_in(office)
    app = office["app"]
    flask_own = SecureCookieSessionInterface().get_signing_serializer(app)
    assert flask_own is not None
    content = flask_own.loads(client.get_cookie(COOKIE).value)
    assert isinstance(content["op"], int)
    other = app.test_client()
    other.set_cookie(COOKIE, flask_own.dumps(content))  # signed at the real time
    clock.now = time.time()
    assert other.get(RECORDS).status_code == 200
