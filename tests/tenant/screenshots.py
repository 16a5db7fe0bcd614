"""Screenshots of the tenants' phone site for the README, taken in Debian's Chromium at 375 px
(a phone's viewport, touch and user agent, drawn at 1 device pixel per CSS pixel) against the
test site of ``tests/tenant/support.py`` (the real app on loopback, the collectors played by
``FakeEdge``). Rerun with::

    .venv/bin/python -m tests.tenant.screenshots [--out docs/screenshots]

Tenant A's account opened 31 days ago with 500 yuan bought at the office, then m-101 reported
a reading a day (more on weekdays than at weekends, split peak / flat / valley) at 1 yuan per
kWh. The tenant signs in with the code the phone received, and the script writes
``tenant-home.png`` (balance, status, today, this month, runway), ``tenant-usage.png`` (the 30
daily bars, the 12 months, the time-of-use split) and ``tenant-topup.png`` (the preset amounts).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cloud.audit import Actor
from cloud.models import Meter
from cloud.money import sales
from cloud.park import inventory
from tests.cloud.support import send
from tests.support.browser import LiveServer
from tests.tenant.support import PHONE, TENANT_A, Site, make_site
from tests.web.screenshots import take

METER = TENANT_A["meters"][0]
PHONE_NO = str(TENANT_A["phone"])
DAY = 86_400
# kWh on each day of the week, Monday first: a studio that works weekdays.
WEEK_WH = (11_200, 12_600, 10_400, 13_100, 11_800, 4_300, 3_100)


def _stage(site: Site, now: int) -> None:
    """A month of life on m-101, through the same ingest as a collector's uplink."""
    opened = now - 31 * DAY
    with site.db.session() as s:
        inventory.set_defaults(s, site.park.site, price_micro_yuan_per_kwh=1_000_000)
        sales.sell(s, METER, 500_000_000, "cash", Actor("cashier"), now=opened + 3600)
    site.sync(opened + 3600)
    edge = site.edges["gw-1"]
    bands = {"sharp": 0, "peak": 0, "flat": 0, "valley": 0}
    for back in range(30, -1, -1):
        ts = now - back * DAY
        wh = WEEK_WH[time.gmtime(ts + 8 * 3600).tm_wday]  # the site's day, Asia/Shanghai
        peak, flat = wh * 45 // 100, wh * 30 // 100
        bands["peak"] += peak
        bands["flat"] += flat
        bands["valley"] += wh - peak - flat
        reading = edge.reading(METER, wh, 1_000_000, ts=ts)
        reading["band_energy_wh"] = dict(bands)
        send(site.db, edge, [reading], now=ts)
    with site.db.session(readonly=True) as s:
        meter = s.get(Meter, METER)
        assert meter is not None
        assert meter.balance_micro_yuan == (
            meter.credits_micro_yuan - meter.refunds_micro_yuan - meter.charges_micro_yuan
        )


@contextmanager
def running(folder: Path) -> Iterator[tuple[Site, LiveServer]]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    now = int(time.time())
    site = make_site(folder, opened_ts=now - 31 * DAY)
    try:
        _stage(site, now)
        with LiveServer(site.app) as server:
            yield site, server
    finally:
        site.db.dispose()


def phone_pages(page: Any, live: tuple[Site, LiveServer], out: Path) -> list[Path]:
    site, server = live
    page.goto(server.url + "/t/")
    page.fill("#f-unit", TENANT_A["unit"])
    page.fill("#f-phone", PHONE_NO)
    page.click("#send-code")
    page.wait_for_selector("#code-sent")
    page.fill("#f-code", site.outbox.last_code(PHONE_NO))
    page.click("#verify")
    page.wait_for_url(f"{server.url}/t/m/{METER}/")
    home = out / "tenant-home.png"
    page.screenshot(path=str(home), full_page=True)
    page.click("nav.tabs >> text=用电")
    for chart in ("#chart-daily svg", "#chart-monthly svg", "#chart-tou svg"):
        page.wait_for_selector(chart)
    page.wait_for_timeout(1000)  # the charts' entry animation
    usage = out / "tenant-usage.png"
    page.screenshot(path=str(usage), full_page=True)
    page.click("nav.tabs >> text=首页")
    page.click("#topup-link")
    page.check("#preset-100", force=True)
    topup = out / "tenant-topup.png"
    page.screenshot(path=str(topup), full_page=True)
    return [home, usage, topup]


def main(argv: list[str]) -> int:
    return take(
        argv, __doc__, running, {"tenant": phone_pages}, **{**PHONE, "device_scale_factor": 1}
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
