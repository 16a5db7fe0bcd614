"""The customer screens' and the board's server-side rules, through the office app on a real
SQLite park (no collector answers here: what is sent stays pending): a trip without a reason is
refused and sends nothing; ticked meters outside the operator's buildings are left out and
their panels are 404; a batch over every meter of a filter skips plain meters; the wizard marks
thresholds a collector would refuse and a first purchase over the hoarding cap on their steps,
in Chinese, with nothing written; a close with money in flight is refused the same way; the
account lists count and total the whole filtered set; a swap's refusal is marked and writes
nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cloud.access import operators
from cloud.audit import Actor
from cloud.models import (
    Account,
    AuditEntry,
    Building,
    Command,
    CommandBatch,
    Meter,
    MeterSwap,
    Sale,
    TransferIn,
    Unit,
)
from cloud.money import accounts, ledger, sales
from tests.web.support import PASSWORDS, make_app, make_database

ACTOR = Actor("test")
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
Y = 1_000_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("customer-forms")
    db, _park = make_database(tmp)
    with db.session() as s:
        b = s.scalars(select(Building).where(Building.name == "B")).one()
        operators.create(s, ACTOR, username="only-b", password="only-b-pass", role="supervisor",
                         buildings=[b.id])  # fmt: skip
        accounts.open_account(s, {"name": "甲", "phone": "13811112222"}, ["m-101"], ACTOR)
        accounts.open_account(s, {"name": "乙"}, ["m-201"], ACTOR)
    PASSWORDS["only-b"] = "only-b-pass"
    app = make_app(db, tmp)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    yield {"app": app, "db": db}
    del PASSWORDS["only-b"]
    db.dispose()


def _client(app: Any, user: str) -> tuple[Any, str]:
    client = app.test_client()
    token = _TOKEN.search(client.get("/office/login").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    resp = client.post("/office/login", data={"username": user, "password": PASSWORDS[user],
                                              "csrf_token": token})  # fmt: skip
    assert resp.status_code == 302
    page = client.get("/office/board").get_data(as_text=True)
    return client, _TOKEN.search(page).group(1)  # type: ignore[union-attr]


def _batches(db: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(CommandBatch)) or 0)


def test_a_trip_without_a_reason_sends_nothing_and_one_with_a_reason_is_logged(site: Any) -> None:
    client, token = _client(site["app"], "supervisor")
    before = _batches(site["db"])
    form = {
        "csrf_token": token,
        "action": "trip",
        "meter": ["m-101", "m-201"],
        "back": "/office/board",
    }
    resp = client.post("/office/board/commands", data=form, follow_redirects=True)
    assert "这是必填项" in resp.get_data(as_text=True) or "必填" in resp.get_data(as_text=True)
    assert _batches(site["db"]) == before
    resp = client.post("/office/board/commands", data={**form, "reason": "检修"})
    assert resp.status_code == 303
    batch_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    with site["db"].session() as s:
        cmds = s.scalars(select(Command).where(Command.batch_id == batch_id)).all()
        assert sorted(c.meter_id for c in cmds) == ["m-101", "m-201"]
        assert {c.args["mode"] for c in cmds} == {"forced_off"}
        logged = s.scalars(select(AuditEntry.after).where(AuditEntry.action == "command.batch",
                                                          AuditEntry.target_id == str(batch_id))).one()  # fmt: skip
        assert logged["reason"] == "检修"
    page = client.get(f"/office/board/batches/{batch_id}").get_data(as_text=True)
    assert 'data-open="yes"' in page  # pending: the page follows them
    assert 'hx-trigger="every 2s"' in page


def test_a_building_scoped_operator_acts_only_on_their_meters(site: Any) -> None:
    client, token = _client(site["app"], "only-b")
    page = client.get("/office/board").get_data(as_text=True)
    assert 'data-meter="m-201"' in page
    assert 'data-meter="m-101"' not in page
    assert client.get("/office/board/meters/m-101").status_code == 404
    assert client.get("/office/board/meters/m-201").status_code == 200
    resp = client.post("/office/board/commands", data={"csrf_token": token, "action": "read_now",
                                                       "meter": ["m-101", "m-201"]})  # fmt: skip
    batch_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    with site["db"].session() as s:
        sent = s.scalars(select(Command.meter_id).where(Command.batch_id == batch_id)).all()
        assert sent == ["m-201"]  # m-101 is outside the operator's buildings
        account_a = s.scalars(select(Meter.account_id).where(Meter.id == "m-101")).one()
    assert client.get(f"/office/customers/accounts/{account_a}").status_code == 404
    listing = client.get("/office/customers/accounts").get_data(as_text=True)
    assert "乙" in listing
    assert "甲" not in listing


def test_a_batch_over_every_meter_of_a_filter_leaves_out_plain_meters(site: Any) -> None:
    client, token = _client(site["app"], "supervisor")
    resp = client.post("/office/board/commands?q=m-1", data={"csrf_token": token, "action": "trip",
                       "target": "filtered", "reason": "停电检修"})  # fmt: skip
    batch_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    with site["db"].session() as s:
        sent = sorted(s.scalars(select(Command.meter_id).where(Command.batch_id == batch_id)))
    assert sent == ["m-101", "m-102", "m-103"]  # not m-p1, a plain meter of the filter


def _wizard(client: Any, token: str, db: Any, **fields: str) -> Any:
    with db.session() as s:
        unit = s.scalars(select(Unit.id).where(Unit.number == "A-102")).one()
    form = {"csrf_token": token, "unit": str(unit), "meter": "m-103", "key": "k-1", "name": "丙",
            "phone": "13900000000", **fields}  # fmt: skip
    return client, form


def test_the_wizard_marks_refused_values_on_their_step_and_writes_nothing(
    site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, token = _client(site["app"], "cashier")
    client, form = _wizard(client, token, site["db"])
    page = client.post("/office/customers/open", data={**form, "step": "tariff", "alarm1": "5",
                                                       "alarm2": "50"})  # fmt: skip
    assert page.status_code == 422
    text = page.get_data(as_text=True)
    assert 'id="e-alarm1"' in text
    assert "报警金额1" in text
    assert "会拒绝" in text
    form.update({"alarm1": "50", "alarm2": "20", "hoarding_cap": "100", "method": "cash",
                 "purchase_m-103": "500"})  # fmt: skip
    page = client.post("/office/customers/open", data={**form, "step": "recap"})
    assert page.status_code == 422
    assert "超过囤积金额上限 ¥100。" in page.get_data(as_text=True)  # on the money step
    with site["db"].session() as s:
        assert s.get(Meter, "m-103").account_id is None  # nothing opened
        assert s.get(Meter, "m-103").alarm1_micro_yuan is None  # nor its values changed
        assert s.scalars(select(Account).where(Account.number.like("A%"))).all()
    form["purchase_m-103"] = "80"
    # A slow opening: the first purchase is made seconds after the account (a loaded server).
    clock = sales.now_ts
    monkeypatch.setattr(sales, "now_ts", lambda: clock() + 3)
    resp = client.post("/office/customers/open", data={**form, "step": "recap"})
    assert resp.status_code == 303
    monkeypatch.setattr(sales, "now_ts", clock)
    result = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'id="open-receipts"' in result  # its receipt is listed as part of the opening
    again = client.post("/office/customers/open", data={**form, "step": "recap"})  # a double click
    assert again.headers["Location"] == resp.headers["Location"]
    with site["db"].session() as s:
        meter = s.get(Meter, "m-103")
        assert meter.account_id is not None
        assert meter.hoarding_cap_micro_yuan == 100 * Y
        assert len(s.scalars(select(Account).where(Account.id == meter.account_id)).all()) == 1
        assert s.scalars(select(Sale.amount_micro_yuan).where(Sale.meter_id == "m-103")).all() == [
            80 * Y
        ]  # one sale for the two clicks
        ledger.verify(s, "m-103")


def test_a_close_with_money_in_flight_is_refused_in_chinese(site: Any) -> None:
    client, token = _client(site["app"], "cashier")
    with site["db"].session() as s:
        account_id = s.scalars(select(Meter.account_id).where(Meter.id == "m-101")).one()
        sales.sell(s, "m-101", 10 * Y, "cash", ACTOR)
    page = client.post(f"/office/customers/accounts/{account_id}/close", data={"csrf_token": token})
    assert page.status_code == 422
    assert "还有款项在等待管理机确认" in page.get_data(as_text=True)
    with site["db"].session() as s:
        assert s.get(Account, account_id).status == "open"
        ledger.verify(s, "m-101")


def test_a_refused_swap_is_marked_and_writes_nothing(site: Any) -> None:
    client, token = _client(site["app"], "supervisor")
    with site["db"].session() as s:
        account_id = s.scalars(select(Meter.account_id).where(Meter.id == "m-201")).one()
    page = client.post(f"/office/customers/accounts/{account_id}/swap",
                       data={"csrf_token": token, "old": "m-201", "new": "m-201"})  # fmt: skip
    assert page.status_code == 422
    assert "新表不能与旧表相同" in page.get_data(as_text=True)
    page = client.post(f"/office/customers/accounts/{account_id}/swap",
                       data={"csrf_token": token, "old": "m-201", "new": "m-202", "final_kwh": "-3"})  # fmt: skip
    assert page.status_code == 422
    with site["db"].session() as s:
        assert s.scalars(select(MeterSwap)).first() is None
        assert s.get(Meter, "m-202").account_id is None


def test_the_account_lists_count_and_total_the_whole_filtered_set(site: Any) -> None:
    client, _token = _client(site["app"], "viewer")
    page = client.get("/office/customers/accounts?per_page=10").get_data(as_text=True)
    total = re.search(r'id="list-total">共 (\d+) 条', page)
    assert total is not None
    with site["db"].session() as s:
        open_count = s.scalar(
            select(func.count()).select_from(Account).where(Account.status != "closed")
        )
    assert int(total.group(1)) == open_count
    page = client.get("/office/customers/accounts?q=13811112222").get_data(as_text=True)
    assert "共 1 条" in page
    assert "甲" in page


def test_a_meter_added_to_an_account_gets_its_transfer_in(site: Any) -> None:
    client, token = _client(site["app"], "cashier")
    with site["db"].session() as s:
        account_id = s.scalars(select(Meter.account_id).where(Meter.id == "m-201")).one()
    page = client.get(f"/office/customers/accounts/{account_id}/meters").get_data(as_text=True)
    assert 'value="m-202"' in page  # a free meter of the site
    assert 'value="m-101"' not in page  # another tenant's
    refused = client.post(f"/office/customers/accounts/{account_id}/meters",
                          data={"csrf_token": token, "meter": "m-101"})  # fmt: skip
    assert refused.status_code == 422
    resp = client.post(
        f"/office/customers/accounts/{account_id}/meters",
        data={
            "csrf_token": token,
            "meter": "m-202",
            "transfer": "12.50",
            "transfer_source": "旧表",
        },
    )
    assert resp.status_code == 303
    with site["db"].session() as s:
        meter = s.get(Meter, "m-202")
        assert meter.account_id == account_id
        transfer = s.scalars(select(TransferIn).where(TransferIn.meter_id == "m-202")).one()
        assert (transfer.amount_micro_yuan, transfer.source) == (12_500_000, "旧表")
        ledger.verify(s, "m-202")
