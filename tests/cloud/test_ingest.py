"""Applying uplink messages: exactly once per envelope and per reading, bad messages kept in
quarantine without blocking the rest, charge continuity and ledger cross-checks as alarms,
events raising and clearing alarms, heartbeats, hello, lost contact."""

from __future__ import annotations

import sqlite3

from sqlalchemy import event

from cloud.control import commands, dispatch
from cloud.models import (
    Alarm,
    Command,
    Event,
    Gateway,
    InboxEntry,
    Meter,
    Quarantine,
    Reading,
    Sale,
)
from cloud.money import accounts, sales
from cloud.monitoring import alarms
from cloud.uplink import batch, ingest
from shared.codec import messages as wire
from shared.codec import readings
from tests.cloud.support import ACTOR, T0, FakeEdge, send, sync

Y = 1_000_000


def _active(s, kind=None):
    q = s.query(Alarm).filter(Alarm.active.is_(True))
    if kind:
        q = q.filter(Alarm.kind == kind)
    return q.all()


def test_an_envelope_applies_once_and_is_acked_again(db, park):
    edge = FakeEdge("gw-1")
    msgs = [edge.reading("m-101", 1_000), edge.reading("m-102", 2_000)]
    first = send(db, edge, msgs, seq=7)
    again = send(db, edge, msgs, seq=7)
    assert first.applied == [("gw-1", 7)]
    assert first.readings == 2
    assert again.applied == []
    assert again.duplicates == [("gw-1", 7)]
    assert again.acks == {"gw-1": [7]}
    with db.session() as s:
        assert s.query(Reading).count() == 2
        assert s.query(InboxEntry).count() == 1
        assert s.get(Meter, "m-101").charges_micro_yuan == Y


def test_a_reading_resent_in_another_envelope_counts_once(db, park):
    edge = FakeEdge("gw-1")
    reading = edge.reading("m-101", 1_000)
    send(db, edge, [reading], seq=1)
    send(db, edge, [reading], seq=2)
    with db.session() as s:
        assert s.query(Reading).count() == 1
        assert s.get(Meter, "m-101").charges_micro_yuan == Y


def test_batch_of_envelopes_dedupes_within_itself(db, park):
    edge = FakeEdge("gw-1")
    r1, r2 = edge.reading("m-101", 1_000), edge.reading("m-101", 1_000)
    with db.session() as s:
        result = ingest.apply_batch(
            s,
            [
                ingest.Uplink("gw-1", 1, [r1]),
                ingest.Uplink("gw-1", 1, [r1]),
                ingest.Uplink("gw-1", 2, [r2]),
            ],
            now=T0,
        )
    assert result.applied == [("gw-1", 1), ("gw-1", 2)]
    assert result.duplicates == [("gw-1", 1)]
    with db.session() as s:
        assert s.get(Meter, "m-101").charges_micro_yuan == 2 * Y


def test_bad_messages_go_to_quarantine_and_the_rest_applies(db, park):
    edge = FakeEdge("gw-1")
    good = edge.reading("m-101", 1_000)
    bad_field = dict(edge.reading("m-102", 1_000), charge_micro_yuan=1.5)
    unknown_meter = edge.reading("m-999", 1_000)
    other_gateways = edge.reading("m-201", 1_000)
    result = send(
        db,
        edge,
        [
            bad_field,
            good,
            "junk",
            unknown_meter,
            other_gateways,
            {
                "t": "result",
                "cmd": 999,
                "meter": None,
                "op": "time",
                "status": "applied",
                "reason": None,
                "balance_micro_yuan": None,
            },
        ],
    )
    assert result.quarantined == 5
    assert result.applied == [("gw-1", 1)]
    with db.session() as s:
        reasons = [q.reason for q in s.query(Quarantine).order_by(Quarantine.id)]
        assert "charge_micro_yuan" in reasons[0]
        assert "unknown meter 'm-999'" in " ".join(reasons)
        assert any("belongs to collector gw-2" in r for r in reasons)
        assert any("never sent" in r for r in reasons)
        assert s.get(Meter, "m-101").charges_micro_yuan == Y
        assert s.get(Meter, "m-102").charges_micro_yuan == 0
        assert [a.kind for a in _active(s)] == [alarms.RESULT_CONFLICT]


