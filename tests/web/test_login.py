"""Signing in, out and again in Debian's Chromium: the login page in Chinese by default and in
English after the switch; five wrong passwords lock the login for 15 minutes and the page says
so; the session cookie's flags; logout ends the session for good (the old cookie no longer
works); a POST without the CSRF token is refused; the CSP forbids inline script."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from cloud.access import auth
from cloud.audit import Actor
from cloud.models import Operator
from tests.support.browser import axe_violations
from tests.web.support import Office


def test_login_page_is_chinese_by_default_and_english_after_the_switch(
    page: Any, office: Office
) -> None:
    page.goto(office.url + "/office/")
    assert page.url.startswith(office.url + "/office/login")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "登录售电管理系统"
    page.click("button[value=en]")
    assert page.locator("h1").inner_text() == "Sign in to the office"
    assert page.locator("html").get_attribute("lang") == "en"
    office.login(page, "admin")
    assert "Welcome" in page.locator("h1").inner_text()  # the choice survives signing in
    page.click("button[value=zh_CN]")
    assert page.locator("h1").inner_text().startswith("欢迎")
    assert page.locator("nav.office-menu").get_by_text("登录管理").is_visible()


def test_five_wrong_passwords_lock_the_login_for_fifteen_minutes(page: Any, office: Office) -> None:
    with office.db.session() as s:
        auth.create_operator(s, "locky", "right-password-1", "cashier", Actor("test"))
    page.goto(office.url + "/office/login")
    for attempt in range(1, 6):
        page.fill("#f-username", "locky")
        page.fill("#f-password", f"wrong-{attempt}")
        page.click("#login-submit")
        message = page.locator("#form-error").inner_text()
        if attempt < 5:
            assert message == "用户名或密码错误，或该账号已停用。"
    assert "已锁定 15 分钟" in message
    # The right password is refused too while locked, with the same message.
    page.fill("#f-username", "locky")
    page.fill("#f-password", "right-password-1")
    page.click("#login-submit")
    assert "已锁定" in page.locator("#form-error").inner_text()
    assert page.url.startswith(office.url + "/office/login")
    with office.db.session() as s:
        op = s.scalars(select(Operator).where(Operator.username == "locky")).one()
        assert op.locked_until_ts is not None


def test_session_cookie_is_httponly_secure_lax_and_rotates_on_login(
    page: Any, office: Office
) -> None:
    page.goto(office.url + "/office/login")
    page.click("button[value=en]")  # makes an anonymous session cookie
    before = {c["name"]: c for c in page.context.cookies()}["gridvend_session"]["value"]
    office.login(page, "viewer")
    cookie = {c["name"]: c for c in page.context.cookies()}["gridvend_session"]
    assert cookie["httpOnly"]
    assert cookie["secure"]
    assert cookie["sameSite"] == "Lax"
    assert cookie["value"] != before


def test_logout_ends_the_session_and_the_old_cookie_stops_working(
    page: Any, office: Office
) -> None:
    office.login(page, "operator")
    stolen = page.context.cookies()
    page.click("header button:has-text('退出登录')")
    assert page.url.startswith(office.url + "/office/login")
    assert "您已退出登录" in page.content()
    page.context.add_cookies(stolen)  # replay the signed-in cookie
    page.goto(office.url + "/office/")
    assert page.url.startswith(office.url + "/office/login")
    # and signing in again works
    office.login(page, "operator")
    assert page.locator("#signed-in-as").inner_text().endswith("(operator)")


def test_a_post_without_the_csrf_token_is_refused(page: Any, office: Office) -> None:
    office.login(page, "admin")
    response = page.request.post(
        office.url + "/office/access/roles/new",
        form={"name": "sneaky", "permissions": "sales.read"},
    )
    assert response.status == 400
    with office.db.session() as s:
        assert not s.scalars(select(Operator).where(Operator.username == "sneaky")).first()


def test_pages_send_a_csp_without_inline_script_and_have_none(page: Any, office: Office) -> None:
    response = page.goto(office.url + "/office/login")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.locator("script:not([src]):not([type='application/json'])").count() == 0
    assert response.headers["x-content-type-options"] == "nosniff"


def test_login_page_has_no_serious_accessibility_violation(page: Any, office: Office) -> None:
    page.goto(office.url + "/office/login")
    assert axe_violations(page) == []
    page.fill("#f-username", "admin")
    page.fill("#f-password", "nope-nope")
    page.click("#login-submit")
    assert axe_violations(page) == []


def test_changing_the_password_marks_a_wrong_old_one_and_ends_other_sessions(
    browser: Any, page: Any, office: Office
) -> None:
    with office.db.session() as s:
        auth.create_operator(s, "wang", "old-password-1", "viewer", Actor("test"))
    other = browser.new_context(locale="zh-CN").new_page()
    for p in (page, other):
        p.goto(office.url + "/office/login")
        p.fill("#f-username", "wang")
        p.fill("#f-password", "old-password-1")
        p.click("#login-submit")
        p.wait_for_url(office.url + "/office/")
    page.goto(office.url + "/office/password")
    page.fill("#f-old_password", "not-it-at-all")
    page.fill("#f-new_password", "new-password-1")
    page.fill("#f-confirm_password", "new-password-1")
    page.click("main button[type=submit]")
    assert page.locator("#e-old_password").inner_text() == "原密码不正确。"
    page.fill("#f-old_password", "old-password-1")
    page.fill("#f-new_password", "new-password-1")
    page.fill("#f-confirm_password", "new-password-1")
    page.click("main button[type=submit]")
    expect(page.locator("body")).to_contain_text("密码已修改")
    other.goto(office.url + "/office/")  # the other session ended
    assert other.url.startswith(office.url + "/office/login")
    other.context.close()
    page.goto(office.url + "/office/")  # this one goes on
    assert page.url == office.url + "/office/"
