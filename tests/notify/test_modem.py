"""The GSM modem channel against the simulated modem on a real pty: init, sends with references
and delivery reports, +CMS errors, and the watchdog through hangs, garbage, a vanished port
and a power cycle."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from cloud.notify.channels.base import DEGRADED, DOWN, OK, DeliveryReport, Message
from cloud.notify.channels.modem import GsmModem
from cloud.notify.errors import ChannelDown, ConfigError, Rejected, RetryLater
from tests.notify.modem_sim import SimModem

FAST = {
    "command_timeout_ms": 300,
    "prompt_timeout_ms": 300,
    "send_timeout_ms": 600,
    "settle_ms": 30,
    "open_timeout_ms": 500,
    "health_interval_s": 0.1,
    "health_failures": 1,
    "reset_wait_s": 0.05,
    "dead_retry_s": 0.3,
    "power_cycle_wait_s": 0.05,
}
CHINESE = "【园区电费】单元A-101：电表余额12.34元，已低于报警值1，请尽快充值。"


def run(coro: Awaitable[Any], timeout_s: float = 60) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


async def until(cond: Callable[[], Any], timeout_s: float = 10, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := cond()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)
    return value


@pytest.fixture
def sim() -> Iterator[SimModem]:
    with SimModem() as modem:
        yield modem


def make(sim: SimModem, **extra: Any) -> tuple[GsmModem, list[DeliveryReport], list[tuple]]:
    states: list[tuple] = []
    modem = GsmModem(
        "modem", port=sim.path, on_state=lambda *s: states.append(s), **{**FAST, **extra}
    )
    reports: list[DeliveryReport] = []
    modem.on_report(reports.append)
    return modem, reports, states


def message(text: str = CHINESE, to: str = "+8613800138000", key: str = "m1") -> Message:
    return Message(key=key, to=to, text=text)


def test_init_then_send_gives_the_reference_and_the_delivery_report_matches_it(
    sim: SimModem,
) -> None:
    async def scenario() -> None:
        modem, reports, _ = make(sim)
        await modem.start()
        try:
            assert modem.state == OK
            assert modem.reports_enabled
            receipt = await modem.send(message())
            assert receipt.parts == 1
            assert not receipt.delivered
            await until(lambda: reports, what="+CDS report")
            assert reports[0].ref == receipt.refs[0] == receipt.provider_id
            assert reports[0].outcome == "delivered"
            assert reports[0].recipient == "+8613800138000"
        finally:
            await modem.close()

    run(scenario())
    # The standard init went out in order, echo was on until ATE0 (the client ignored it).
    assert sim.commands[:5] == ["AT", "ATE0", "AT+CMEE=1", "AT+CMGF=0", "AT+CNMI=2,1,0,1,0"]
    assert sim.messages() == [("+8613800138000", CHINESE)]
    assert sim.segments[0][1].encoding == "ucs2"
    assert sim.segments[0][1].status_report


def test_a_long_chinese_text_goes_as_joined_segments_each_with_its_reference(
    sim: SimModem,
) -> None:
    text = CHINESE * 3

    async def scenario() -> Any:
        modem, reports, _ = make(sim)
        await modem.start()
        try:
            receipt = await modem.send(message(text))
            await until(lambda: len(reports) == receipt.parts, what="a report per segment")
            return receipt, reports
        finally:
            await modem.close()

    receipt, reports = run(scenario())
    assert receipt.parts == 2
    assert len(receipt.refs) == 2
    assert sorted(r.ref for r in reports) == sorted(receipt.refs)
    assert sim.messages() == [("+8613800138000", text)]
    assert [seg.concat[2] for _, seg in sim.segments] == [1, 2]


def test_cms_331_no_network_is_retried_later_and_the_next_send_goes(sim: SimModem) -> None:
    async def scenario() -> None:
        modem, _, _ = make(sim)
        await modem.start()
        try:
            sim.fault("cms", code=331, count=1)
            with pytest.raises(RetryLater) as err:
                await modem.send(message())
            assert err.value.code == "CMS 331"
            assert not err.value.uncertain
            assert "no network service" in str(err.value)
            await modem.send(message(key="m2"))
        finally:
            await modem.close()

    run(scenario())
    assert len(sim.messages()) == 1


@pytest.mark.parametrize(
    ("code", "error"), [(1, Rejected), (304, Rejected), (310, ChannelDown), (314, RetryLater)]
)
def test_cms_codes_map_to_retry_reject_or_modem_fault(
    sim: SimModem, code: int, error: type
) -> None:
    async def scenario() -> None:
        modem, _, _ = make(sim)
        await modem.start()
        try:
            sim.fault("cms", code=code, count=1)
            with pytest.raises(error) as err:
                await modem.send(message())
            assert err.value.code == f"CMS {code}"
        finally:
            await modem.close()

    run(scenario())


def test_a_segment_that_failed_is_resent_alone_with_the_same_concatenation_reference(
    sim: SimModem,
) -> None:
    text = CHINESE * 3

    async def scenario() -> None:
        modem, _, _ = make(sim)
        await modem.start()
        try:
            # The first segment goes, the second meets "no network".
            sim.cms_code, sim.cms_count = 331, 0
            original = sim._submit

            def second_fails(hex_pdu: str) -> None:
                if len(sim.segments) == 1 and not failed:
                    failed.append(True)
                    sim.cms_count = 1
                original(hex_pdu)

            failed: list[bool] = []

            sim._submit = second_fails  # type: ignore[method-assign]
            with pytest.raises(RetryLater) as err:
                await modem.send(message(text))
            assert list(err.value.partial) == [1]
            retry = Message("m1", "+8613800138000", text, concat_ref=err.value.concat_ref,
                            done_parts=err.value.partial)  # fmt: skip
            receipt = await modem.send(retry)
            assert receipt.parts == 2
            assert receipt.refs[0] == err.value.partial[1]
        finally:
            await modem.close()

    run(scenario())
    assert sim.messages() == [("+8613800138000", text)]
    assert sim.duplicates() == 0


def test_no_answer_after_the_pdu_is_uncertain_and_the_modem_carries_on(sim: SimModem) -> None:
    async def scenario() -> None:
        modem, _, _ = make(sim)
        await modem.start()
        try:
            sim.fault("hang_after_prompt")
            with pytest.raises(RetryLater) as err:
                await modem.send(message())
            assert err.value.uncertain
            assert err.value.code == "timeout"
            receipt = await modem.send(message(key="m2"))
            assert receipt.refs
        finally:
            await modem.close()

    run(scenario())
    assert len(sim.messages()) == 1  # the swallowed one never reached the network


def test_a_wedged_modem_is_reset_by_the_reset_command(sim: SimModem) -> None:
    async def scenario() -> GsmModem:
        modem, _, states = make(sim)
        await modem.start()
        try:
            sim.fault("hang_until_reset")
            await until(lambda: modem.watchdog.counters["resets"] >= 1, what="a reset")
            await until(lambda: modem.state == OK, what="the modem back")
            await modem.send(message())
            assert any(s[1] == "recovering" for s in states)
            return modem
        finally:
            await modem.close()

    modem = run(scenario())
    assert "AT+CFUN=1,1" in sim.commands
    assert modem.reason.startswith("answering") or "reset" in modem.reason


def test_a_modem_that_never_answers_is_dead_then_recovers_when_it_does(sim: SimModem) -> None:
    async def scenario() -> None:
        modem, _, states = make(sim)
        await modem.start()
        try:
            sim.fault("hang")
            await until(lambda: modem.state == DOWN, what="the modem declared dead")
            health = modem.health()
            assert health["dead"]
            assert health["state"] == "down"
            assert health["watchdog"]["reopens"] >= 1
            assert health["watchdog"]["resets"] >= 1
            assert ("recovering", "down") in [(a, b) for a, b, _ in states]
            with pytest.raises(ChannelDown):
                await modem.send(message())
            sim.fault(None)
            await until(lambda: modem.state == OK, what="the modem back after the fault cleared")
            await modem.send(message(key="m2"))
        finally:
            await modem.close()

    run(scenario())
    assert len(sim.messages()) == 1


def test_garbage_instead_of_answers_is_recovered_from_once_it_stops(sim: SimModem) -> None:
    async def scenario() -> None:
        modem, _, _ = make(sim)
        await modem.start()
        try:
            sim.fault("garble")
            with pytest.raises(RetryLater):
                await modem.send(message())
            await until(lambda: modem.state == DOWN, what="dead while it only garbles")
            sim.fault(None)
            await until(lambda: modem.state == OK, what="recovered")
            await modem.send(message(key="m2"))
        finally:
            await modem.close()

    run(scenario())
    assert len(sim.messages()) == 1


def test_a_vanished_port_is_dead_until_the_modem_reappears_then_reopened(sim: SimModem) -> None:
    async def scenario() -> GsmModem:
        modem, _, _ = make(sim)
        await modem.start()
        try:
            sim.vanish()
            await until(lambda: modem.state == DOWN, what="dead with the port gone")
            assert modem.counters["link_losses"] == 1
            with pytest.raises(ChannelDown):
                await modem.send(message())
            sim.reappear()
            await until(lambda: modem.state == OK, what="reopened")
            await modem.send(message(key="m2"))
            return modem
        finally:
            await modem.close()

    modem = run(scenario())
    assert len(sim.messages()) == 1
    assert modem.counters["opens"] >= 2


def test_the_port_vanishing_mid_send_is_uncertain(sim: SimModem) -> None:
    async def scenario() -> None:
        modem, _, _ = make(sim, send_timeout_ms=3000)
        await modem.start()
        try:
            sim.fault("hang_after_prompt")
            task = asyncio.create_task(modem.send(message()))
            await until(lambda: sim.fault_mode is None, what="the PDU swallowed")
            sim.vanish()
            with pytest.raises(RetryLater) as err:
                await task
            assert err.value.uncertain
            assert err.value.code == "link"
        finally:
            await modem.close()

    run(scenario())


def test_the_power_cycle_command_is_the_last_rung(sim: SimModem) -> None:
    power = [sys.executable, "-c", f"open({str(sim.power_file)!r}, 'w').close()"]

    async def scenario() -> GsmModem:
        modem, _, _ = make(sim, power_cycle=power)
        await modem.start()
        try:
            sim.fault("hang")  # the reset command does not help; cutting the power does
            await until(lambda: sim.power_cycles >= 1, what="a power cycle")
            await until(lambda: modem.state == OK, what="the modem back")
            await modem.send(message())
            return modem
        finally:
            await modem.close()

    modem = run(scenario())
    assert modem.watchdog.counters["power_cycles"] >= 1
    assert len(sim.messages()) == 1


def test_not_registered_on_the_network_is_degraded_with_the_reason(sim: SimModem) -> None:
    async def scenario() -> None:
        modem, _, _ = make(sim)
        await modem.start()
        try:
            sim.fault("unregistered")
            await until(lambda: modem.state == DEGRADED, what="degraded")
            assert "not registered" in modem.health()["reason"]
            sim.fault(None)
            await until(lambda: modem.state == OK, what="registered again")
        finally:
            await modem.close()

    run(scenario())


def test_a_modem_silent_from_the_start_leaves_start_quickly_and_is_declared_dead() -> None:
    with SimModem() as sim:
        sim.fault("hang")

        async def scenario() -> float:
            modem, _, _ = make(sim)
            t0 = time.monotonic()
            await modem.start()
            took = time.monotonic() - t0
            try:
                await until(lambda: modem.state == DOWN, what="dead")
            finally:
                await modem.close()
            return took

        assert run(scenario()) < 3  # every command has its timeout; nothing waits forever


def test_unknown_and_mistyped_settings_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"channels\.modem\.bauds"):
        GsmModem("modem", port="/dev/null", bauds=9600)
    with pytest.raises(ConfigError, match=r"channels\.modem\.port is required"):
        GsmModem("modem")
    with pytest.raises(ConfigError, match=r"channels\.modem\.baud must be int"):
        GsmModem("modem", port="/dev/null", baud="fast")