def test_a_missing_reading_raises_a_charge_gap_until_it_arrives(db, park):
    edge = FakeEdge("gw-1")
    r1 = edge.reading("m-101", 1_000)
    r2 = edge.reading("m-101", 2_000)
    r3 = edge.reading("m-101", 3_000)
    send(db, edge, [r1])
    send(db, edge, [r3])  # r2 is late: the running total says 3 yuan, the mirror has 4 of 6
    with db.session() as s:
        (gap,) = _active(s, alarms.CHARGE_GAP)
        assert gap.detail["edge_charges_micro_yuan"] == 6 * Y
        assert gap.detail["mirror_charges_micro_yuan"] == 4 * Y
        assert s.get(Meter, "m-101").energy_wh == 6_000  # the newest reading's counter
    send(db, edge, [r2])
    with db.session() as s:
        assert _active(s, alarms.CHARGE_GAP) == []
        assert s.get(Meter, "m-101").charges_micro_yuan == 6 * Y
        assert s.get(Meter, "m-101").energy_wh == 6_000  # a late reading does not move it back


def test_edge_totals_that_disagree_with_the_mirror_raise_a_ledger_mismatch(db, park):
    edge = FakeEdge("gw-1")
    edge.wallet("m-101").credits = 50 * Y  # credit the cloud never issued
    edge.wallet("m-101").balance = 50 * Y
    send(db, edge, [edge.reading("m-101", 1_000)])
    with db.session() as s:
        (alarm,) = _active(s, alarms.LEDGER_MISMATCH)
        assert alarm.detail["edge"]["credits_micro_yuan"] == 50 * Y
        assert alarm.detail["mirror"]["credits_micro_yuan"] == 0
        # The mirror never adopts the edge's number.
        assert s.get(Meter, "m-101").balance_micro_yuan == -Y
        assert s.get(Meter, "m-101").edge_balance_micro_yuan == 49 * Y


def test_events_raise_and_clear_alarms(db, park):
    edge = FakeEdge("gw-1")
    send(db, edge, [edge.event("m-101", "alarm1"), edge.event("m-101", "overload")])
    send(db, edge, [edge.event("m-101", "alarm2")])
    with db.session() as s:
        kinds = sorted(a.kind for a in _active(s))
        assert kinds == ["alarm2", "overload"]
        history = s.query(Alarm).filter(Alarm.kind == "alarm1").one()
        assert not history.active
        assert history.cleared_by == "event:alarm2"
    send(db, edge, [edge.event("m-101", "alarm_clear"), edge.event(None, "clock_drift")])
    with db.session() as s:
        assert sorted((a.kind, a.meter_id) for a in _active(s)) == [
            ("clock_drift", None),
            ("overload", "m-101"),
        ]
        assert s.query(Event).count() == 5
    # An applied clear_overload command clears the overload alarm.
    with db.session() as s:
        commands.issue(s, [s.get(Meter, "m-101")], "clear_overload", {}, ACTOR)
    sync(db, {"gw-1": edge})
    with db.session() as s:
        assert [a.kind for a in _active(s)] == ["clock_drift"]


def test_event_resent_counts_once(db, park):
    edge = FakeEdge("gw-1")
    ev = edge.event("m-101", "relay_fault")
    send(db, edge, [ev])
    send(db, edge, [ev])
    with db.session() as s:
        assert s.query(Event).count() == 1
        assert len(_active(s)) == 1


def test_lost_contact_from_the_bus_and_back_with_a_reading(db, park):
    edge = FakeEdge("gw-1")
    send(db, edge, [edge.event("m-101", "lost_contact")])
    with db.session() as s:
        assert s.get(Meter, "m-101").state == "lost_contact"
    send(db, edge, [edge.reading("m-101", 10)])
    with db.session() as s:
        assert s.get(Meter, "m-101").state == "not_opened"
        assert _active(s, "lost_contact") == []


