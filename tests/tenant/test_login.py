"""Signing in on the phone site: 户号 + phone on file + one-time code; 5 wrong codes pause the
login; codes are rate limited, expire, work once; nobody learns whose phone is on file;
signing out ends every older cookie. Service rules are timed with an explicit clock; the form
is driven through the app."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cloud.access import tenants
from cloud.models import AuditEntry, now_ts
from cloud.models.tenants import TenantLogin
from tests.cloud.support import T0
from tests.tenant.support import TENANT_A, TENANT_B, Site, csrf, sign_in

UNIT, PHONE = TENANT_A["unit"], TENANT_A["phone"]


def _code(site: Site, now: int, unit: str = UNIT, phone: str = PHONE) -> str:
    with site.db.session() as s:
        issued = tenants.request_code(s, unit, phone, now=now)
    assert issued.code is not None
    return issued.code


def _verify(site: Site, code: str, now: int, unit: str = UNIT, phone: str = PHONE) -> object:
    """verify_code, committing its counters even when it raises (as the page does)."""
    s = site.db.new_session()
    try:
        return tenants.verify_code(s, unit, phone, code, now=now)
    except (tenants.WrongCode, tenants.LoginPaused) as exc:
        return exc
    finally:
        s.commit()
        s.close()


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_a_code_signs_in_once_and_expires(site: Site) -> None:
    t = T0 + 10_000
    code = _code(site, t)
    assert len(code) == 6
    assert code.isdigit()
    login = _verify(site, code, t + 10)
    assert isinstance(login, TenantLogin)
    assert login.unit_number == UNIT
    again = _verify(site, code, t + 20)
    assert isinstance(again, tenants.WrongCode)  # used up
    code = _code(site, t + 100)
    late = _verify(site, code, t + 100 + tenants.CODE_TTL_S + 1)
    assert isinstance(late, tenants.WrongCode)  # expired


def test_the_phone_is_compared_by_its_digits(site: Site) -> None:
    # On file as "+86 138 0000 0001"; typed with spaces, dashes or +86 it is the same phone.
    with site.db.session() as s:
        for typed in ("138-0000-0001", "+86 13800000001", "86 138 0000 0001"):
            issued = tenants.request_code(s, UNIT, typed, now=T0 + 20_000 + len(typed) * 100)
            assert issued.code is not None, typed


def test_five_wrong_codes_pause_the_login_even_for_the_right_code(site: Site) -> None:
    t = T0 + 30_000
    assert isinstance(_verify(site, _code(site, t - 100), t - 99), TenantLogin)  # count from 0
    code = _code(site, t)
    for n in range(1, tenants.MAX_TRIES):
        out = _verify(site, _wrong(code), t + n)
        assert isinstance(out, tenants.WrongCode)
        assert out.tries_left == tenants.MAX_TRIES - n
    paused = _verify(site, _wrong(code), t + 10)
    assert isinstance(paused, tenants.LoginPaused)
    assert isinstance(_verify(site, code, t + 11), tenants.LoginPaused)  # the right one too
    with site.db.session() as s, pytest.raises(tenants.LoginPaused):
        tenants.request_code(s, UNIT, PHONE, now=t + 12)
    after = t + 10 + tenants.PAUSE_S + 1
    fresh = _code(site, after)
    assert isinstance(_verify(site, fresh, after + 1), TenantLogin)
    with site.db.session(readonly=True) as s:
        assert s.scalar(select(AuditEntry.id).where(AuditEntry.action == "tenant.paused"))


def test_codes_are_rate_limited(site: Site) -> None:
    t = T0 + 50_000
    _code(site, t)
    with site.db.session() as s, pytest.raises(tenants.TooSoon) as caught:
        tenants.request_code(s, UNIT, PHONE, now=t + 30)
    assert caught.value.wait_s == tenants.RESEND_AFTER_S - 30
    _code(site, t + tenants.RESEND_AFTER_S)


def test_a_stranger_learns_nothing_and_gets_no_code(site: Site) -> None:
    strangers = ((UNIT, "13999999999"), ("Z-999", PHONE), (TENANT_B["unit"], PHONE))
    with site.db.session() as s:
        for unit, phone in strangers:
            assert tenants.request_code(s, unit, phone, now=T0).code is None
    with site.db.session(readonly=True) as s:  # counted like a tenant's pair, never a code
        for unit, phone in strangers:
            row = s.scalars(
                select(TenantLogin).where(
                    TenantLogin.unit_number == unit, TenantLogin.phone == phone
                )
            ).one()
            assert (row.code_hash, row.sent_that_day) == ("", 1)
    client = site.app.test_client()
    token = csrf(client)
    page = client.post(
        "/t/login",
        data={"csrf_token": token, "unit": UNIT, "phone": "13999999999", "action": "send"},
    )
    known = client.post(
        "/t/login",
        data={"csrf_token": token, "unit": TENANT_B["unit"], "phone": TENANT_B["phone"],
              "action": "send"},
    )  # fmt: skip
    # Both answers say the same thing; only the real tenant's phone got a code.
    assert page.status_code == known.status_code == 200
    assert 'id="code-sent"' in page.get_data(as_text=True)
    assert 'id="code-sent"' in known.get_data(as_text=True)
    assert all(p != "13999999999" for p, _c, _u in site.outbox.sent)


def test_the_form_marks_its_fields_in_the_pages_language(site: Site) -> None:
    client = site.app.test_client()
    token = csrf(client)
    page = client.post("/t/login", data={"csrf_token": token, "unit": "", "phone": "12",
                                         "action": "send"})  # fmt: skip
    assert page.status_code == 422
    text = page.get_data(as_text=True)
    assert 'id="e-unit"' in text
    assert "此项为必填项" in text
    client.post("/office/language", data={"csrf_token": token, "lang": "en", "next": "/t/login"})
    page = client.post("/t/login", data={"csrf_token": token, "unit": "A-101", "phone": "12",
                                         "action": "send"})  # fmt: skip
    text = page.get_data(as_text=True)
    assert page.status_code == 422
    assert 'id="e-phone"' in text
    assert "Enter the phone number on file for your account." in text


def test_a_wrong_code_on_the_page_says_how_many_tries_are_left(site: Site) -> None:
    client = site.app.test_client()
    token = csrf(client)
    data = {"csrf_token": token, "unit": TENANT_B["unit"], "phone": TENANT_B["phone"]}
    client.post("/t/login", data={**data, "action": "send"})
    code = site.outbox.last_code(TENANT_B["phone"])
    page = client.post("/t/login", data={**data, "action": "verify", "code": _wrong(code)})
    assert page.status_code == 401
    assert 'id="e-code"' in page.get_data(as_text=True)
    assert "还可尝试 4 次" in page.get_data(as_text=True)
    assert client.get("/t/").status_code == 302  # still signed out
    ok = client.post("/t/login", data={**data, "action": "verify", "code": code})
    assert ok.status_code == 302


def test_signing_out_ends_every_older_cookie(site: Site) -> None:
    first = sign_in(site, TENANT_A)
    cookie = first.get_cookie("gridvend_session")
    assert cookie is not None
    home = first.get(f"/t/m/{TENANT_A['meters'][0]}/")
    assert home.status_code == 200
    other = site.app.test_client()
    other.set_cookie("gridvend_session", cookie.value)  # the same cookie, copied
    assert other.get(f"/t/m/{TENANT_A['meters'][0]}/").status_code == 200
    token = csrf(first, f"/t/m/{TENANT_A['meters'][0]}/")
    assert first.post("/t/logout", data={"csrf_token": token}).status_code == 302
    assert other.get(f"/t/m/{TENANT_A['meters'][0]}/").status_code == 302  # to the login


def _observed(site: Site, unit: str, phone: str, t: int) -> list[tuple[str, int]]:
    """What anyone at the login form sees for (unit, phone): ask for a code, ask again at once,
    type wrong codes until paused, ask again while paused (as (answer, its number))."""
    seen: list[tuple[str, int]] = []

    def ask(now: int) -> str | None:
        s = site.db.new_session()
        try:
            issued = tenants.request_code(s, unit, phone, now=now)
            seen.append(("sent", 0))
            return issued.code
        except (tenants.TooSoon, tenants.LoginPaused) as exc:
            seen.append((type(exc).__name__, getattr(exc, "wait_s", getattr(exc, "minutes", 0))))
            return None
        finally:
            s.commit()
            s.close()

    code = ask(t) or "000000"
    ask(t + 10)
    for n in range(tenants.MAX_TRIES):
        out = _verify(site, _wrong(code), t + 20 + n, unit=unit, phone=phone)
        assert not isinstance(out, TenantLogin)
        seen.append((type(out).__name__, getattr(out, "tries_left", 0)))
    ask(t + 30)
    return seen


def test_a_stranger_sees_exactly_what_a_tenant_sees(site: Site) -> None:
    """Whether a unit and phone belong to a tenant must not show in the answers: not in "ask
    again in N seconds", not in the tries left, not in the pause (else a stranger learns which
    unit a phone number rents, one wrong code at a time, without a text ever being sent)."""
    t = now_ts() + 100_000  # after every code the page tests asked for (at the real time)
    tenant = _observed(site, TENANT_B["unit"], TENANT_B["phone"], t)
    assert tenant[:3] == [("sent", 0), ("TooSoon", 50), ("WrongCode", tenants.MAX_TRIES - 1)]
    assert tenant[-2:] == [("LoginPaused", 0), ("LoginPaused", 15)]
    for unit, phone in ((TENANT_B["unit"], "13999990000"), ("Z-404", TENANT_B["phone"])):
        assert _observed(site, unit, phone, t) == tenant, (unit, phone)
    assert all(p != "13999990000" for p, _c, _u in site.outbox.sent)
