"""The notifier end to end on a real database: messages out through the simulated modem on a
pty and delivered by its reports; a dead modem falls back to Aliyun (verified signatures) with an
alarm on the board; a rejected template moves on; and kill -9 of ``gridvend cloud notify``
mid-send loses nothing and resends only what the modem never gave a reference for; a second
notifier on the same database is refused and leaves the first one's message in flight alone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cloud.db import Database
from cloud.models import Alarm, NotifyChannel, OutboxMessage
from cloud.notify import config, outbox
from cloud.notify import lifecycle as lc
from cloud.notify.service import Notifier, down_alarm_kind
from tests.notify.fake_cloud import FakeAliyun
from tests.notify.modem_sim import SimModem

ROOT = Path(__file__).resolve().parents[2]
GRIDVEND = str(ROOT / ".venv" / "bin" / "gridvend")
PARAMS = {"sign": "园区电费", "unit": "A-101", "balance": "12.34"}
FAST_MODEM = {
    "command_timeout_ms": 1000, "prompt_timeout_ms": 1000, "send_timeout_ms": 2000,
    "settle_ms": 30, "open_timeout_ms": 500, "health_interval_s": 0.1, "health_failures": 1,
    "reset_wait_s": 0.05, "dead_retry_s": 0.5,
}  # fmt: skip


@pytest.fixture
def sim() -> Iterator[SimModem]:
    with SimModem() as modem:
        yield modem


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "cloud.db"
    path.write_bytes(sqlite_template.read_bytes())
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


def settings(channels: dict[str, Any], **top: Any) -> config.Settings:
    raw = {
        "poll_s": 0.05, "scan_s": 0.2, "health_s": 0.1, "runway_check_s": 3600,
        "routing": {"fallback_after": 2, "backoff_min_s": 1, "backoff_max_s": 2},
        "quiet_hours": {"start": "00:00", "end": "00:00"},
        "channels": channels, **top,
    }  # fmt: skip
    return config.from_dict(raw)


def queue(db: Database, n: int = 1, text_kind: str = "alarm1", prefix: str = "k") -> list[int]:
    with db.session() as s:
        return [
            outbox.enqueue(
                s,
                key=f"{prefix}:{i}",
                kind=text_kind,
                recipient=f"+861380013{i:04d}",
                params=PARAMS,
            )
            for i in range(n)
        ]


def states(db: Database) -> dict[int, tuple[str, str | None]]:
    # Read-only: a polling writer's BEGIN IMMEDIATE would starve the notifier's writes.
    with db.session(readonly=True) as s:
        return {m.id: (m.state, m.channel) for m in s.scalars(select(OutboxMessage))}


async def until(cond: Callable[[], Any], timeout_s: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := cond()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)
    return value


def run(coro: Any, timeout_s: float = 90) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


def test_messages_go_through_the_modem_and_its_reports_make_them_delivered(
    sqlite_db: Database, sim: SimModem
) -> None:
    ids = queue(sqlite_db, 3)
    s = settings({"modem": {"kind": "modem", "port": sim.path, **FAST_MODEM}})

    async def scenario() -> None:
        notifier = Notifier(sqlite_db, s)
        await notifier.start()
        try:
            await until(lambda: all(st == (lc.DELIVERED, "modem") for st in
                                    states(sqlite_db).values()), what="delivered")  # fmt: skip
        finally:
            await notifier.stop()

    run(scenario())
    assert len(sim.messages()) == 3
    assert sorted(to for to, _ in sim.messages()) == [f"+861380013{i:04d}" for i in range(3)]
    with sqlite_db.session() as db_s:
        health = db_s.get(NotifyChannel, "modem")
        assert health is not None
        assert health.state == "ok"
        assert health.health["counters"]["sent"] == 3
        assert all(db_s.get(OutboxMessage, i).provider_id for i in ids)


def test_a_dead_modem_falls_back_to_aliyun_and_raises_an_alarm_until_it_is_back(
    sqlite_db: Database, sim: SimModem
) -> None:
    with FakeAliyun({"AK": "secret"}, {"SMS_1": ["unit", "balance"]}) as aliyun:
        s = settings({
            "modem": {"kind": "modem", "port": sim.path, **FAST_MODEM},
            "aliyun": {"kind": "aliyun", "access_key_id": "AK", "access_key_secret": "secret",
                       "sign_name": "园区电费", "endpoint": aliyun.url,
                       "templates": {"alarm1": {"code": "SMS_1", "params": ["unit", "balance"]}}},
        })  # fmt: skip

        async def scenario() -> None:
            notifier = Notifier(sqlite_db, s)
            sim.fault("hang")
            await notifier.start()
            try:
                await until(lambda: notifier.channels["modem"].state == "down", what="dead")
                queue(sqlite_db, 2)
                await until(lambda: list(states(sqlite_db).values()) ==
                            [(lc.SENT, "aliyun")] * 2, what="sent by aliyun")  # fmt: skip
                with sqlite_db.session() as db_s:
                    alarm = db_s.scalars(
                        select(Alarm).where(Alarm.kind == down_alarm_kind("modem"))
                    ).one()
                    assert alarm.active
                sim.fault(None)
                await until(lambda: notifier.channels["modem"].state == "ok", what="back")
                await until(lambda: not _alarm_active(sqlite_db), what="alarm cleared")
            finally:
                await notifier.stop()

        run(scenario())
        assert [r.verified for r in aliyun.requests] == [True, True]
    assert sim.messages() == []


def _alarm_active(db: Database) -> bool:
    with db.session() as s:
        return bool(
            s.scalars(
                select(Alarm).where(Alarm.kind == down_alarm_kind("modem"), Alarm.active.is_(True))
            ).first()
        )


def test_a_rejected_template_on_the_primary_moves_to_the_modem(
    sqlite_db: Database, sim: SimModem
) -> None:
    with FakeAliyun({"AK": "secret"}, {"SMS_1": ["unit", "balance"]}) as aliyun:
        aliyun.mode = "reject_template"
        s = settings({
            "aliyun": {"kind": "aliyun", "access_key_id": "AK", "access_key_secret": "secret",
                       "sign_name": "园区电费", "endpoint": aliyun.url,
                       "templates": {"alarm1": "SMS_1"}},
            "modem": {"kind": "modem", "port": sim.path, **FAST_MODEM},
        }, routing={"route": ["aliyun", "modem"]})  # fmt: skip
        [mid] = queue(sqlite_db, 1)

        async def scenario() -> None:
            notifier = Notifier(sqlite_db, s)
            await notifier.start()
            try:
                await until(lambda: states(sqlite_db)[mid] == (lc.DELIVERED, "modem"),
                            what="delivered by the modem")  # fmt: skip
            finally:
                await notifier.stop()

        run(scenario())
    with sqlite_db.session() as db_s:
        row = db_s.get(OutboxMessage, mid)
        assert row.attempts >= 2  # aliyun refused it; the modem took it
    assert len(sim.messages()) == 1


# ---------------------------------------------------------------- kill -9


def _start(db_url: str, cfg: Path, log: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GRIDVEND_DATABASE_URL": db_url}
    return subprocess.Popen(
        [GRIDVEND, "cloud", "notify", "--config", str(cfg)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _wait(cond: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := cond()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
    return value


def _config(tmp_path: Path, sim: SimModem) -> Path:
    cfg = tmp_path / "notify.toml"
    cfg.write_text(
        f"""poll_s = 0.05
