"""Commands: the lifecycle table, send lanes (in order per meter, retries never overtake),
batch operations, tariff and settings dispatch, verification by a later reading."""

from __future__ import annotations

import pytest

from cloud.control import commands, dispatch, lifecycle
from cloud.errors import InvalidError, NotFoundError, RuleError
from cloud.models import Command, CommandBatch, Meter
from cloud.park import inventory
from tests.cloud.support import ACTOR, T0, FakeEdge, send, sync

TARIFF = {"version": 1, "effective_from": T0 - 86_400, "price_micro_yuan_per_kwh": 1_000_000}


def _meters(s, *ids):
    return [s.get(Meter, i) for i in ids]


def test_lifecycle_table_refuses_contradictions():
    c = Command(id=1, op="mode", status="pending")
    assert lifecycle.transition(c, "sent") == "sent"
    assert lifecycle.transition(c, "applied") == "applied"
    assert lifecycle.transition(c, "applied") == "applied"  # a repeated result
    with pytest.raises(lifecycle.IllegalTransition):
        lifecycle.transition(c, "rejected")
    assert lifecycle.transition(c, "verified") == "verified"
    with pytest.raises(lifecycle.IllegalTransition):
        lifecycle.transition(Command(id=2, op="mode", status="pending"), "verified")


def test_a_lane_sends_nothing_new_while_a_command_is_out(db, park):
    with db.session() as s:
        commands.issue(s, _meters(s, "m-101"), "trip", {}, ACTOR, now=T0)
    with db.session() as s:
        first = dispatch.next_to_send(s, "gw-1", now=T0)
        dispatch.mark_sent(s, [m["id"] for m in first], now=T0)
        commands.issue(s, _meters(s, "m-101", "m-102"), "restore_prepaid", {}, ACTOR, now=T0)
    with db.session() as s:
        out = dispatch.next_to_send(s, "gw-1", now=T0 + 5)
        # m-101's restore waits behind its trip; m-102's goes.
        assert [(m["meter"], m["args"]) for m in out] == [("m-102", {"mode": "prepaid"})]
        dispatch.mark_sent(s, [m["id"] for m in out], now=T0 + 5)
    with db.session() as s:
        # After the retry interval the trip is resent first, then the restore behind it.
        out = dispatch.next_to_send(s, "gw-1", now=T0 + 31)
        assert [(m["meter"], m["args"]["mode"]) for m in out] == [
            ("m-101", "forced_off"),
            ("m-101", "prepaid"),
        ]
        dispatch.mark_sent(s, [m["id"] for m in out], now=T0 + 31)
        trip = s.get(Command, first[0]["id"])
        assert trip.send_count == 2
        assert trip.sent_ts == T0
        assert trip.last_sent_ts == T0 + 31


def test_a_command_goes_through_its_lifecycle_with_timestamps(db, park):
    edge = FakeEdge("gw-1")
    with db.session() as s:
        (cmd,) = commands.issue(s, _meters(s, "m-101"), "trip", {}, ACTOR, now=T0)
        assert cmd.status == "pending"
        assert cmd.created_ts == T0
    sync(db, {"gw-1": edge}, now=T0 + 1)
    with db.session() as s:
        cmd = s.get(Command, cmd.id)
        assert (cmd.status, cmd.sent_ts, cmd.result_ts) == ("applied", T0 + 1, T0 + 1)
        assert s.get(Meter, "m-101").mode == "forced_off"
    send(db, edge, [edge.reading("m-101", 0, relay="closed")], now=T0 + 2)
    with db.session() as s:
        assert s.get(Command, cmd.id).status == "applied"  # relay still closed: not verified
    send(db, edge, [edge.reading("m-101", 0, relay="open")], now=T0 + 3)
    with db.session() as s:
        cmd = s.get(Command, cmd.id)
        assert cmd.status == "verified"
        assert cmd.verified_ts == T0 + 3
        assert commands.to_dict(cmd)["verified_ts"] == T0 + 3


