"""The durable outbox: a key queues once, the rules that hold a message back, retries with
back-off and fallback, delivery reports, recovery after a crash, an operator's resend."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from cloud.audit import Actor
from cloud.db import Database
from cloud.errors import InvalidError
from cloud.models import Base, OutboxMessage, OutboxRef
from cloud.notify import lifecycle as lc
from cloud.notify import outbox, results, templates
from cloud.notify.channels.base import DeliveryReport, Receipt
from cloud.notify.errors import ChannelDown, Rejected, RetryLater
from tests.cloud.support import T0

POLICY = outbox.Policy(route=("modem", "aliyun"), quiet_start_min=None, quiet_end_min=None)
PARAMS = {"sign": "园区电费", "unit": "A-101", "balance": "12.34"}
PHONE = "+8613800138000"


def queue(db: Database, key: str = "alarm:1", kind: str = "alarm1", **kw) -> int:
    with db.session() as s:
        got = outbox.enqueue(
            s, key=key, kind=kind, recipient=kw.pop("recipient", PHONE),
            params=kw.pop("params", PARAMS), now=kw.pop("now", T0), **kw,
        )  # fmt: skip
    assert got is not None
    return got


def claim(db: Database, channel: str = "modem", now: int = T0, policy=POLICY, limit=10):
    with db.session() as s:
        return outbox.claim(s, channel, policy, now, limit)


def row(db: Database, mid: int) -> OutboxMessage:
    with db.session() as s:
        got = s.get(OutboxMessage, mid)
        assert got is not None
        return got


def test_the_schema_of_the_notify_tables_matches_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diffs if "notify_" in repr(d)] == []


def test_a_key_queues_once_and_the_text_is_rendered_in_chinese(db: Database) -> None:
    mid = queue(db)
    with db.session() as s:
        again = outbox.enqueue(s, key="alarm:1", kind="alarm1", recipient=PHONE, params=PARAMS)
    assert again is None
    r = row(db, mid)
    assert r.state == lc.QUEUED
    assert r.text == "【园区电费】您好，单元A-101电表余额12.34元，已低于一级报警值，请及时充值。"
    assert r.urgent


def test_an_english_tenant_gets_english(db: Database) -> None:
    r = row(db, queue(db, lang="en"))
    assert r.text.startswith("[园区电费] Unit A-101: the meter balance is 12.34 yuan")


def test_a_bad_number_is_refused_naming_the_field(db: Database) -> None:
    with db.session() as s, pytest.raises(InvalidError, match="not a phone number") as err:
        outbox.enqueue(s, key="k", kind="alarm1", recipient="call me", params=PARAMS)
    assert err.value.field == "recipient"


def test_money_is_formatted_exactly_from_micro_yuan() -> None:
    assert templates.yuan(12_345_000) == "12.35"
    assert templates.yuan(12_344_999) == "12.34"
    assert templates.yuan(-3_200_000) == "-3.20"
    assert templates.yuan(0) == "0.00"
    assert templates.yuan(5_000) == "0.01"


def test_claim_moves_to_sending_on_the_first_channel_up(db: Database) -> None:
    mid = queue(db)
    [c] = claim(db)
    assert (c.id, c.channel, c.to) == (mid, "modem", PHONE)
    assert row(db, mid).state == lc.SENDING
    assert claim(db) == []
    # With the modem down a new message goes to the fallback.
    mid2 = queue(db, key="alarm:2")
    down = outbox.Policy(route=("modem", "aliyun"), down=frozenset({"modem"}),
                         quiet_start_min=None, quiet_end_min=None)  # fmt: skip
    assert claim(db, "modem", policy=down) == []
    assert [c.id for c in claim(db, "aliyun", policy=down)] == [mid2]


def test_quiet_hours_hold_a_runway_reminder_but_never_a_trip(db: Database, park) -> None:
    quiet = outbox.Policy(route=("modem",), quiet_start_min=22 * 60, quiet_end_min=8 * 60)
    night = int(
        dt.datetime(2026, 1, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
    )
    runway = queue(db, key="runway:1", kind="runway", site_id="studio", now=night,
                   params={**PARAMS, "days": "2"})  # fmt: skip
    trip = queue(db, key="event:9", kind="tripped", site_id="studio", now=night)
    assert [c.id for c in claim(db, now=night, policy=quiet)] == [trip]
    held = row(db, runway)
    morning = int(
        dt.datetime(2026, 1, 2, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
    )
    assert (held.state, held.next_attempt_ts) == (lc.QUEUED, morning)
    assert [c.id for c in claim(db, now=morning, policy=quiet)] == [runway]


def test_per_number_limits_hold_the_rest_and_login_codes_are_exempt(db: Database) -> None:
    tight = outbox.Policy(route=("modem",), per_number_per_hour=2, quiet_start_min=None,
                          quiet_end_min=None)  # fmt: skip
    ids = [queue(db, key=f"alarm:{i}") for i in range(4)]
    code = queue(db, key="login:1", kind="login_code", params={"sign": "x", "code": "123456"})
    got = [c.id for c in claim(db, policy=tight)]
    assert got == [ids[0], ids[1], code]
    held = row(db, ids[2])
    assert held.state == lc.QUEUED
    assert held.next_attempt_ts == T0 + outbox.RATE_RECHECK_S
    assert "per-number limit" in (held.error or "")


def test_a_message_too_old_to_matter_fails_as_expired(db: Database) -> None:
    mid = queue(db, key="login:9", kind="login_code", params={"sign": "x", "code": "1"})
    assert claim(db, now=T0 + 301) == []
    r = row(db, mid)
    assert r.state == lc.FAILED
    assert "expired" in (r.error or "")


def test_sent_then_a_report_per_segment_makes_it_delivered(db: Database) -> None:
    mid = queue(db)
    claim(db)
    with db.session() as s:
        results.sent(s, mid, Receipt("12,13", parts=2, refs=("12", "13"), concat_ref=7), T0 + 1)
    assert row(db, mid).state == lc.SENT
    report = DeliveryReport("modem", "12", "delivered", "0x00", T0 + 5, "+8613800138000")
    with db.session() as s:
        assert results.report(s, report, T0 + 5) == mid
    assert row(db, mid).state == lc.SENT  # one segment of two
    with db.session() as s:
        results.report(s, DeliveryReport("modem", "13", "delivered", "0x00", T0, "13800138000"),
                       T0 + 6)  # fmt: skip
    r = row(db, mid)
    assert (r.state, r.delivered_ts, r.provider_id, r.parts) == (lc.DELIVERED, T0 + 6, "12,13", 2)


def test_a_report_matches_the_newest_message_with_that_reference(db: Database) -> None:
    old, new = queue(db, key="a"), queue(db, key="b")
    for mid in (old, new):
        claim(db)
        with db.session() as s:
            results.sent(s, mid, Receipt("5", refs=("5",)), T0)
    with db.session() as s:
        assert results.report(s, DeliveryReport("modem", "5", "failed", "0x41", T0, ""), T0) == new
    assert row(db, new).state == lc.FAILED
    assert "0x41" in (row(db, new).error or "")
    assert row(db, old).state == lc.SENT


def test_retry_backs_off_then_falls_back_after_n_failures(db: Database) -> None:
    mid = queue(db)
    for attempt in range(1, 4):
        [c] = claim(db, now=T0 + 10_000 * attempt)
        assert c.channel == "modem"
        with db.session() as s:
            results.failed_attempt(s, mid, RetryLater("no network", code="CMS 331"), POLICY,
                                   T0 + 10_000 * attempt)  # fmt: skip
        r = row(db, mid)
        if attempt < 3:
            assert r.next_attempt_ts == T0 + 10_000 * attempt + POLICY.backoff_s(attempt)
    r = row(db, mid)
    assert (r.state, r.channel, r.attempts) == (lc.QUEUED, "aliyun", 3)
    assert "trying aliyun" in (r.error or "")
    [c] = claim(db, "aliyun", now=T0 + 40_000)
    assert c.id == mid


def test_channel_down_falls_back_at_once_and_rejected_everywhere_fails(db: Database) -> None:
    mid = queue(db)
    claim(db)
    with db.session() as s:
        results.failed_attempt(s, mid, ChannelDown("dead"), POLICY, T0)
    assert (row(db, mid).channel, row(db, mid).next_attempt_ts) == ("aliyun", T0)
    claim(db, "aliyun")
    with db.session() as s:
        results.failed_attempt(s, mid, Rejected("isv.MOBILE_NUMBER_ILLEGAL"), POLICY, T0)
    r = row(db, mid)
    assert r.state == lc.FAILED
    assert "MOBILE_NUMBER_ILLEGAL" in (r.error or "")


def test_max_attempts_fails_the_message(db: Database) -> None:
    one = outbox.Policy(route=("modem",), max_attempts=2, quiet_start_min=None, quiet_end_min=None)
    mid = queue(db)
    for i in range(2):
        claim(db, now=T0 + 1000 * i, policy=one)
        with db.session() as s:
            results.failed_attempt(s, mid, RetryLater("x"), one, T0 + 1000 * i)
    assert row(db, mid).state == lc.FAILED


def test_after_a_crash_only_segments_without_a_reference_go_again(db: Database) -> None:
    whole, half, none = queue(db, key="w"), queue(db, key="h"), queue(db, key="n")
    claim(db)
    with db.session() as s:
        for mid in (whole, half):
            results.progress(s, mid, 1, "20", 9, T0)
        s.get(OutboxMessage, whole).parts = 2
        results.progress(s, whole, 2, "21", 9, T0)
        s.get(OutboxMessage, half).parts = 2
    with db.session() as s:
        assert outbox.recover(s, T0 + 60) == {"sent": 1, "queued": 2}
    assert row(db, whole).state == lc.SENT
    h = row(db, half)
    assert (h.state, h.done_parts, h.concat_ref) == (lc.QUEUED, {"1": "20"}, 9)
    assert row(db, none).state == lc.QUEUED
    [c1, c2] = sorted(claim(db, now=T0 + 60), key=lambda c: c.id)
    assert (c2.id, c2.done_parts) == (none, {})
    assert (c1.id, c1.done_parts, c1.concat_ref) == (half, {1: "20"}, 9)
    with db.session() as s:  # the reference kept from before the crash still matches a report
        assert (
            results.report(s, DeliveryReport("modem", "20", "delivered", "0", T0, ""), T0) == half
        )


def test_an_operator_resends_a_failed_message_and_it_is_audited(db: Database) -> None:
    mid = queue(db)
    claim(db)
    with db.session() as s:
        results.failed_attempt(s, mid, Rejected("no"), outbox.Policy(route=("modem",)), T0)
        assert s.get(OutboxMessage, mid).state == lc.FAILED
        outbox.resend(s, mid, Actor("office"), now=T0 + 100)
    r = row(db, mid)
    assert (r.state, r.resends, r.channel, r.error) == (lc.QUEUED, 1, None, None)
    with db.session() as s, pytest.raises(lc.IllegalTransitionError):
        outbox.resend(s, mid, Actor("office"), now=T0 + 101)  # queued already


def test_refs_are_kept_per_segment(db: Database) -> None:
    mid = queue(db)
    claim(db)
    with db.session() as s:
        results.sent(s, mid, Receipt("biz-1", refs=("biz-1",)), T0)
        refs = [(r.channel, r.ref, r.seq) for r in s.scalars(select(OutboxRef))]
    assert refs == [("modem", "biz-1", 1)]
