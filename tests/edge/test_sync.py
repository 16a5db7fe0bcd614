"""The MQTT sync against a real Mosquitto and the test receiver: order, exactly once, acks,
outages, broker restarts without persistence, and bad downlink input."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.cache.store import Store
from edge.cache.worker import StoreWorker
from edge.mqtt import Connector, MqttConnection
from edge.sync import Persist, Sync, SyncSettings
from shared.broker import Broker, BrokerError
from shared.codec import envelope, messages
from tests.edge.receiver import Receiver
from tests.fakes import FakeClock
from tests.support.services import Mosquitto

SITE, GW = "site-a", "gw-01"
RING = envelope.Keyring({1: bytes(range(32))}, current=1)
FAST = SyncSettings(
    heartbeat_s=0.5,
    ack_timeout_s=1.0,
    batch_msgs=50,
    window=4,
    backoff_min_s=0.05,
    backoff_max_s=0.5,
    connect_timeout_s=5.0,
)


async def until(pred: Callable[[], bool], timeout_s: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s: {what}")
        await asyncio.sleep(0.02)


class Harness:
    """A Sync over a real store, with a command sink that answers every command; over a real
    Mosquitto, or (``connect``, ``clock``) the in-memory broker and a fake clock."""

    def __init__(
        self,
        tmp: Path,
        broker: Mosquitto | None,
        settings: SyncSettings = FAST,
        *,
        connect: Connector | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        self.clock = clock
        self.store = Store(tmp / "edge.sqlite", seq_block=5)
        self.worker = StoreWorker(self.store)
        self.commands: list[dict[str, Any]] = []
        self.sync = Sync(
            site=SITE,
            gateway=GW,
            keyring=RING,
            broker=Broker(url=broker.url, keepalive_s=5) if broker else Broker(),
            worker=self.worker,
            on_commands=self.apply,
            hello=lambda: messages.hello("test", "h", []),
            heartbeat=lambda backlog: messages.hb(int(time.time()), backlog, {}, 1),
            settings=settings,
            clock=clock.time if clock else time.time,
            timer=clock.monotonic if clock else time.monotonic,
            connect=connect,
        )

    async def apply(self, cmds: list[dict[str, Any]], persist: Persist) -> None:
        def work() -> None:
            with self.store.transaction():
                for c in cmds:
                    self.commands.append(c)
                    result = messages.result(c["id"], c["meter"], c["op"], "applied", None, 0)
                    self.store.outbox.enqueue(result, 0)
                persist(self.store)

        await self.worker.call(work)
        self.sync.kick(len(cmds))

    async def enqueue(self, n: int, start: int = 0) -> None:
        def work() -> None:
            with self.store.transaction():
                for i in range(start, start + n):
                    self.store.outbox.enqueue(messages.need_purchase(f"m{i}", i + 1), 0)

        await self.worker.call(work)
        self.sync.kick(n)

    async def backlog(self) -> dict[str, int]:
        return await self.worker.call(self.store.outbox.backlog)

    async def last_enqueued(self) -> int:
        """The id of the last message ever put in the outbox (0: none yet)."""

        def read() -> int:
            row = self.store.conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"
            ).fetchone()
            return int(row[0]) if row else 0

        return await self.worker.call(read)


@contextlib.asynccontextmanager
async def running(h: Harness) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(h.sync.run())
    try:
        yield task
    finally:
        await h.sync.stop()
        await asyncio.wait_for(task, 10)
        h.worker.close()


def uplink_numbers(rx: Receiver) -> list[int]:
    return [m["purchase_no"] for m in rx.of_type("need_purchase")]


def test_uplink_drains_in_order_exactly_once_and_rows_leave_on_ack(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, mosquitto)
        with Receiver(mosquitto.port, SITE, GW, RING) as rx:
            async with running(h):
                await h.enqueue(500)
                await until(lambda: len(uplink_numbers(rx)) >= 500, what="500 messages")
                await until(lambda: h.sync.backlog() == 0, what="backlog drained")
                assert await h.backlog() == {"queued": 0, "inflight_envelopes": 0, "inflight": 0}
            assert uplink_numbers(rx) == list(range(1, 501))
            ids = [m["id"] for m in rx.of_type("need_purchase")]
            assert ids == sorted(set(ids))
            assert rx.of_type("hello"), "hello is sent on connect"
            assert rx.seqs == sorted(set(rx.seqs))
            assert rx.errors == []

    asyncio.run(scenario())


def test_unacked_envelopes_stay_stored_and_are_resent_byte_for_byte(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, mosquitto)
        with Receiver(mosquitto.port, SITE, GW, RING, auto_ack=False) as rx:
            async with running(h):
                await h.enqueue(30)
                await until(lambda: len(uplink_numbers(rx)) == 30, what="30 messages")
                stored = await h.backlog()
                assert stored["queued"] == 0
                assert stored["inflight"] == 30
                await until(lambda: rx.replays >= 1, what="a resend after the ack timeout")
                assert uplink_numbers(rx) == list(range(1, 31))  # the resend was deduped
                rx.ack_all()
                await until(lambda: h.sync.backlog() == 0, what="acked")
                assert (await h.backlog())["inflight_envelopes"] == 0

    asyncio.run(scenario())


def test_outage_backlog_reaches_the_receiver_once_after_the_broker_returns(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, mosquitto)
        async with running(h):
            await until(h.sync.connected.is_set, what="connected")
            mosquitto.stop()
            await until(lambda: not h.sync.connected.is_set(), what="link loss noticed")
            await h.enqueue(300)
            await asyncio.sleep(0.3)
            assert (await h.backlog())["queued"] >= 300 - FAST.batch_msgs * FAST.window
            mosquitto.start()
            with Receiver(mosquitto.port, SITE, GW, RING) as rx:
                await until(lambda: h.sync.backlog() == 0, what="drained after the outage")
                await until(lambda: len(uplink_numbers(rx)) >= 300, what="all 300")
                assert uplink_numbers(rx) == list(range(1, 301))
        assert h.sync.stats.connects >= 2

    asyncio.run(scenario())


def test_broker_restart_without_persistence_resends_and_receiver_dedupes(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, mosquitto)
        with Receiver(mosquitto.port, SITE, GW, RING) as rx:
            async with running(h):
                for round_ in range(4):
                    await h.enqueue(100, start=round_ * 100)
                    await asyncio.sleep(0.05)
                    mosquitto.restart()  # persistence off: the broker forgets all it held
                await until(lambda: len(uplink_numbers(rx)) >= 400, 60, "all 400 after restarts")
                await until(lambda: h.sync.backlog() == 0, 60, what="drained")
            # Each message once. Not in order: an envelope the broker acked and then forgot
            # comes back by fast retransmit after newer ones (the receiver, like the bridge,
            # takes it by its replay window); the agent resends on reconnect before the test
            # receiver has subscribed again as often as after.
            numbers = uplink_numbers(rx)
            assert sorted(numbers) == list(range(1, 401)), numbers

    asyncio.run(scenario())


def test_an_envelope_lost_before_a_later_one_was_acked_is_resent_at_once(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    # After a broker restart without persistence, envelopes published before the cloud
    # re-subscribed are gone while later ones arrive; waiting the whole ack timeout to resend
    # them leaves the cloud's mirror behind the collector. The ack of a later envelope says the
    # earlier one was lost: it goes again at once. The ack timeout here is 10 minutes, so only
    # that fast retransmit can deliver the lost envelope within the test's deadline.
    async def scenario() -> None:
        slow_timeout = SyncSettings(**{**FAST.__dict__, "ack_timeout_s": 600.0, "batch_msgs": 10})
        h = Harness(tmp_path, mosquitto, settings=slow_timeout)
        with Receiver(mosquitto.port, SITE, GW, RING) as rx:
            victims: set[int] = set()

            def lose_first_batch_once(opened: envelope.Opened) -> bool:
                nos = [m.get("purchase_no") for m in opened.body["m"]]
                if 1 in nos and opened.header.seq not in victims:
                    victims.add(opened.header.seq)
                    return True
                return False

            rx.lose = lose_first_batch_once
            async with running(h):
                await h.enqueue(40)
                await until(lambda: len(uplink_numbers(rx)) >= 40, 30, "all 40, the lost too")
                await until(lambda: h.sync.backlog() == 0, 30, what="drained")
            assert rx.lost
            assert sorted(uplink_numbers(rx)) == list(range(1, 41))
            assert h.sync.stats.fast_resent >= 1

    asyncio.run(scenario())


def test_last_will_marks_the_gateway_offline_and_connect_marks_it_online(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    seen: list[str] = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watch", protocol=mqtt.MQTTv311)
    watcher.on_message = lambda c, u, m: seen.append(m.payload.decode())
    watcher.on_connect = lambda c, u, f, r, p: c.subscribe(f"gridvend/v1/{SITE}/{GW}/status", 1)

    async def scenario() -> None:
        h = Harness(tmp_path, mosquitto, SyncSettings(**{**FAST.__dict__, "backoff_min_s": 5.0}))
        async with running(h):
            await until(lambda: "online" in seen, what="online")
            # Cut the TCP link without a DISCONNECT: the broker publishes the will.
            sock = (
                h.sync._conn.client.socket() if isinstance(h.sync._conn, MqttConnection) else None
            )
            assert sock is not None
            sock.shutdown(2)
            await until(lambda: seen[-1:] == ["offline"], 20, what="the will")

    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.loop_start()
    try:
        asyncio.run(scenario())
    finally:
        watcher.loop_stop()


class BadInput:
    """The ways a downlink envelope can be bad, each built from a good one."""

    def __init__(self, rx: Receiver) -> None:
        self.rx = rx

    def cases(self, replayed: bytes) -> dict[str, bytes]:
        credit = [messages.cmd("bad-1", "m1", "credit", {"purchase_no": 1, "amount_micro_yuan": 9})]
        good = self.rx.seal_down(credit)
        tampered = bytearray(self.rx.seal_down(credit))
        tampered[-20] ^= 0x01
        header_changed = bytearray(self.rx.seal_down(credit))
        header_changed[12] ^= 0x01  # inside the gateway id / sequence
        wrong_key = envelope.seal(
            envelope.Keyring({1: bytes(32)}, current=1),
            envelope.DOWN,
            GW,
            10_000,
            0,
            messages.body(credit),
        )
        unknown_key = envelope.seal(
            envelope.Keyring({9: bytes(range(32))}, current=9),
            envelope.DOWN,
            GW,
            10_001,
            0,
            messages.body(credit),
        )
        reflected = envelope.seal(RING, envelope.UP, GW, 10_002, 0, messages.body(credit))
        other_gateway = envelope.seal(
            RING, envelope.DOWN, "gw-99", 10_003, 0, messages.body(credit)
        )
        assert good
        return {
            "tampered": bytes(tampered),
            "header": bytes(header_changed),
            "wrong_key": wrong_key,
            "unknown_key": unknown_key,
            "reflected": reflected,
            "other_gateway": other_gateway,
            "garbage": b"\x00not an envelope",
            "empty": b"",
            "replayed": replayed,
        }


def test_bad_downlink_input_is_rejected_logged_and_changes_nothing(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, mosquitto)
        with Receiver(mosquitto.port, SITE, GW, RING) as rx:
            async with running(h):
                await until(h.sync.connected.is_set, what="connected")
                await asyncio.sleep(0.2)  # let the subscription settle
                first = rx.seal_down([messages.cmd("ok-1", "m1", "read_now", {})])
                rx.send_raw(first)
                await until(lambda: len(h.commands) == 1, what="the good command")
                await until(lambda: h.sync.backlog() == 0, what="its result acked")
                before = (
                    await h.worker.call(h.store.get_kv, "replay_down"),
                    await h.last_enqueued(),
                )
                cases = BadInput(rx).cases(replayed=first)
                for data in cases.values():
                    rx.send_raw(data)
                await until(
                    lambda: sum(h.sync.stats.rejected.values()) >= len(cases), what="rejections"
                )
                # an authentic envelope whose message is malformed: that message is dropped
                rx.send_raw(rx.seal_down([{"t": "cmd", "id": "x", "op": "credit"}]))
                await until(lambda: h.sync.stats.rejected.get("MalformedMessage") == 1)
                assert [c["id"] for c in h.commands] == ["ok-1"]
                after_window = await h.worker.call(h.store.get_kv, "replay_down")
                assert after_window["highest"] > before[0]["highest"]  # the authentic one
                # nothing was queued for the uplink because of them (what was queued before
                # may have gone out meanwhile: the outbox's last id, not its size)
                assert await h.last_enqueued() == before[1]
                rejected = h.sync.stats.rejected
                assert rejected.get("ForgedError") == 3  # tampered, header, wrong key
                assert rejected.get("UnknownKeyError") == 1
                assert rejected.get("ReplayError") == 1
                assert rejected.get("MalformedError") == 4  # reflected, gateway, garbage, empty

    asyncio.run(scenario())
    assert "downlink_rejected" in caplog.text


def test_duplicate_downlink_envelope_from_qos1_redelivery_is_applied_once(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, mosquitto)
        with Receiver(mosquitto.port, SITE, GW, RING) as rx:
            async with running(h):
                await until(h.sync.connected.is_set, what="connected")
                await asyncio.sleep(0.2)
                data = rx.seal_down([messages.cmd("once", "m1", "read_now", {})])
                for _ in range(3):
                    rx.send_raw(data)
                await until(lambda: h.sync.stats.rejected.get("ReplayError") == 2)
                assert [c["id"] for c in h.commands] == ["once"]

    asyncio.run(scenario())


def test_broker_url_must_be_mqtt_or_mqtts() -> None:
    assert Broker(url="mqtts://example.org").endpoint() == ("example.org", 8883, True)
    assert Broker(url="mqtt://10.0.0.2:1999").endpoint() == ("10.0.0.2", 1999, False)
    with pytest.raises(BrokerError, match="scheme"):
        Broker(url="http://x").endpoint()
