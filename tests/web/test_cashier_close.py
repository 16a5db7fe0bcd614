"""收银日结 agrees with the daily sales report to the fen, for every day of a mixed three days:
two cashiers, cash and WeChat, sales pending, applied and rejected, a sale late in the local
evening (the UTC date is already the next day's), a refund made one day and confirmed the next,
a rejected refund, reversals. The close's rows add up to its totals; the page shows them; the
ledger identity holds on every meter afterwards."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cloud.access import auth, operators
from cloud.audit import Actor
from cloud.control import dispatch
from cloud.db import Database
from cloud.models import Meter, Operator, Refund, Reversal, Sale
from cloud.money import accounts, ledger, refunds, reversals, sales
from cloud.reporting import cashier, reports
from cloud.web.office.formatting import yuan
from tests.cloud.support import T0, FakeEdge, send, sync
from tests.web.support import PASSWORDS, make_app, make_database

Y = 1_000_000
HOUR = 3600
DAY1, DAY2, DAY3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
# T0 is 2026-01-01 08:00 in Shanghai.
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("close")
    db, _park = make_database(tmp)
    with db.session() as s:
        auth.create_operator(s, "cash-2", "cash-2-password", "cashier", Actor("test"))
        ops = {
            name: operators.actor_of(s.scalars(select(Operator).where(Operator.username == name)).one())
            for name in ("cashier", "cash-2", "supervisor")
        }  # fmt: skip
        for meter in ("m-101", "m-103", "m-201"):
            accounts.open_account(s, {"name": f"tenant {meter}"}, [meter], Actor("test"), now=T0)
    edges = {"gw-1": FakeEdge("gw-1"), "gw-2": FakeEdge("gw-2")}
    sync(db, edges, now=T0)
    _three_days(db, edges, ops)
    yield {"db": db, "app": make_app(db, tmp), "edges": edges}
    db.dispose()


def _sell(db: Database, meter: str, yuan_: int, method: str, actor: Actor, ts: int) -> int:
    with db.session() as s:
        sale, _ = sales.sell(
            s, meter, yuan_ * Y, method, actor, idempotency_key=f"k-{meter}-{ts}", now=ts
        )
        return sale.id


def _refuse_next(db: Database, edge: FakeEdge, now: int) -> None:
    """The collector answers its next commands with a refusal (as one that ran out of room)."""
    with db.session() as s:
        msgs = dispatch.next_to_send(s, edge.gateway_id, now=now)
        dispatch.mark_sent(s, [m["id"] for m in msgs], now=now)
    assert msgs
    send(db, edge, [edge._result(m, "rejected", "refused by the test") for m in msgs], now=now)


def _three_days(db: Database, edges: dict[str, FakeEdge], ops: dict[str, Actor]) -> None:
    a, b = ops["cashier"], ops["cash-2"]
    # Day 1
    _sell(db, "m-101", 100, "cash", a, T0 + 1 * HOUR)
    _sell(db, "m-103", 50, "wechat", a, T0 + 2 * HOUR)
    _sell(db, "m-201", 80, "cash", b, T0 + 3 * HOUR)
    sync(db, edges, now=T0 + 3 * HOUR)
    reversed_sale = _sell(db, "m-101", 30, "wechat", b, T0 + 4 * HOUR)
    sync(db, edges, now=T0 + 4 * HOUR)
    with db.session() as s:
        reversals.reverse(s, reversed_sale, ops["supervisor"], note="wrong", now=T0 + 5 * HOUR)
    sync(db, edges, now=T0 + 5 * HOUR)
    # 23:30 local on day 1 (15:30 UTC): counts on day 1, applied the same minute
    _sell(db, "m-103", 20, "cash", b, T0 + 15 * HOUR + 1800)
    sync(db, edges, now=T0 + 15 * HOUR + 1900)
    # A refund made at 23:50 on day 1 and confirmed at 00:10 on day 2: it counts on day 2.
    with db.session() as s:
        refunds.refund(s, "m-101", 25 * Y, a, method="cash", now=T0 + 15 * HOUR + 3000)
    sync(db, edges, now=T0 + 16 * HOUR + 600)
    # Day 2: a sale the collector refuses is not counted.
    _sell(db, "m-201", 60, "cash", a, T0 + 26 * HOUR)
    _refuse_next(db, edges["gw-2"], T0 + 27 * HOUR)
    # A sale left pending: gw-2 does not answer again.
    _sell(db, "m-201", 40, "wechat", b, T0 + 28 * HOUR)
    gw1 = {"gw-1": edges["gw-1"]}
    # A refund the collector rejects (more than its balance) is not counted either.
    with db.session() as s:
        refunds.refund(s, "m-103", 60 * Y, b, method="wechat", now=T0 + 29 * HOUR)
    edges["gw-1"].wallet("m-103").balance -= 50 * Y  # consumption the cloud has not heard of
    sync(db, gw1, now=T0 + 29 * HOUR)
    edges["gw-1"].wallet("m-103").balance += 50 * Y
    # Day 3: a sale and its reversal by a cashier-less actor (no operator)
    day3 = _sell(db, "m-103", 10, "cash", Actor("api"), T0 + 50 * HOUR)
    sync(db, gw1, now=T0 + 50 * HOUR)
    with db.session() as s:
        reversals.reverse(s, day3, a, note="duplicate", now=T0 + 51 * HOUR)
    sync(db, gw1, now=T0 + 51 * HOUR)


@pytest.mark.parametrize("day", [DAY1, DAY2, DAY3])
def test_the_daily_close_agrees_with_the_daily_sales_report_to_the_fen(
    site: dict[str, Any], day: dt.date
) -> None:
    with site["db"].session() as s:
        close = cashier.daily_close(s, day)
        report = reports.sales(s, "day", day, day)
    totals = report["totals"]
    for name in (
        "sales_count",
        "sales_micro_yuan",
        "pending_count",
        "pending_micro_yuan",
        "refunds_count",
        "refunds_micro_yuan",
        "reversals_count",
        "reversals_micro_yuan",
        "net_micro_yuan",
    ):
        assert close["totals"][name] == totals[name], name
    for name in cashier.FIELDS:
        assert sum(row[name] for row in close["rows"]) == close["totals"][name], name
    assert close["totals"]["sales_count"] > 0


def test_the_close_splits_by_operator_and_method(site: dict[str, Any]) -> None:
    with site["db"].session() as s:
        day1 = {(r["operator"], r["method"]): r for r in cashier.daily_close(s, DAY1)["rows"]}
        day2 = {(r["operator"], r["method"]): r for r in cashier.daily_close(s, DAY2)["rows"]}
        cash2_only = cashier.daily_close(
            s,
            DAY1,
            operator_id=s.scalars(select(Operator.id).where(Operator.username == "cash-2")).one(),
        )
    cashier_cash = day1[("cashier", "cash")]
    assert cashier_cash["sales_micro_yuan"] == 100 * Y
    assert day1[("cash-2", "cash")]["sales_micro_yuan"] == 100 * Y  # 80 + 20 at 23:30
    assert day1[("cash-2", "wechat")]["sales_micro_yuan"] == 30 * Y
    # the reversal counts under the supervisor who made it, with its sale's method
    assert day1[("supervisor", "wechat")]["reversals_micro_yuan"] == 30 * Y
    # the refund confirmed after midnight counts on day 2
    assert day2[("cashier", "cash")]["refunds_micro_yuan"] == 25 * Y
    assert day2[("cashier", "cash")]["sales_micro_yuan"] == 0  # the rejected sale
    pending = day2[("cash-2", "wechat")]
    assert pending["sales_micro_yuan"] == pending["pending_micro_yuan"] == 40 * Y
    assert pending["refunds_micro_yuan"] == 0  # the rejected refund
    # the display name is the username: said once
    assert {r["operator"] for r in cash2_only["rows"]} == {"cash-2"}


def test_the_three_days_hold_every_kind_of_outcome(site: dict[str, Any]) -> None:
    with site["db"].session() as s:
        sale_states = sorted(s.scalars(select(Sale.status)))
        refund_states = sorted(s.scalars(select(Refund.status)))
        reversal_states = sorted(s.scalars(select(Reversal.status)))
    assert sale_states.count("rejected") == 1
    assert sale_states.count("pending") == 1
    assert refund_states == ["applied", "rejected"]
    assert reversal_states == ["applied", "applied"]


def test_the_ledger_identity_holds_on_every_meter(site: dict[str, Any]) -> None:
    with site["db"].session() as s:
        for meter in s.scalars(select(Meter)):
            assert ledger.identity_holds(meter), meter.id


def test_the_close_page_shows_the_report_figures(site: dict[str, Any]) -> None:
    client = site["app"].test_client()
    token = _TOKEN.search(client.get("/office/login").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    client.post(
        "/office/login",
        data={"username": "cashier", "password": PASSWORDS["cashier"], "csrf_token": token},
    )
    page = client.get("/office/sales/close?day=2026-01-01").get_data(as_text=True)
    with site["db"].session() as s:
        totals = reports.sales(s, "day", DAY1, DAY1)["totals"]
    for element, name in (
        ("close-sales", "sales_micro_yuan"),
        ("close-refunds", "refunds_micro_yuan"),
        ("close-reversals", "reversals_micro_yuan"),
        ("close-net", "net_micro_yuan"),
    ):
        shown = re.search(rf'id="{element}">¥([^<]+)<', page)
        assert shown is not None, element
        assert shown.group(1) == yuan(totals[name]), element
