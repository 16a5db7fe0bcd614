"""Screenshots of the cashier's screens for the README, taken from a live park
(``tests/web/cashier_park.py``: the real serve, bridge, broker and simulated collector) in
Debian's Chromium. Rerun with::

    .venv/bin/python -m tests.web.screenshots [--out docs/screenshots]

It writes ``sell.png`` (the sale screen with a meter found, an amount and cash tendered typed,
the live balance after and the change) and ``receipt.png`` (the printed 80 mm receipt of that
sale once the collector applied it). Other screens of this park add their own function to
``SHOTS``; a script for another park (``tests/tenant/screenshots.py``,
``tests/web/report_screenshots.py``) calls ``take`` with its own.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import expect, sync_playwright

from tests.e2e.park import A
from tests.support.browser import launch
from tests.web import cashier_park
from tests.web.cashier_park import CashierPark

ROOT = Path(__file__).resolve().parents[2]
LiveT = TypeVar("LiveT")


def sell_and_receipt(page: Any, live: CashierPark, out: Path) -> list[Path]:
    live.login(page, "cashier")
    page.goto(live.url + "/office/sales/sell")
    page.keyboard.type(A)
    page.keyboard.press("Enter")
    page.wait_for_selector("#info-panel")
    page.keyboard.type("200")
    page.fill("#f-tendered", "300")
    page.focus("#f-amount")
    sell = out / "sell.png"
    page.screenshot(path=str(sell), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm-sale")
    page.keyboard.press("Enter")
    page.wait_for_selector("#receipt-preview")
    expect(page.locator("#dispatch-state")).to_have_text("已下发到表计", timeout=60_000)
    page.keyboard.press("Enter")  # print
    page.wait_for_selector("article.receipt.till")
    receipt = out / "receipt.png"
    page.locator("section.copy").first.screenshot(path=str(receipt))
    return [sell, receipt]


SHOTS: dict[str, Callable[[Any, CashierPark, Path], list[Path]]] = {
    "sales": sell_and_receipt,
}


def take(
    argv: list[str],
    doc: str | None,
    running: Callable[[Path], AbstractContextManager[LiveT]],
    shots: dict[str, Callable[[Any, LiveT, Path], list[Path]]],
    **context: Any,
) -> int:
    """The command line of a screenshot script: ``running(folder)`` starts the park in a
    temporary folder, then each of ``shots`` gets a fresh browser context (``context``: the
    viewport, device and so on; Chinese unless it says otherwise) and writes into ``--out``."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as folder,
        running(Path(folder)) as live,
        sync_playwright() as pw,
    ):
        browser = launch(pw)
        try:
            for name, shoot in shots.items():
                options = {"locale": "zh-CN", **context}
                browser_context = browser.new_context(**options)
                try:
                    for path in shoot(browser_context.new_page(), live, args.out):
                        print(f"{name}: {path}")
                finally:
                    browser_context.close()
        finally:
            browser.close()
    return 0


def main(argv: list[str]) -> int:
    return take(argv, __doc__, cashier_park.running, SHOTS, viewport={"width": 1280, "height": 860})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