def test_lost_contact_evaluation_for_meters_and_collectors(db, park):
    edge = FakeEdge("gw-1")
    with db.session() as s:
        for gw in s.query(Gateway):
            gw.created_ts = T0
        for m in s.query(Meter):
            m.created_ts = T0
    send(
        db,
        edge,
        [
            edge.reading("m-101", 10, ts=T0 + 1000),
            {"t": "hb", "ts": T0 + 1000, "backlog": 0, "buses": {}, "uptime_s": 5},
        ],
        now=T0 + 1000,
    )
    with db.session() as s:
        lost = alarms.evaluate_lost_contact(s, now=T0 + 1100)
    assert lost["gateways"] == ["gw-2"]
    assert "m-101" not in lost["meters"]
    assert "m-102" in lost["meters"]
    with db.session() as s:
        again = alarms.evaluate_lost_contact(s, now=T0 + 1110)
        assert again == {"meters": [], "gateways": []}  # raised once
        lost = alarms.evaluate_lost_contact(s, now=T0 + 2000)
        assert lost["gateways"] == ["gw-1"]
        assert lost["meters"] == ["m-101"]
    send(
        db,
        edge,
        [
            {"t": "hb", "ts": T0 + 2100, "backlog": 3, "buses": {"bus1": {}}, "uptime_s": 9},
            edge.reading("m-101", 10, ts=T0 + 2100),
        ],
        now=T0 + 2100,
    )
    with db.session() as s:
        gw = s.get(Gateway, "gw-1")
        assert not gw.lost_contact
        assert gw.backlog == 3
        assert not s.get(Meter, "m-101").lost_contact
        assert {a.gateway_id for a in _active(s, alarms.GATEWAY_LOST)} == {"gw-2"}


def test_hello_records_the_agent_queues_a_clock_sync_and_compares_meter_lists(db, park):
    edge = FakeEdge("gw-1")
    hello = {
        "t": "hello",
        "agent": "0.1.0",
        "config_hash": "abc",
        "protocol": 1,
        "meters": [{"id": "m-101", "model": "x", "bus": "bus1", "address": "101"}],
    }
    send(db, edge, [hello], now=T0)
    with db.session() as s:
        gw = s.get(Gateway, "gw-1")
        assert gw.online
        assert gw.agent_version == "0.1.0"
        (mismatch,) = _active(s, "config_mismatch")
        assert mismatch.detail["only_in_cloud"] == ["m-102", "m-103", "m-p1"]
        msgs = dispatch.next_to_send(s, "gw-1", now=T0 + 5)
        assert [(m["op"], m["args"]) for m in msgs] == [("time", {"utc": T0 + 5})]


def test_a_hello_matching_the_cloud_clears_the_mismatch_and_one_clock_sync_waits(db, park):
    edge = FakeEdge("gw-1")
    meters = [
        {"id": m, "model": "x", "bus": "bus1", "address": str(i)}
        for i, m in enumerate(["m-101", "m-102", "m-103", "m-p1"])
    ]
    hello = {"t": "hello", "agent": "0.1.0", "config_hash": "abc", "protocol": 1}
    send(db, edge, [{**hello, "meters": meters[:1]}], now=T0)
    # Two more in one envelope (a batch): the list now matches; the clock sync still waits.
    send(db, edge, [{**hello, "meters": meters}, {**hello, "meters": meters}], now=T0 + 1)
    with db.session() as s:
        assert _active(s, "config_mismatch") == []
        msgs = dispatch.next_to_send(s, "gw-1", now=T0 + 5)
        assert [m["op"] for m in msgs] == ["time"]


