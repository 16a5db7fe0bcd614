"""Events into messages: what the bridge records (alarms from edge events, relay events, applied
sales, a silent collector) becomes one message per crossing and number, never two, on SQLite
and PostgreSQL. The edge's messages go through ``cloud.uplink.ingest`` as the bridge sends them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cloud.db import Database
from cloud.models import Meter, NotifyRecipient, OutboxMessage, SiteDefaults, now_ts
from cloud.money import accounts, ledger, sales
from cloud.monitoring import alarms
from cloud.notify import login_codes, sources
from cloud.reporting import usage
from tests.cloud.support import ACTOR, T0, FakeEdge, Park, send, sync

SCAN = sources.Scan(sign="园区电费", coalesce_s=300)
PHONE = "13800138000"


@pytest.fixture
def edges() -> dict[str, FakeEdge]:
    return {"gw-1": FakeEdge("gw-1"), "gw-2": FakeEdge("gw-2")}


@pytest.fixture
def tenant(db: Database, park: Park, edges: dict[str, FakeEdge]) -> int:
    """m-101 (unit A-101) in an open account of a customer with a phone, 100 yuan moved in."""
    with db.session() as s:
        account = accounts.open_account(
            s, {"name": "Studio One", "phone": PHONE},
            [{"meter": "m-101", "transfer_in_micro_yuan": 100_000_000}], ACTOR, now=T0,
        )  # fmt: skip
        customer = account.customer_id
    sync(db, edges)
    return customer


def scan(db: Database, now: int = T0) -> int:
    with db.session() as s:
        return sources.scan(s, SCAN, now)


def texts(db: Database) -> list[tuple[str, str, str]]:
    with db.session() as s:
        return [
            (m.kind, m.recipient, m.text)
            for m in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        ]


def level(edge: FakeEdge, kind: str, balance: int, ts: int = T0) -> dict[str, Any]:
    return edge.event("m-101", kind, ts, {"level": kind, "balance_micro_yuan": balance})


def test_each_alarm_crossing_is_one_chinese_text_with_unit_and_balance(
    db: Database, edges: dict[str, FakeEdge], tenant: int
) -> None:
    edge = edges["gw-1"]
    send(db, edge, [level(edge, "alarm1", 49_500_000)], now=T0 + 10)
    assert scan(db, T0 + 11) == 1
    assert scan(db, T0 + 12) == 0  # a rescan finds the key taken
    send(db, edge, [level(edge, "alarm2", 19_990_000)], now=T0 + 20)
    scan(db, T0 + 21)
    assert texts(db) == [
        ("alarm1", PHONE, "【园区电费】您好，单元A-101 (m-101)电表余额49.50元，已低于一级报警值，请及时充值。"),
        ("alarm2", PHONE,
         "【园区电费】单元A-101 (m-101)电表余额19.99元，已低于二级报警值，余额用尽将自动断电，请尽快充值。"),
    ]  # fmt: skip


def test_a_resent_uplink_makes_no_second_text(
    db: Database, edges: dict[str, FakeEdge], tenant: int
) -> None:
    edge = edges["gw-1"]
    msg = level(edge, "alarm1", 49_000_000)
    seq = edge.next_seq()
    send(db, edge, [msg], now=T0 + 10, seq=seq)
    send(db, edge, [msg], now=T0 + 30, seq=seq)  # the collector resends the envelope
    send(db, edge, [msg], now=T0 + 40)  # and again, in a new envelope
    scan(db, T0 + 50)
    scan(db, T0 + 60)
    assert [k for k, _, _ in texts(db)] == ["alarm1"]


def test_arrears_with_its_trip_is_one_text_and_a_later_trip_is_another(
    db: Database, edges: dict[str, FakeEdge], tenant: int
) -> None:
    edge = edges["gw-1"]
    trip = edge.event("m-101", "trip", T0, {"reason": "credit"})
    send(db, edge, [level(edge, "arrears", -10_000), trip], now=T0 + 10)
    scan(db, T0 + 11)
    assert [k for k, _, _ in texts(db)] == ["arrears"]
    # Tripped again much later (re-closed for a while in between): that one is texted.
    later = T0 + 3600
    send(db, edge, [edge.event("m-101", "trip", later, {"reason": "credit"})], now=later)
    scan(db, later + 1)
    assert [k for k, _, _ in texts(db)] == ["arrears", "tripped"]


def test_a_trip_for_overload_is_not_a_credit_text(
    db: Database, edges: dict[str, FakeEdge], tenant: int
) -> None:
    edge = edges["gw-1"]
    send(db, edge, [edge.event("m-101", "trip", T0, {"reason": "overload"})], now=T0 + 10)
    scan(db, T0 + 11)
    assert texts(db) == []


def test_a_top_up_texts_amount_and_new_balance_and_its_restore_is_not_a_second_text(
    db: Database, edges: dict[str, FakeEdge], tenant: int
) -> None:
    edge = edges["gw-1"]
    t = T0 + 100
    send(db, edge, [edge.event("m-101", "trip", t, {"reason": "credit"})], now=t)
    with db.session() as s:
        sales.sell(s, "m-101", 50_000_000, "cash", ACTOR, idempotency_key="k1", now=t + 5)
    sync(db, edges, now=t + 6)
    send(db, edge, [edge.event("m-101", "close", t + 7, {"reason": "restore"})], now=t + 7)
    scan(db, t + 8)
    kinds = [k for k, _, _ in texts(db)]
    assert kinds == ["tripped", "topup"]
    assert texts(db)[1][2] == "【园区电费】单元A-101 (m-101)充值50.00元已到账，当前余额150.00元。"
    with db.session() as s:
        ledger.verify(s, "m-101")  # balance == credits − refunds − charges
        assert s.get(Meter, "m-101").balance_micro_yuan == 150_000_000


def test_power_restored_without_a_top_up_is_texted_but_not_at_account_opening(
    db: Database, edges: dict[str, FakeEdge], tenant: int
) -> None:
    edge = edges["gw-1"]
    send(db, edge, [edge.event("m-101", "close", T0, {"reason": "restore"})], now=T0 + 1)
    scan(db, T0 + 2)
    assert texts(db) == []  # no credit trip before it: the relay closed at opening
    t = T0 + 1000
    send(db, edge, [edge.event("m-101", "trip", t, {"reason": "credit"})], now=t)
    send(db, edge, [edge.event("m-101", "close", t + 900, {"reason": "restore"})], now=t + 900)
    scan(db, t + 901)
    assert [k for k, _, _ in texts(db)] == ["tripped", "restored"]


def test_an_alarm_cleared_upwards_before_the_scan_is_not_texted_but_one_cleared_downwards_is(
    db: Database, edges: dict[str, FakeEdge], tenant: int
) -> None:
    edge = edges["gw-1"]
    # Opening: arrears at zero, then the transfer-in lifts it to alarm 1 (arrears cleared by a
    # less severe level): only the alarm 1 text goes.
    send(db, edge, [level(edge, "arrears", 0), level(edge, "alarm1", 30_000_000)], now=T0 + 10)
    scan(db, T0 + 11)
    assert [k for k, _, _ in texts(db)] == ["alarm1"]
    # Falling through alarm 2 into arrears within one scan: both crossings are texted.
    send(db, edge, [level(edge, "alarm2", 15_000_000), level(edge, "arrears", -1)], now=T0 + 20)
    scan(db, T0 + 21)
    assert [k for k, _, _ in texts(db)] == ["alarm1", "alarm2", "arrears"]


def test_an_alarm_cleared_by_a_top_up_before_the_scan_is_not_texted(
    db: Database, edges: dict[str, FakeEdge], tenant: int
) -> None:
    edge = edges["gw-1"]
    send(db, edge, [level(edge, "alarm1", 49_000_000), edge.event("m-101", "alarm_clear", T0,
                   {"level": "ok"})], now=T0 + 10)  # fmt: skip
    scan(db, T0 + 11)
    assert texts(db) == []


def test_a_tenants_own_numbers_each_get_it_in_their_language(
    db: Database, edges: dict[str, FakeEdge], tenant: int
) -> None:
    with db.session() as s:
        s.add(NotifyRecipient(customer_id=tenant, phone="+8613900139000", lang="en"))
        s.add(NotifyRecipient(customer_id=tenant, phone="13700137000", lang="zh_CN",
                              kinds=["arrears"]))  # fmt: skip
    edge = edges["gw-1"]
    send(db, edge, [level(edge, "alarm1", 40_000_000)], now=T0 + 10)
    scan(db, T0 + 11)
    [(kind, to, text)] = texts(db)
    assert (kind, to) == ("alarm1", "+8613900139000")
    assert text.startswith("[园区电费] Unit A-101 (m-101): the meter balance is 40.00 yuan")


def test_a_meter_without_an_open_account_texts_nobody(
    db: Database, edges: dict[str, FakeEdge], park: Park
) -> None:
    edge = edges["gw-1"]
    send(db, edge, [edge.event("m-102", "alarm1", T0, {"balance_micro_yuan": 1})], now=T0 + 10)
    scan(db, T0 + 11)
    assert texts(db) == []


def test_a_silent_collector_texts_the_sites_alarm_numbers(db: Database, park: Park) -> None:
    with db.session() as s:
        s.merge(SiteDefaults(site_id=park.site, alarm_sms_number="13800000001, +8613800000002"))
    later = now_ts() + 10_000  # the collectors were created now, never heard from
    with db.session() as s:
        assert alarms.evaluate_lost_contact(s, now=later)["gateways"] == ["gw-1", "gw-2"]
    scan(db, later + 1)
    got = texts(db)
    assert {to for _, to, _ in got} == {"13800000001", "+8613800000002"}
    assert {k for k, _, _ in got} == {"gateway_lost"}
    assert sorted(t for _, _, t in got)[0].startswith("【园区电费】Film studio park采集器gw-")


def test_the_scan_looks_back_past_its_cursor_and_not_further_than_max_age(
    db: Database, edges: dict[str, FakeEdge], tenant: int
) -> None:
    edge = edges["gw-1"]
    scan(db, T0 + 1000)  # the cursor is now at T0 + 1000
    # An alarm committed late with an earlier time (another process, a slow transaction).
    send(db, edge, [level(edge, "alarm1", 45_000_000)], now=T0 + 900)
    scan(db, T0 + 1001)
    assert [k for k, _, _ in texts(db)] == ["alarm1"]
    old = sources.Scan(sign="x", max_age_s=60)
    send(db, edge, [level(edge, "alarm2", 15_000_000)], now=T0 + 1001)
    with db.session() as s:
        assert sources.scan(s, old, T0 + 5000) == 0  # too old when first seen


def test_a_login_code_is_queued_urgent_and_once_per_minute(db: Database, park: Park) -> None:
    with db.session() as s:
        first = sources.send_login_code(s, "13800138000", "654321", site_id=park.site, now=T0)
        again = sources.send_login_code(s, "13800138000", "654321", site_id=park.site, now=T0 + 5)
        row = s.get(OutboxMessage, first)
        assert again is None
        assert row.kind == "login_code"
        assert row.urgent
        assert "654321" in row.text
        assert row.text.startswith("【Film studio park】")  # no sign given: the site's name


def test_runway_reminder_comes_before_alarm_1_once_per_credit_level(
    db: Database, edges: dict[str, FakeEdge], tenant: int, park: Park
) -> None:
    edge = edges["gw-1"]
    with db.session() as s:
        s.merge(SiteDefaults(site_id=park.site, price_micro_yuan_per_kwh=1_000_000))
    # Three days of 25 kWh at 1 yuan/kWh: 25 yuan a day, 25 of the 100 left: one day's credit.
    day = 86400
    msgs = [edge.reading("m-101", 25_000, ts=T0 + i * day + 3600) for i in range(3)]
    for i, m in enumerate(msgs):
        send(db, edge, [m], now=T0 + i * day + 3600)
    now = T0 + 2 * day + 7200
    with db.session() as s:
        meter = s.get(Meter, "m-101")
        assert meter.balance_micro_yuan == 25_000_000
        assert usage.summary(s, meter, now)["runway_days"] == 1
        # Not within a zero-day horizon; within three days it is.
        assert sources.runway_scan(s, sources.Scan(sign="x", runway_days=0), now) == 0
        queued = sources.runway_scan(s, sources.Scan(sign="x", runway_days=3), now)
    assert queued == 1
    [(kind, _, text)] = texts(db)
    assert kind == "runway"
    assert "25.00" in text
    with db.session() as s:  # the same credit level: not again
        assert sources.runway_scan(s, sources.Scan(sign="x", runway_days=3), now + 3600) == 0


def test_a_trip_that_closes_again_within_a_minute_is_no_restore_text(
    db: Database, edges: dict[str, FakeEdge], tenant: int
) -> None:
    # An opening with a tiny transfer-in: arrears stays (hysteresis) but the relay closes at
    # once; the arrears text goes, a "power restored" for that blink does not.
    edge = edges["gw-1"]
    send(db, edge, [
        level(edge, "arrears", 0),
        edge.event("m-101", "trip", T0, {"reason": "credit"}),
        edge.event("m-101", "close", T0 + 1, {"reason": "restore"}),
    ], now=T0 + 2)  # fmt: skip
    scan(db, T0 + 3)
    assert [k for k, _, _ in texts(db)] == ["arrears"]


def test_the_trip_and_close_of_an_account_opening_text_nothing(
    db: Database, edges: dict[str, FakeEdge], tenant: int
) -> None:
    # What the engine does at opening: no credit yet (arrears, trip), then the transfer-in
    # arrives (alarm cleared, relay closed). Nobody was told it was off: no "restored".
    edge = edges["gw-1"]
    send(db, edge, [
        level(edge, "arrears", 0),
        edge.event("m-101", "trip", T0, {"reason": "credit"}),
        edge.event("m-101", "alarm_clear", T0, {"level": "ok"}),
        edge.event("m-101", "close", T0, {"reason": "restore"}),
    ], now=T0 + 1)  # fmt: skip
    scan(db, T0 + 2)
    assert texts(db) == []
    # Much later the meter runs into arrears again; a rescan of the opening's close (still in
    # the look-back window) must not take that text for one about the opening's trip.
    later = T0 + 120
    send(db, edge, [level(edge, "arrears", -100_000, ts=later),
                    edge.event("m-101", "trip", later, {"reason": "credit"})], now=later)  # fmt: skip
    scan(db, later + 1)
    assert [k for k, _, _ in texts(db)] == ["arrears"]


def test_the_tenant_sites_code_sender_queues_the_code(db: Database, park: Park) -> None:
    send = login_codes.sender()
    with db.session() as s:  # the tenant site's request transaction
        send(s, "13800138000", "112233", "A-101")
    with db.session() as s:
        send(s, "13800138000", "112233", "A-101")  # a double click: one text
    with db.session() as s:
        [row] = s.scalars(select(OutboxMessage)).all()
        assert (row.kind, row.recipient, row.site_id) == ("login_code", "13800138000", "studio")
        assert "112233" in row.text


def test_a_unit_with_one_meter_is_named_alone_and_with_several_the_meter_too(
    db: Database, park: Park
) -> None:
    # A-102 holds only m-103; A-101 holds m-101 and m-102, whose texts must tell them apart.
    with db.session() as s:
        assert sources._unit_of(s, s.get(Meter, "m-103")) == "A-102"
        assert sources._unit_of(s, s.get(Meter, "m-101")) == "A-101 (m-101)"
        assert sources._unit_of(s, s.get(Meter, "m-102")) == "A-101 (m-102)"
