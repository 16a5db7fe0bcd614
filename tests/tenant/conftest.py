"""Fixtures of the tenant-site tests: one site (database, app, tenants) per test module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.support.browser import LiveServer, launch, require_chromium
from tests.tenant.support import PHONE, Site, make_site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    made = make_site(tmp_path_factory.mktemp("tenant"))
    made.app.config["PROPAGATE_EXCEPTIONS"] = True  # a failing view shows its traceback
    try:
        yield made
    finally:
        made.db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def live(site: Site) -> Iterator[LiveServer]:
    server = LiveServer(site.app).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A page on a 375 px phone (touch, mobile user agent), Chinese by default."""
    context = browser.new_context(**PHONE, locale="zh-CN", accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