def test_need_purchase_makes_the_missing_credit_due_at_once(db, park):
    edge = FakeEdge("gw-1")
    with db.session() as s:
        accounts.open_account(s, {"name": "A"}, ["m-101"], ACTOR)
    sync(db, {"gw-1": edge})
    with db.session() as s:
        first, _ = sales.sell(s, "m-101", Y, "cash", ACTOR)
        second, _ = sales.sell(s, "m-101", 2 * Y, "cash", ACTOR)
    with db.session() as s:
        msgs = dispatch.next_to_send(s, "gw-1", now=T0)
        dispatch.mark_sent(s, [m["id"] for m in msgs], now=T0)
        assert [m["args"]["purchase_no"] for m in msgs] == [1, 2]
        assert dispatch.next_to_send(s, "gw-1", now=T0 + 1) == []  # out, not yet due
    # Purchase 1 is lost on the way; 2 arrives, is held, and the edge asks for 1.
    answers = edge.handle(msgs[1])
    assert sorted(a["t"] for a in answers) == ["need_purchase", "result"]
    send(db, edge, answers, now=T0 + 2)
    with db.session() as s:
        assert s.get(Command, second.command_id).result_status == "held"
        again = dispatch.next_to_send(s, "gw-1", now=T0 + 2)
        assert [(m["id"], m["args"]["purchase_no"]) for m in again] == [(first.command_id, 1)]
    sync(db, {"gw-1": edge}, now=T0 + 3)
    with db.session() as s:
        assert s.get(Sale, first.id).status == "applied"
        assert s.get(Sale, second.id).status == "applied"  # released by the edge after 1
        assert s.get(Command, second.command_id).status == "applied"
        assert s.get(Meter, "m-101").balance_micro_yuan == 3 * Y


def test_event_kinds_the_cloud_does_not_know_are_kept_without_an_alarm(db, park):
    edge = FakeEdge("gw-1")
    send(
        db,
        edge,
        [
            edge.event("m-101", "jump_held", detail={"delta_wh": 99}),
            edge.event("m-101", "some_new_kind", detail={"x": 1}),
        ],
    )
    with db.session() as s:
        assert [a.kind for a in _active(s)] == ["jump_held"]
        assert s.query(Event).filter(Event.kind == "some_new_kind").count() == 1
    send(db, edge, [edge.event("m-101", "anomaly_resolved", detail={"how": "bill"})])
    with db.session() as s:
        assert _active(s) == []


def test_a_number_no_database_column_can_hold_is_quarantined_and_the_rest_applies(db, park):
    # JSON integers are unbounded; BIGINT columns (and SQLite's) stop at 2^63 − 1. Such a value
    # must be refused as the bad message it is, not fail the whole envelope at the INSERT: that
    # envelope would never be acked, and the good messages beside it would never apply.
    edge = FakeEdge("gw-1")
    good = edge.reading("m-101", 1_000)
    huge = dict(edge.reading("m-102", 1_000), energy_wh=2**63)
    result = send(db, edge, [huge, good])
    assert result.quarantined == 1
    assert result.applied == [("gw-1", 1)]
    with db.session() as s:
        (reason,) = [q.reason for q in s.query(Quarantine)]
        assert "energy_wh" in reason
        assert s.get(Meter, "m-101").charges_micro_yuan == Y
        assert s.get(Meter, "m-102").charges_micro_yuan == 0


def test_a_text_field_holding_a_nul_character_is_quarantined_and_the_rest_applies(db, park):
    # PostgreSQL text cannot hold NUL: such a meter id or reason failed the whole envelope there
    # (never acked, resent for ever) while SQLite quarantined it. Both now refuse the message.
    edge = FakeEdge("gw-1")
    good = edge.reading("m-101", 1_000)
    bad = dict(edge.reading("m-102", 1_000), meter="m-102\x00")
    result = send(db, edge, [bad, good])
    assert result.quarantined == 1
    assert result.applied == [("gw-1", 1)]
    with db.session() as s:
        (reason,) = [q.reason for q in s.query(Quarantine)]
        assert "'meter'" in reason
        assert s.get(Meter, "m-101").charges_micro_yuan == Y


