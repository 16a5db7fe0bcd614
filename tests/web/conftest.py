"""Fixtures of the web tests: one Chromium per test module (Debian's, through Playwright), a
fresh browser context and page per test. The live server and its database are per module too
(see ``office_server`` below); a test module that needs its own data makes its own server with
``tests.support.browser.LiveServer``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.support.browser import launch, require_chromium
from tests.web.support import Office, start_office


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()

    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", accept_downloads=True)
    context.set_default_timeout(20_000)  # generous: a loaded 2-core machine is slow
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Office]:
    """The office app on a real database, served on loopback: one per test module."""
    live = start_office(tmp_path_factory.mktemp("office"))
    try:
        yield live
    finally:
        assert live.server is not None
        live.server.close()
        live.db.dispose()
