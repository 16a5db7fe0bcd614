"""Screenshots of the report centre for the README, taken in Debian's Chromium against the
fixture park of ``tests/reports/park.py`` (built through the real edge bookkeeping and ingest:
two buildings, six meters, a month of half-hourly readings and sales, January archived), the
office app served on loopback. Rerun with::

    .venv/bin/python -m tests.web.report_screenshots [--out docs/screenshots]

It writes ``report-energy.png`` (能耗分析: the whole site over 5-14 February, by day, compared
with the period before, the bars stacked by time-of-use band, down to the table by band) and
``report-sales.png`` (售电日报 from 28 January to 14 February: sales, a refund, a reversal
and a sale not yet applied, with the chart and the totals by method and by operator).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cloud.db import Database
from cloud.web import create_app
from tests.reports import park
from tests.support.browser import LiveServer
from tests.web.screenshots import take

URL = "/office/reports"


@contextmanager
def running(folder: Path) -> Iterator[LiveServer]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    db = Database(f"sqlite:///{folder / 'reports.db'}")
    try:
        db.upgrade()
        park.build(db, folder / "archive")
        app = create_app(
            {"TESTING": False, "DATABASE": db, "SECRET_KEY": "report-shots-secret-0123456789",
             "EXPORTS_DIR": str(folder / "exports")}
        )  # fmt: skip
        with LiveServer(app) as server:
            yield server
    finally:
        db.dispose()


def _shot(page: Any, out: Path, name: str) -> Path:
    page.wait_for_selector("#report-chart svg")
    page.wait_for_timeout(1000)  # the chart's entry animation
    path = out / name
    page.screenshot(path=str(path), full_page=True)
    return path


def reports(page: Any, live: LiveServer, out: Path) -> list[Path]:
    page.goto(live.url + "/office/login")
    page.fill("#f-username", "admin")
    page.fill("#f-password", "admin-secret-1")
    page.click("#login-submit")
    page.wait_for_url(live.url + "/office/")
    page.goto(live.url + URL + "/energy?from=2026-02-05&to=2026-02-14&compare=pop")
    energy = _shot(page, out, "report-energy.png")
    page.goto(live.url + URL + "/sales?from=2026-01-28&to=2026-02-14")
    return [energy, _shot(page, out, "report-sales.png")]


def main(argv: list[str]) -> int:
    return take(
        argv, __doc__, running, {"reports": reports}, viewport={"width": 1280, "height": 860}
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