def test_a_held_result_arriving_after_the_applied_one_leaves_the_command_applied(db, park):
    # The envelope with "held" was lost and resent, so it arrives after the one with "applied"
    # (fast retransmit). The late answer changes nothing: the command still says applied.
    edge = FakeEdge("gw-1")
    with db.session() as s:
        accounts.open_account(s, {"name": "A"}, ["m-101"], ACTOR)
    sync(db, {"gw-1": edge})
    with db.session() as s:
        sales.sell(s, "m-101", Y, "cash", ACTOR)
        second, _ = sales.sell(s, "m-101", 2 * Y, "cash", ACTOR)
        msgs = dispatch.next_to_send(s, "gw-1", now=T0)
        dispatch.mark_sent(s, [m["id"] for m in msgs], now=T0)
    held = edge.handle(msgs[1])  # 2 before 1: held
    applied = edge.handle(msgs[0])  # 1 applies, and releases 2
    send(db, edge, applied, now=T0 + 1)
    send(db, edge, held, now=T0 + 2)
    with db.session() as s:
        command = s.get(Command, second.command_id)
        assert command.status == "applied"
        assert command.result_status == "applied"
        assert command.result_reason is None
        assert command.result_balance_micro_yuan == 3 * Y
        assert s.get(Sale, second.id).status == "applied"
        assert s.get(Meter, "m-101").balance_micro_yuan == 3 * Y


def test_a_stored_reading_keeps_every_field_of_the_one_reading_definition(db, park):
    # cloud/models/telemetry.py declares the columns; they must be the shared definition's.
    columns = set(Reading.__table__.columns.keys())
    assert set(readings.REPORTED) | set(readings.MONEY) <= columns
    edge = FakeEdge("gw-1")
    msg = edge.reading("m-101", 1_000)
    send(db, edge, [msg])
    with db.session() as s:
        row = s.query(Reading).one()
        assert {name: getattr(row, name) for name in readings.stored(msg)} == readings.stored(msg)


def test_a_batch_writes_its_meters_mirror_in_one_statement(db, park):
    """What readings change on the meters of a batch is written by one statement, not one
    UPDATE per meter; a meter that also changed otherwise (a state message) is a ``Meter`` row
    written by the session's flush; either way the database holds what the batch computed."""
    with db.session() as s:
        s.get(Meter, "m-103").lost_contact = True  # its reading clears it, in the one statement
    one, two = FakeEdge("gw-1"), FakeEdge("gw-2")
    first = [one.reading(m, 1_000 * (k + 1)) for k, m in enumerate(("m-101", "m-102"))]
    first.append(one.reading("m-103", 3_000, relay=None))  # no relay read: the row keeps its own
    second = [two.reading(m, 500) for m in ("m-201", "m-202", "m-203")]
    state = wire.state(
        "m-202", "alarm1", "closed", "prepaid", two.wallet("m-202").balance, None, T0
    )
    updates: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE METERS"):
            # An executemany runs the statement once per parameter set.
            updates.extend([statement] * (len(params) if executemany else 1))

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.session() as s:
            ingest.apply_batch(
                s,
                [ingest.Uplink("gw-1", 1, first), ingest.Uplink("gw-2", 1, [*second, state])],
                now=T0,
            )
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    # One for the five meters only readings changed, one (the flush's) for m-202; an SQLite
    # without UPDATE … FROM (before 3.33) writes them one UPDATE each.
    old_sqlite = db.is_sqlite and sqlite3.sqlite_version_info < (3, 33)
    assert len(updates) == (6 if old_sqlite else 2), updates
    with db.session() as s:
        for edge, sent in ((one, first), (two, second)):
            for msg in sent:
                meter = s.get(Meter, msg["meter"])
                wallet = edge.wallet(msg["meter"])
                assert meter.charges_micro_yuan == msg["charges_micro_yuan"] == wallet.charges
                assert meter.balance_micro_yuan == wallet.balance
                assert meter.balance_micro_yuan == (
                    meter.credits_micro_yuan - meter.refunds_micro_yuan - meter.charges_micro_yuan
                )
                assert meter.edge_charges_micro_yuan == msg["charges_micro_yuan"]
                assert meter.edge_balance_micro_yuan == msg["balance_micro_yuan"]
                assert meter.last_reading_id == msg["id"]
                assert meter.energy_wh == msg["energy_wh"]
                assert meter.last_seen_ts == msg["ts"]
        assert s.get(Meter, "m-103").lost_contact is False
        assert s.get(Meter, "m-103").relay == "unknown"  # as seeded: no relay was read
        assert s.get(Meter, "m-101").relay == "closed"
        assert s.get(Meter, "m-202").display_state == "alarm1"
        assert s.get(Meter, "m-201").display_state != "alarm1"


