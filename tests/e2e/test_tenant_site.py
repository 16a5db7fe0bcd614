"""A tenant tops up from a phone while the simulated park runs, every part as the user runs it:
``gridvend sim`` → ``gridvend edge run`` → Mosquitto → ``gridvend cloud bridge`` →
``gridvend cloud serve`` (+ ``gridvend cloud payments run``), and Debian's Chromium at 375 px.

The tenant's meter runs out of credit under load and its relay trips (the simulator's control
channel tells the meter's true relay). The tenant signs in with the one-time code from the
server's log (the demo's stand-in for an SMS), tops up 50 yuan through the sandbox provider,
and watches the result page: paid → credited on the meter → power on, while the simulated
meter's relay closes. One live park for this module."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from demo.park import Park
from tests.e2e.park import A, Api, start_park, wait_for
from tests.support.browser import axe_violations, launch, require_chromium
from tests.support.services import Mosquitto
from tests.tenant.support import PHONE

UNIT, TENANT_PHONE = "U1", "13800001111"  # meter A is in unit U1 (tests/e2e/park.py)
_CODE = re.compile(r"DEMO ONLY.*unit U1, phone 138\*\*\*\*1111: (\d{6})")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Park, Api]]:
    folder = tmp_path_factory.mktemp("tenant-park")
    broker = Mosquitto().start()
    park, api = start_park(folder, f"sqlite:///{folder / 'cloud.db'}", broker.url)
    try:
        park.start_payments("--every", "2")
        yield park, api
    finally:
        park.stop()
        broker.close()


@pytest.fixture(scope="module")
def phone() -> Iterator[Any]:
    require_chromium()
    with sync_playwright() as pw:
        chromium = launch(pw)
        context = chromium.new_context(**PHONE, locale="zh-CN")
        context.set_default_timeout(30_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            chromium.close()


def _api_log(park: Park) -> str:
    child = next(c for c in park.children.items if c.name == "api")
    return child.log.read_text(encoding="utf-8", errors="replace")


def test_a_tripped_tenant_tops_up_fifty_yuan_and_the_power_comes_back(
    running: tuple[Park, Api], phone: Any
) -> None:
    park, api = running
    page = phone
    api.post(
        "/accounts",
        {
            "customer": {"name": "Studio U1", "phone": TENANT_PHONE},
            "meters": [{"meter": A, "transfer_in_micro_yuan": 2_000_000}],
        },
    )
    park.set_load(A, 30_000)  # about 0.33 yuan a second: 2 yuan go in seconds
    wait_for("the meter to trip", lambda: park.sim_state(A)["relay"] == "open", 90, park)
    wait_for(
        "the cloud to see the trip",
        lambda: api.get(f"/meters/{A}")["relay"] == "open",
        60,
        park,
    )
    park.set_load(A, 2_000)

    base = park.api_url
    assert base is not None
    page.goto(base + "/t/login")
    page.fill("#f-unit", UNIT)
    page.fill("#f-phone", TENANT_PHONE)
    page.click("#send-code")
    page.wait_for_selector("#demo-code-hint")  # the page says where the demo's code goes
    code = wait_for("the code in the server log", lambda: _CODE.search(_api_log(park)), 15, park)
    page.fill("#f-code", code.group(1))
    page.click("#verify")
    page.wait_for_url(f"{base}/t/m/{A}/")
    assert page.locator("#status-pill").inner_text() == "已断电"
    before = api.get(f"/meters/{A}")["balance_micro_yuan"]
    assert before <= 0
    assert axe_violations(page) == []

    page.click("#topup-link")
    page.check("#preset-50", force=True)
    page.check("#provider-sandbox", force=True)
    page.click("#pay")
    page.click("#sandbox-confirm")
    page.wait_for_selector("#order-live")
    page.wait_for_selector("#step-paid.done")
    page.wait_for_selector("#step-credited.done", timeout=60_000)
    page.wait_for_selector("#step-power.done", timeout=60_000)
    assert park.sim_state(A)["relay"] == "closed"  # the meter itself switched back on
    shown = page.locator("#order-balance").inner_text()
    meter = api.get(f"/meters/{A}")
    assert meter["relay"] == "closed"
    assert meter["balance_micro_yuan"] > before + 40_000_000  # 50 yuan in, a little used since
    assert shown.startswith("¥")  # the page's money format (formatting.money)
    assert Decimal(shown.removeprefix("¥").replace(",", "")) > 40

    page.click("#back-home")
    assert page.locator("#status-pill").inner_text() != "已断电"
    assert "更新于" in page.locator("#updated").inner_text()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375
    sales = api.get(f"/sales?meter={A}")["sales"]
    online = [s for s in sales if s["method"] == "sandbox"]
    assert len(online) == 1
    assert online[0]["status"] == "applied"
    assert online[0]["amount_micro_yuan"] == 50_000_000
    assert park.check_alive() == []  # the payment jobs ran beside it all along