scan_s = 0.5
health_s = 0.2
[quiet_hours]
start = "00:00"
end = "00:00"
[channels.modem]
kind = "modem"
port = "{sim.path}"
command_timeout_ms = 500
prompt_timeout_ms = 500
send_timeout_ms = 60000
settle_ms = 30
health_interval_s = 60
""",
        encoding="utf-8",
    )
    return cfg


@pytest.mark.parametrize("segment", [1, 2])
def test_kill_9_mid_send_loses_nothing_and_resends_only_what_had_no_reference(
    sqlite_db: Database, sim: SimModem, tmp_path: Path, segment: int
) -> None:
    """``segment`` 1: the modem swallowed a one-segment text (no reference): it goes again.
    ``segment`` 2: a two-segment text whose first segment has its reference: only the second
    goes again, with the same concatenation reference, and the phone joins them."""
    text_kind = "alarm1" if segment == 1 else "gateway_lost"
    long_params = {"sign": "园区电费" * 10, "site": "一号园区" * 10, "gateway": "gw-01"}
    with sqlite_db.session() as s:
        mid = outbox.enqueue(s, key="kill:1", kind=text_kind, recipient="+8613800138000",
                             params=PARAMS if segment == 1 else long_params)  # fmt: skip
    sim.fault("hang_after_prompt", after=segment - 1)
    cfg, log = _config(tmp_path, sim), tmp_path / "notify.log"
    out = log.open("ab")
    proc = _start(sqlite_db.url, cfg, out)
    try:
        _wait(lambda: sim.swallowed == 1, 30, "the modem to swallow the segment")
        with sqlite_db.session(readonly=True) as s:
            row = s.get(OutboxMessage, mid)
            assert row.state == lc.SENDING
            assert len(row.done_parts or {}) == segment - 1  # the first segment's reference kept
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc = _start(sqlite_db.url, cfg, out)
        # Delivered, or sent: a status report the killed process had not yet written is gone
        # with it (reports are routed to the port, not stored), so "sent" is the honest state.
        _wait(lambda: states(sqlite_db)[mid][0] in (lc.SENT, lc.DELIVERED), 30, "sent again")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        out.close()
    assert len(sim.messages()) == 1, log.read_text()
    assert sim.duplicates() == 0
    assert len(sim.segments) == segment  # nothing that had a reference went twice
    with sqlite_db.session() as s:
        row = s.get(OutboxMessage, mid)
        assert row.parts == segment
        assert row.attempts == 1  # the attempt cut short by the kill never finished


# ---------------------------------------------------------------- one notifier per database


def test_a_second_notifier_is_refused_and_leaves_the_firsts_message_in_flight_alone(
    db: Database, sim: SimModem, tmp_path: Path
) -> None:
    """A second ``gridvend cloud notify`` on the same database (by hand beside the unit, or on
    another server) exits with 2 at once, without "recovering" the first one's message in
    flight; once the first is killed with SIGKILL, a new one starts (the lock is not stale) and
    sends that message, once."""
    with db.session() as s:
        mid = outbox.enqueue(s, key="single:1", kind="alarm1", recipient="+8613800138000",
                             params=PARAMS)  # fmt: skip
    sim.fault("hang_after_prompt")
    cfg, log = _config(tmp_path, sim), tmp_path / "notify.log"
    out = log.open("ab")
    proc = _start(db.url, cfg, out)
    try:
        _wait(lambda: sim.swallowed == 1, 30, "the modem to swallow the text")
        env = {**os.environ, "GRIDVEND_DATABASE_URL": db.url}
        commands = len(sim.commands)
        second = subprocess.run(
            [GRIDVEND, "cloud", "notify", "--config", str(cfg)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert second.returncode == 2, second.stderr
        lock = (
            f"lock file {db.url.removeprefix('sqlite:///')}.notify.lock"
            if db.is_sqlite
            else "PostgreSQL advisory lock gridvend-notifier"
        )
        # One line for the operator (no traceback) among the JSON log lines.
        [line] = [ln for ln in second.stderr.splitlines() if not ln.startswith("{")]
        assert line.startswith(f"another notifier is running on this database ({lock}, held by")
        assert line.endswith("); stop it first")
        assert proc.poll() is None  # the first one runs on
        with db.session(readonly=True) as s:
            row = s.get(OutboxMessage, mid)
            assert (row.state, row.attempts, row.error) == (lc.SENDING, 0, None)
        assert len(sim.commands) == commands  # the second never opened the modem's port
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc = _start(db.url, cfg, out)
        _wait(lambda: states(db)[mid][0] in (lc.SENT, lc.DELIVERED), 30, "sent again")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # still in the swallowed send: a failed test
                proc.kill()
                proc.wait(timeout=10)
        out.close()
    assert len(sim.messages()) == 1, log.read_text()
    assert len(sim.segments) == 1  # the restart's (the swallowed one left no segment)
