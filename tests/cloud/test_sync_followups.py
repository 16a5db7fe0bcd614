"""The sync follow-ups of issue 15 on the cloud side, on SQLite and PostgreSQL: a reading the
collector sent before a money result is not taken for a ledger mismatch when a resend delivers
it after the result (the comparison is causal, by the collector's message ids); a ``duplicate``
result carrying the original status settles the sale once instead of leaving it pending with
an alarm; a collector announcing itself online gets its unanswered commands at once."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.control import commands, dispatch, lifecycle
from cloud.models import Alarm, Command, Meter, Sale
from cloud.money import accounts, sales
from cloud.monitoring import alarms
from tests.cloud.support import ACTOR, T0, FakeEdge, send, sync

Y = 1_000_000


@pytest.fixture
def opened(db, park):
    with db.session() as s:
        accounts.open_account(s, {"name": "Tenant"}, ["m-101"], ACTOR, now=T0)
    edges = {"gw-1": FakeEdge("gw-1")}
    sync(db, edges)
    return edges


def _active(db: Any, kind: str) -> list[Alarm]:
    with db.session() as s:
        return s.query(Alarm).filter(Alarm.active.is_(True), Alarm.kind == kind).all()


def _credit_command(db: Any) -> dict[str, Any]:
    with db.session() as s:
        sales.sell(s, "m-101", 10 * Y, "cash", ACTOR, now=T0)
    with db.session() as s:
        (msg,) = dispatch.next_to_send(s, "gw-1", now=T0)
        dispatch.mark_sent(s, [msg["id"]], now=T0)
    return msg


def test_a_reading_sent_before_an_applied_credit_is_no_ledger_mismatch(db, opened):
    edge = opened["gw-1"]
    before = edge.reading("m-101", 100)  # the collector's totals before the credit
    cmd = _credit_command(db)
    (result,) = edge.handle(cmd)
    assert result["status"] == "applied"
    # The reading and the result share the collector's outbox counter: the reading came first.
    before["id"] = result["id"] - 1
    assert before["credits_micro_yuan"] == 0
    send(db, edge, [result], seq=100)  # the reading's envelope was lost and comes later
    send(db, edge, [before], seq=99)
    assert _active(db, alarms.LEDGER_MISMATCH) == []
    with db.session() as s:
        meter = s.get(Meter, "m-101")
        assert meter.credits_micro_yuan == 10 * Y
        assert meter.money_result_id == result["id"]
        assert meter.balance_micro_yuan == (
            meter.credits_micro_yuan - meter.refunds_micro_yuan - meter.charges_micro_yuan
        )


def test_a_reading_sent_after_the_credit_still_catches_a_real_mismatch(db, opened):
    edge = opened["gw-1"]
    cmd = _credit_command(db)
    (result,) = edge.handle(cmd)
    send(db, edge, [result])
    after = edge.reading("m-101", 100)
    after["id"] = result["id"] + 1
    after["credits_micro_yuan"] += 5 * Y  # the collector claims money the cloud never sold
    after["balance_micro_yuan"] += 5 * Y
    send(db, edge, [after])
    (alarm,) = _active(db, alarms.LEDGER_MISMATCH)
    assert alarm.meter_id == "m-101"


def _two_commands_for_one_sale(db: Any, edge: FakeEdge) -> tuple[dict[str, Any], ...]:
    """A credit, and a second command id for the same sale and purchase number (the office
    re-issued it while the first was out): the collector answers the second ``duplicate``."""
    first = _credit_command(db)
    with db.session() as s:
        sale = s.query(Sale).one()
        again = commands.enqueue(
            s,
            gateway_id="gw-1",
            meter_id="m-101",
            op="credit",
            args=dict(first["args"]),
            ref=("sale", sale.id),
            now=T0,
        )
        second = dispatch.to_message(again, T0)
        dispatch.mark_sent(s, [again.id], now=T0)
    (applied,) = edge.handle(first)
    (duplicate,) = edge.handle(second)
    return applied, duplicate


def test_a_duplicate_carrying_the_original_status_settles_the_sale_once(db, opened):
    edge = opened["gw-1"]
    applied, duplicate = _two_commands_for_one_sale(db, edge)
    assert duplicate["status"] == "duplicate"
    assert duplicate["original_status"] == "applied"
    send(db, edge, [duplicate])  # the duplicate's answer arrives first (a resend reordered)
    with db.session() as s:
        sale = s.query(Sale).one()
        assert sale.status == "applied"
        assert s.get(Meter, "m-101").credits_micro_yuan == 10 * Y
    send(db, edge, [applied])
    with db.session() as s:
        assert s.get(Meter, "m-101").credits_micro_yuan == 10 * Y  # once
        assert {c.status for c in s.query(Command).filter(Command.op == "credit")} == {
            lifecycle.APPLIED
        }
    assert _active(db, alarms.DUPLICATE_RESULT) == []


def test_a_duplicate_without_the_original_status_still_asks_a_person(db, opened):
    edge = opened["gw-1"]
    _applied, duplicate = _two_commands_for_one_sale(db, edge)
    del duplicate["original_status"]  # an agent from before issue 15
    send(db, edge, [duplicate])
    with db.session() as s:
        assert s.query(Sale).one().status == "pending"
    assert len(_active(db, alarms.DUPLICATE_RESULT)) == 1


def test_commands_out_without_a_result_are_due_again_when_the_collector_is_online(db, opened):
    cmd = _credit_command(db)
    with db.session() as s:
        # Sent a moment ago: not due before its retry time...
        assert dispatch.next_to_send(s, "gw-1", now=T0 + 1) == []
        assert dispatch.due_again(s, "gw-1") == 1
    with db.session() as s:
        # ...until the collector says it is online (it may have missed it while away).
        assert [m["id"] for m in dispatch.next_to_send(s, "gw-1", now=T0 + 1)] == [cmd["id"]]
