"""The meter board and the command status page in Debian's Chromium against a live park
(``tests/web/customers_park.py``: ``gridvend cloud serve``, ``gridvend cloud bridge``, a
private Mosquitto and the simulated collector ``gw1``; one park for this module): the legend
counts every state, each tile spells its state; the board refreshes a meter's state by itself
(no reload) when it trips; a batch trip from the board reaches applied on the command status
page, the simulated relays open, and the failed-only retry is offered when one is refused;
the filters stay in the URL; the board's export opened with openpyxl; axe-core finds nothing
serious on the board (tiles and list) and on the command status page. Every test that moves
money or power checks the ledger identity on the meters it touched."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from cloud.models import AuditEntry, Command, CommandBatch
from tests.e2e.park import wait_for
from tests.support.browser import axe_violations, download_xlsx
from tests.web import customers_park
from tests.web.customers_park import GHOST, LivePark, M


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePark]:
    with customers_park.running(tmp_path_factory.mktemp("board")) as running:
        yield running


def _tile(page: Any, meter: str) -> Any:
    return page.locator(f'li.tile[data-meter="{meter}"]')


def test_the_legend_counts_every_state_and_each_tile_spells_its_own(
    page: Any, live: LivePark
) -> None:
    live.login(page, "operator")
    page.goto(live.url + "/office/board")
    counts = {
        st: int(page.locator(f"#legend-{st} .legend-count").inner_text())
        for st in ("opened", "alarm1", "alarm2", "arrears", "not_opened", "lost_contact")
    }
    assert counts["opened"] == 5, counts
    assert counts["not_opened"] == 4, counts  # M1, M6, M8 and the ghost
    assert sum(counts.values()) == 9
    assert "已开户" in page.locator("#legend").inner_text()
    tile = _tile(page, M[2])
    assert tile.get_attribute("data-state") == "opened"
    assert tile.locator(".tile-state").inner_text() == "已开户"  # colour never alone
    assert "赵一" in tile.inner_text()
    assert "¥100.00" in tile.inner_text()
    assert _tile(page, M[1]).locator(".tile-state").inner_text() == "未开户"
    assert axe_violations(page) == []
    # The list view: the same meters as rows, with the runway column.
    page.click("#view-list")
    row = page.locator(f'#board-list tr[data-meter="{M[2]}"]')
    expect(row).to_be_visible()
    assert "U2" in row.inner_text()
    assert "已开户" in row.inner_text()
    assert axe_violations(page) == []
    # Filters are kept in the URL (a state, the search) and the legend follows the other filters.
    page.check("#state-not_opened")
    page.fill("#q", "U")
    page.click("#board-search")
    page.wait_for_url(re.compile(r".*state=not_opened.*"))
    assert "q=U" in page.url
    assert "view=list" in page.url
    ids = page.locator("#board-list tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.meter)"
    )
    assert ids == [M[1], M[6], M[8], GHOST]
    assert page.locator("#list-total").inner_text() == "共 4 条"
    page.reload()
    assert page.locator("#state-not_opened").is_checked()


def test_the_board_shows_a_trip_by_itself_without_a_reload(page: Any, live: LivePark) -> None:
    live.login(page, "operator")
    page.goto(live.url + "/office/board")
    tile = _tile(page, M[7])
    expect(tile.locator(".badge-tripped")).to_have_count(0)
    page.evaluate("window.__same_page = true")
    live.api.post(f"/meters/{M[7]}/commands", {"op": "trip"}, ok=202)
    expect(tile.locator(".badge-tripped")).to_have_text("⊘ 已拉闸", timeout=60_000)
    assert tile.get_attribute("data-relay") == "open"
    assert page.evaluate("window.__same_page") is True  # the same document: no reload
    assert live.park.sim_state(M[7])["relay"] == "open"
    live.api.post(f"/meters/{M[7]}/commands", {"op": "close"}, ok=202)
    expect(tile.locator(".badge-tripped")).to_have_count(0, timeout=60_000)
    live.meter(M[7])


def test_a_batch_trip_from_the_board_reaches_applied_on_the_command_status_page(
    page: Any, live: LivePark
) -> None:
    live.login(page, "operator")
    page.goto(live.url + "/office/board")
    page.check(f"#sel-{M[2]}")
    page.check(f"#sel-{M[3]}")
    expect(page.locator("#selected-count")).to_have_text("2")
    # A ticked box survives the board's own refresh.
    updated = page.locator("#board-updated").inner_text()
    expect(page.locator("#board-updated")).not_to_have_text(updated, timeout=20_000)
    assert page.locator(f"#sel-{M[2]}").is_checked()
    page.select_option("#batch-action", "trip")
    dialogs: list[str] = []

    def answer(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    page.click("#batch-send")  # no reason yet: asked for one, nothing sent
    assert dialogs
    assert "原因" in dialogs[-1]
    page.fill("#batch-reason", "线路检修")
    page.click("#batch-send")
    page.wait_for_url(re.compile(r".*/office/board/batches/\d+$"))
    assert "2" in dialogs[-1]
    assert "拉闸" in dialogs[-1]
    batch_id = int(page.url.rsplit("/", 1)[1])
    assert axe_violations(page) == []
    page.evaluate("window.__same_page = true")
    for meter in (M[2], M[3]):
        row = page.locator(f'#batch-commands tr[data-meter="{meter}"]')
        expect(row).to_have_attribute("data-status", re.compile("applied|verified"), timeout=60_000)
        assert "已执行" in row.inner_text() or "已核实" in row.inner_text()
    expect(page.locator("#batch-status")).to_have_attribute("data-open", "no", timeout=30_000)
    assert page.evaluate("window.__same_page") is True
    for meter in (M[2], M[3]):
        wait_for(f"{meter}'s relay open", lambda m=meter: live.park.sim_state(m)["relay"] == "open",
                 30, live.park)  # fmt: skip
        live.meter(meter)
    with live.park.db.session() as s:
        group = s.get(CommandBatch, batch_id)
        assert group is not None
        assert group.op == "trip"
        assert group.count == 2
        logged = s.scalars(
            select(AuditEntry.after).where(
                AuditEntry.action == "command.batch", AuditEntry.target_id == str(batch_id)
            )
        ).one()
        assert logged["reason"] == "线路检修"
    # Back on: a batch over every meter of a filter (the two tripped ones).
    page.goto(live.url + f"/office/board?q={M[2]}")
    page.check("#target-filtered")
    page.select_option("#batch-action", "close")
    page.fill("#batch-reason", "检修完毕")
    page.click("#batch-send")
    page.wait_for_url(re.compile(r".*/office/board/batches/\d+$"))
    expect(page.locator("#batch-status")).to_have_attribute("data-open", "no", timeout=60_000)
    wait_for("M2's relay closed", lambda: live.park.sim_state(M[2])["relay"] == "closed", 30)


def test_a_refused_command_shows_its_reason_and_only_the_failed_are_retried(
    page: Any, live: LivePark
) -> None:
    live.login(page, "supervisor")
    page.goto(live.url + "/office/board?state=not_opened")
    page.check(f"#sel-{M[8]}")
    page.check(f"#sel-{GHOST}")  # the collector does not have this one
    page.select_option("#batch-action", "trip")
    page.fill("#batch-reason", "测试拒绝")
    page.on("dialog", lambda d: d.accept())
    page.click("#batch-send")
    page.wait_for_url(re.compile(r".*/office/board/batches/\d+$"))
    first = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#batch-status")).to_have_attribute("data-open", "no", timeout=60_000)
    good = page.locator(f'#batch-commands tr[data-meter="{M[8]}"]')
    bad = page.locator(f'#batch-commands tr[data-meter="{GHOST}"]')
    assert good.get_attribute("data-status") in ("applied", "verified")
    assert bad.get_attribute("data-status") == "rejected"
    assert "失败" in bad.inner_text()
    assert f"meter '{GHOST}' is not on this collector" in bad.inner_text()  # the reason
    assert page.locator("#batch-summary [data-status=rejected] strong").inner_text() == "1"
    page.click("#retry-failed")
    page.wait_for_url(re.compile(r".*/office/board/batches/\d+$"))
    second = int(page.url.rsplit("/", 1)[1])
    assert second != first
    expect(page.locator("#batch-status")).to_have_attribute("data-open", "no", timeout=60_000)
    with live.park.db.session() as s:
        retried = s.scalars(select(Command).where(Command.batch_id == second)).all()
        assert [(c.meter_id, c.op, c.args) for c in retried] == [
            (GHOST, "mode", {"mode": "forced_off"})
        ]
        assert retried[0].status == "rejected"
    live.api.post(f"/meters/{M[8]}/commands", {"op": "restore_prepaid"}, ok=202)


def test_the_board_export_has_every_meter_of_the_filters(
    page: Any, live: LivePark, tmp_path: Path
) -> None:
    live.login(page, "viewer")
    page.goto(live.url + "/office/board")
    expect(page.locator("#batch-form")).to_have_count(0)  # a viewer sends no command
    book, path = download_xlsx(page, lambda: page.click("#export"), tmp_path)
    assert path.suffix == ".xlsx"
    sheet = book.worksheets[0]
    assert sheet.title == "表计监控"
    rows = list(sheet.iter_rows(values_only=True))
    header = next(i for i, r in enumerate(rows) if r and r[0] == "户号")
    assert "表号" in rows[header]
    assert "状态" in rows[header]
    assert "剩余金额（元）" in rows[header]
    body = [r for r in rows[header + 1 :] if r and r[5]]
    assert sorted(r[5] for r in body) == sorted([*M.values(), GHOST])
    by_meter = {r[5]: r for r in body}
    balance_col = rows[header].index("剩余金额（元）")
    assert by_meter[M[4]][balance_col] == 60  # exact decimals, not text
    assert by_meter[M[1]][rows[header].index("状态")] == "未开户"
    for meter in M.values():
        live.meter(meter)
