"""Receipts as they print: the site's header and number of copies (客户联 / 存根联), the amount in
figures and capitals, 补打 from the second print on, a close-account settlement on the A5 slip
(退款 with the amount paid back), document numbers unique across every kind, and the English
page in English; balance before/after of a sale made without the counter (the API) come from the
collector's own balance once applied; a sale issued at the counter (``receipts.issued``, one read
for the receipt's balances and its document) prints what is read back, with a refund pending,
and is issued once; a document's addresses are its routes'. The ledger identity holds on every
meter afterwards."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import url_for
from sqlalchemy import select

from cloud.audit import Actor
from cloud.models import AuditEntry, Meter, Receipt, Settlement
from cloud.money import accounts, documents, ledger, receipts, refunds, sales, settlement
from cloud.park import inventory
from cloud.web.office.formatting import money
from cloud.web.office.sales.documents import links
from tests.cloud.support import T0, FakeEdge, sync
from tests.web.support import PASSWORDS, make_app, make_database

Y = 1_000_000
ACTOR = Actor("test")
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("receipts")
    db, park = make_database(tmp)
    with db.session() as s:
        inventory.set_defaults(s, park.site, receipt_header="测试物业 售电中心", receipt_copies=2)
        counter = accounts.open_account(s, {"name": "赵六"}, ["m-101"], ACTOR, now=T0)
        closing = accounts.open_account(s, {"name": "钱七"}, ["m-103"], ACTOR, now=T0)
    edges = {"gw-1": FakeEdge("gw-1"), "gw-2": FakeEdge("gw-2")}
    sync(db, edges, now=T0)
    with db.session() as s:
        sale, _ = sales.sell(s, "m-101", 1005_070_000, "cash", ACTOR, idempotency_key="r1", now=T0)
        receipts.issue(s, "sale", sale, ACTOR, tendered_micro_yuan=1100 * Y, now=T0)
        by_api, _ = sales.sell(s, "m-103", 80 * Y, "wechat", ACTOR, idempotency_key="r2", now=T0)
    sync(db, edges, now=T0 + 60)
    with db.session() as s:
        settlement.close_account(s, closing.id, ACTOR, now=T0 + 120)
    sync(db, edges, now=T0 + 180)
    with db.session() as s:
        settled = s.scalars(select(Settlement).where(Settlement.account_id == closing.id)).one()
        ids = {"sale": sale.id, "api_sale": by_api.id, "settlement": settled.id}
    app = make_app(db, tmp)
    client = app.test_client()
    token = _TOKEN.search(client.get("/office/login").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    client.post(
        "/office/login",
        data={"username": "cashier", "password": PASSWORDS["cashier"], "csrf_token": token},
    )
    yield {"db": db, "client": client, "ids": ids, "account": counter.id, "app": app}
    db.dispose()


def _print(site: dict[str, Any], kind: str, record_id: int) -> str:
    client = site["client"]
    token = _TOKEN.search(client.get("/office/sales/sell").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    answer = client.post(
        f"/office/sales/documents/{kind}/{record_id}/print", data={"csrf_token": token}
    )
    assert answer.status_code == 303
    return str(client.get(answer.headers["Location"]).get_data(as_text=True))


def test_a_till_receipt_has_the_sites_header_two_copies_and_the_amount_in_capitals(
    site: dict[str, Any],
) -> None:
    page = _print(site, "sale", site["ids"]["sale"])
    assert page.count('class="receipt till"') == 2
    assert "客户联" in page
    assert "存根联" in page
    assert page.count("测试物业 售电中心") == 2
    assert "人民币壹仟零伍元零柒分" in page
    assert "¥1,005.07" in page
    assert "¥94.93" in page  # change from 1,100.00
    assert "找零" in page  # the till's change keeps its word (the energy report's is 增减)
    assert "补打" not in page
    again = _print(site, "sale", site["ids"]["sale"])
    assert again.count("补打（第 2 次打印）") == 2  # on both copies


def test_a_settlement_prints_on_the_a5_slip_with_what_was_paid_back(site: dict[str, Any]) -> None:
    with site["db"].session() as s:
        doc = receipts.document(s, "settlement", site["ids"]["settlement"])
    assert doc.settlement["outcome"] == "refund"
    assert doc.amount_micro_yuan == 80 * Y
    assert doc.number.startswith("ST")
    page = _print(site, "settlement", site["ids"]["settlement"])
    assert 'class="receipt slip"' in page
    assert "销户结算单" in page
    assert "退款" in page
    assert "人民币捌拾元整" in page


def test_a_sale_made_by_the_api_shows_the_collectors_balance_once_applied(
    site: dict[str, Any],
) -> None:
    with site["db"].session() as s:
        doc = receipts.document(s, "sale", site["ids"]["api_sale"])
    assert doc.dispatch == "applied"
    assert doc.balance_after_micro_yuan == 80 * Y
    assert doc.balance_before_micro_yuan == 0


def test_a_sale_issued_at_the_counter_prints_what_is_read_back_with_a_refund_pending(
    site: dict[str, Any],
) -> None:
    s = site["db"].new_session()
    try:  # rolled back: the module's other documents stay as they were
        refund, _ = refunds.refund(s, "m-101", 5 * Y, ACTOR, idempotency_key="i-r", now=T0 + 300)
        assert receipts.issue(s, "refund", refund, ACTOR, note="moving out", now=T0 + 300)
        sale, _ = sales.sell(s, "m-101", 20 * Y, "cash", ACTOR, idempotency_key="i-s", now=T0 + 301)
        doc = receipts.issued(
            s, "sale", sale, ACTOR, tendered_micro_yuan=50 * Y, note="till 2", now=T0 + 301
        )
        meter = s.get(Meter, "m-101")
        assert meter is not None
        # The mirror, plus the sale on its way, less the refund on its way.
        assert doc.balance_after_micro_yuan == meter.balance_micro_yuan + 20 * Y - 5 * Y
        assert doc.balance_after_micro_yuan == receipts.counter_balance(s, meter)
        assert doc.balance_before_micro_yuan == doc.balance_after_micro_yuan - 20 * Y
        assert (doc.tendered_micro_yuan, doc.change_micro_yuan) == (50 * Y, 30 * Y)
        assert (doc.note, doc.prints, doc.purchase_count) == ("till 2", 0, sale.purchase_no)
        assert doc == receipts.document(s, "sale", sale.id)
        # Issued again: the first receipt is kept, and it is what prints.
        assert receipts.issued(s, "sale", sale, ACTOR, tendered_micro_yuan=100 * Y) == doc
        kept = s.scalars(
            select(Receipt).where(Receipt.kind == "sale", Receipt.record_id == sale.id)
        )
        assert [r.tendered_micro_yuan for r in kept] == [50 * Y]
        logged = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "receipt.issue", AuditEntry.target_id == sale.receipt_no
            )
        ).all()
        assert [e.after["balance_after_micro_yuan"] for e in logged] == [
            doc.balance_after_micro_yuan
        ]
    finally:
        s.rollback()
        s.close()


def test_a_documents_addresses_are_those_of_its_routes(site: dict[str, Any]) -> None:
    with site["app"].test_request_context("/office/sales/sell"):
        for kind in receipts.MODELS:
            own = links(kind, 42)
            args = {"kind": kind, "record_id": 42}
            assert own.page == url_for("office_sales.document", **args)
            assert own.state == url_for("office_sales.document_state", **args)
            assert own.print == url_for("office_sales.document_print", **args)
            assert links(kind, 42, own.page) == own


def test_document_numbers_are_unique_across_every_kind(site: dict[str, Any]) -> None:
    with site["db"].session() as s:
        stmt = documents.statement(documents.Filter())
        numbers = [documents.number(row) for row in s.execute(stmt)]
    assert len(numbers) >= 3
    assert len(set(numbers)) == len(numbers)


def test_the_english_page_prints_the_receipt_in_english(site: dict[str, Any]) -> None:
    client = site["client"]
    token = _TOKEN.search(client.get("/office/sales/sell").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    client.post("/office/language", data={"lang": "en", "csrf_token": token, "next": "/office/"})
    try:
        page = client.get(f"/office/sales/documents/sale/{site['ids']['sale']}").get_data(
            as_text=True
        )
        assert "Sale receipt" in page
        assert "This receipt is not a tax invoice." in page
        assert "人民币壹仟零伍元零柒分" in page  # the capitals are the amount's legal form
    finally:
        client.post("/office/language", data={"lang": "zh_CN", "csrf_token": token})


def test_the_ledger_identity_holds_on_every_meter(site: dict[str, Any]) -> None:
    with site["db"].session() as s:
        for meter in s.scalars(select(Meter)):
            assert ledger.identity_holds(meter), meter.id


def test_money_puts_the_minus_before_the_yuan_sign_exactly_from_micro_yuan() -> None:
    assert money(0) == "¥0.00"
    assert money(80 * Y) == "¥80.00"
    assert money(-80 * Y) == "-¥80.00"
    assert money(-5_000) == "-¥0.01"  # half a fen rounds away from zero, the sign kept
    assert money(-4_999) == "¥0.00"  # rounds to nothing: no minus on a zero
    assert money(1_234_567_890_005_000) == "¥1,234,567,890.01"  # no float could hold this
    assert money(-1_234_567_890_005_000) == "-¥1,234,567,890.01"
    assert money(None) == "—"
    assert money(-80 * Y, unit_class="unit") == '-<span class="unit">¥</span>80.00'


def test_every_template_gets_the_one_money_filter_and_yuan_stays_bare(
    site: dict[str, Any],
) -> None:
    """The receipts' macros and the office and tenant pages all write ``|money``; ``|yuan``
    (no sign) keeps its plain minus."""
    env = site["app"].jinja_env
    assert env.from_string("{{ v|money }}").render(v=-80 * Y) == "-¥80.00"
    assert env.from_string("{{ v|yuan }}").render(v=-80 * Y) == "-80.00"
    assert env.from_string("{{ v|yuan }}").render(v=1_234_560_000) == "1,234.56"