def _counting_meter_updates(db):
    updates: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE METERS"):
            updates.extend([statement] * (len(params) if executemany else 1))

    event.listen(db.engine, "before_cursor_execute", count)
    return updates, lambda: event.remove(db.engine, "before_cursor_execute", count)


def _identity(meter):
    return meter.balance_micro_yuan == (
        meter.credits_micro_yuan - meter.refunds_micro_yuan - meter.charges_micro_yuan
    )


def test_a_meter_already_in_the_session_takes_its_reading_through_that_row(db, park):
    """A meter the transaction already holds as a ``Meter`` row is not also read as a plain
    mirror row: the row in the session shows the reading, and its own change is kept."""
    edge = FakeEdge("gw-1")
    first, other = edge.reading("m-101", 1_000), edge.reading("m-102", 2_000)
    with db.session() as s:
        held = s.get(Meter, "m-101")
        held.display_state = "alarm1"
        ingest.apply_batch(s, [ingest.Uplink("gw-1", 1, [first, other])], now=T0)
        assert held.charges_micro_yuan == first["charges_micro_yuan"]
        assert held.last_reading_id == first["id"]
        assert _identity(held)
    with db.session() as s:
        for msg in (first, other):
            meter = s.get(Meter, msg["meter"])
            assert meter.charges_micro_yuan == msg["charges_micro_yuan"]
            assert meter.balance_micro_yuan == edge.wallet(msg["meter"]).balance
            assert _identity(meter)
        assert s.get(Meter, "m-101").display_state == "alarm1"


def test_a_batch_whose_readings_are_all_known_writes_no_meter(db, park):
    edge = FakeEdge("gw-1")
    msgs = [edge.reading("m-101", 1_000), edge.reading("m-102", 2_000)]
    send(db, edge, msgs, seq=1)
    updates, stop = _counting_meter_updates(db)
    try:
        again = send(db, edge, msgs, seq=2)  # the same readings, resent in a new envelope
    finally:
        stop()
    assert again.applied == [("gw-1", 2)]
    assert updates == []
    with db.session() as s:
        assert s.query(Reading).count() == 2
        meter = s.get(Meter, "m-102")
        assert meter.charges_micro_yuan == msgs[1]["charges_micro_yuan"]
        assert _identity(meter)


def test_an_sqlite_without_update_from_writes_the_mirror_rows_one_by_one(db, park, monkeypatch):
    """SQLite before 3.33 has no ``UPDATE … FROM``: the readings' meters are written one
    UPDATE each (there is no flush to leave them to); PostgreSQL ignores SQLite's version."""
    monkeypatch.setattr(batch.sqlite3, "sqlite_version_info", (3, 32, 0))
    edge = FakeEdge("gw-1")
    msgs = [edge.reading(m, 1_000) for m in ("m-101", "m-102", "m-103")]
    updates, stop = _counting_meter_updates(db)
    try:
        send(db, edge, msgs, seq=1)
    finally:
        stop()
    assert len(updates) == (3 if db.is_sqlite else 1), updates
    with db.session() as s:
        for msg in msgs:
            meter = s.get(Meter, msg["meter"])
            assert meter.charges_micro_yuan == msg["charges_micro_yuan"]
            assert meter.last_reading_id == msg["id"]
            assert _identity(meter)
