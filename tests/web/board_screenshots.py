"""Screenshots of the meter board for the README, taken from a live park
(``tests/web/customers_park.py``: the real serve, bridge, broker and simulated collector) in
Debian's Chromium. Rerun with::

    .venv/bin/python -m tests.web.board_screenshots [--out docs/screenshots]

The park's meters are put in every state the way a site gets there: thresholds dispatched
above their balance (alarm 1, alarm 2, arrears), a trip, keep power, a meter that stops
answering its collector (lost contact), load on a few meters. It writes ``board-tiles.png``
and ``board-list.png`` once the board shows them all, and ``command-status.png`` (a batch
trip followed to applied).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.e2e.park import wait_for
from tests.web import customers_park
from tests.web.customers_park import LivePark, M, Y
from tests.web.screenshots import take


def _settings(live: LivePark, meter: str, **yuan: int) -> None:
    args = {f"{name}_micro_yuan": value * Y for name, value in yuan.items()}
    live.api.post(f"/meters/{meter}/commands", {"op": "dispatch_settings", "args": args}, ok=202)


def stage(live: LivePark) -> None:
    """Every state of the legend on the park's meters, through the same commands as a site."""
    live.api.post("/accounts", {"customer": {"name": "吴六"},
                                "meters": [{"meter": M[1], "transfer_in_micro_yuan": 200 * Y}]})  # fmt: skip
    _settings(live, M[2], alarm1=120, alarm2=50)  # 100 yuan left: alarm 1
    _settings(live, M[3], alarm1=200, alarm2=150)  # alarm 2
    _settings(live, M[4], alarm1=90, alarm2=80, arrears=70)  # 60 yuan: arrears
    live.api.post(f"/meters/{M[5]}/commands", {"op": "keep_power"}, ok=202)
    live.api.post(f"/meters/{M[7]}/commands", {"op": "trip"}, ok=202)
    for meter, watts in ((M[1], 1500), (M[2], 800), (M[5], 2500)):
        live.park.set_load(meter, watts)
    live.park.control(M[8], "fault", dead=True)  # stops answering: lost contact
    want = {M[2]: "alarm1", M[3]: "alarm2", M[4]: "arrears", M[8]: "lost_contact"}
    for meter, state in want.items():
        wait_for(f"{meter} in {state}", lambda m=meter, st=state: live.api.get(
            f"/meters/{m}")["state"] == st, 120, live.park)  # fmt: skip


def board(page: Any, live: LivePark, out: Path) -> list[Path]:
    stage(live)
    live.login(page, "supervisor")
    page.goto(live.url + "/office/board")
    expect(page.locator(f'li.tile[data-meter="{M[7]}"] .badge-tripped')).to_have_count(1)
    tiles = out / "board-tiles.png"
    page.screenshot(path=str(tiles), full_page=True)
    page.goto(live.url + "/office/board?view=list")
    page.check(f"#sel-{M[2]}")
    page.check(f"#sel-{M[3]}")
    listed = out / "board-list.png"
    page.screenshot(path=str(listed), full_page=True)
    page.select_option("#batch-action", "trip")
    page.fill("#batch-reason", "线路检修")
    page.on("dialog", lambda d: d.accept())
    page.click("#batch-send")
    page.wait_for_url(re.compile(r".*/office/board/batches/\d+$"))
    expect(page.locator("#batch-status")).to_have_attribute("data-open", "no", timeout=60_000)
    status = out / "command-status.png"
    page.screenshot(path=str(status), full_page=True)
    return [tiles, listed, status]


def main(argv: list[str]) -> int:
    return take(
        argv, __doc__, customers_park.running, {"board": board},
        viewport={"width": 1536, "height": 900},
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