def test_batch_over_all_meters_skips_plain_instruments(db, park):
    with db.session() as s:
        group, created = commands.batch(s, "keep_power", {}, {"all": True}, ACTOR, now=T0)
        assert group.count == 6 == len(created)
        assert {c.meter_id for c in created} == set(park.meters)
        assert s.query(CommandBatch).one().op == "keep_power"
    with db.session() as s:
        _, created = commands.batch(s, "read_now", {}, {"all": True, "gateway": "gw-2"}, ACTOR)
        assert sorted(c.meter_id for c in created) == ["m-201", "m-202", "m-203"]


def test_batch_selection_errors_name_the_problem(db, park):
    for selection in ({"meters": []}, {"everything": 1}):
        with pytest.raises(InvalidError) as err, db.session() as s:
            commands.batch(s, "trip", {}, selection, ACTOR)
        assert err.value.field == "meters"
    with pytest.raises(NotFoundError) as missing, db.session() as s:
        commands.batch(s, "trip", {}, {"meters": ["m-101", "zz"]}, ACTOR)
    assert missing.value.field == "meters"
    assert "zz" in missing.value.message
    with pytest.raises(RuleError), db.session() as s:
        commands.batch(s, "trip", {}, {"meters": ["m-p1"]}, ACTOR)  # plain meter: read only
    with pytest.raises(InvalidError), db.session() as s:
        commands.batch(s, "explode", {}, {"meters": ["m-101"]}, ACTOR)
    with db.session() as s:
        assert s.query(Command).count() == 0


def test_dispatch_settings_checks_names_with_the_engine_and_mirrors_columns(db, park):
    with pytest.raises(InvalidError) as err, db.session() as s:
        commands.issue(s, _meters(s, "m-101"), "dispatch_settings", {"alarm_one": 5}, ACTOR)
    assert "alarm_one" in err.value.message
    with db.session() as s:
        (cmd,) = commands.issue(
            s,
            _meters(s, "m-101"),
            "dispatch_settings",
            {"alarm1_micro_yuan": 30_000_000, "overload_power_w": 9000},
            ACTOR,
        )
        assert (cmd.op, cmd.args["overload_power_w"]) == ("settings", 9000)
        meter = s.get(Meter, "m-101")
        assert meter.alarm1_micro_yuan == 30_000_000
        assert meter.overload_power_w == 9000
        assert meter.settings == {"alarm1_micro_yuan": 30_000_000, "overload_power_w": 9000}


def test_dispatch_tariff_sends_versions_once_per_collector_then_the_setting(db, park):
    with db.session() as s:
        inventory.add_tariff_version(s, "flat-1", TARIFF, ACTOR)
        inventory.add_tariff_version(
            s, "flat-1", {**TARIFF, "version": 2, "effective_from": T0 + 86_400}, ACTOR
        )
        created = commands.issue(
            s,
            _meters(s, "m-101", "m-102", "m-201"),
            "dispatch_tariff",
            {"tariff_id": "flat-1"},
            ACTOR,
            now=T0,
        )
        shape = [(c.gateway_id, c.meter_id, c.op) for c in created]
        assert shape == [
            ("gw-1", None, "tariff"),
            ("gw-1", None, "tariff"),
            ("gw-2", None, "tariff"),
            ("gw-2", None, "tariff"),
            ("gw-1", "m-101", "settings"),
            ("gw-1", "m-102", "settings"),
            ("gw-2", "m-201", "settings"),
        ]
        assert created[0].args == {
            "tariff_id": "flat-1",
            "version": {
                "version": 1,
                "effective_from": T0 - 86_400,
                "price_micro_yuan_per_kwh": 1_000_000,
            },
        }
        assert s.get(Meter, "m-101").tariff_id == "flat-1"
    with pytest.raises(NotFoundError), db.session() as s:
        commands.issue(s, _meters(s, "m-101"), "dispatch_tariff", {"tariff_id": "none"}, ACTOR)


def test_bad_tariff_version_is_refused_with_the_engines_reason(db, park):
    with pytest.raises(RuleError) as err, db.session() as s:
        inventory.add_tariff_version(s, "t", {"version": 1, "effective_from": 0}, ACTOR)
    assert err.value.field == "version"
