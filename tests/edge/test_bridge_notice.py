"""A bridge's retained ``online`` notice (gridvend/v1/bridge/{client id}) makes the collector
resend what waits for an ack at once, instead of after the 30 s ack timeout: on a first start, or
after a broker restart without persistence, a bridge may subscribe after the collector's first
publishes, which then reached nobody (issue 15, "first-start ordering")."""

from __future__ import annotations

import asyncio

from shared import topics
from tests.edge.agentkit import until
from tests.edge.test_sync_logic import SETTINGS, Wire, _seqs, running, wire

__all__ = ["wire"]  # the fixture, shared with test_sync_logic


def test_a_bridge_coming_online_gets_the_waiting_envelopes_resent_at_once(wire: Wire) -> None:
    async def scenario() -> None:
        cloud, h = wire.cloud, wire.h
        bridge = wire.broker.peer("bridge-1")
        async with running(h):
            await h.enqueue(5)
            await until(lambda: len(_seqs(cloud)) == 1, what="the envelope")
            h.clock.advance(2.0)  # far less than the ack timeout
            assert SETTINGS.ack_timeout_s > 2.0
            bridge.publish(topics.bridge_status("bridge-1"), topics.ONLINE, retain=True)
            await until(lambda: len(_seqs(cloud)) == 2, what="the resend")
            first, again = (
                d
                for d, o in zip(cloud.envelopes(), cloud.opened(), strict=True)
                if o.body["m"][0]["t"] == "need_purchase"
            )
            assert first == again  # byte for byte: sealed once
            assert h.sync.stats.bridge_resent == 1
            # An offline notice (a bridge's will) resends nothing.
            h.clock.advance(2.0)
            bridge.publish(topics.bridge_status("bridge-1"), topics.OFFLINE, retain=True)
            await asyncio.sleep(0.2)
            assert len(_seqs(cloud)) == 2

    asyncio.run(scenario())


def test_the_retained_notice_met_at_connect_sends_nothing_twice(wire: Wire) -> None:
    async def scenario() -> None:
        cloud, h = wire.cloud, wire.h
        bridge = wire.broker.peer("bridge-1")
        bridge.publish(topics.bridge_status("bridge-1"), topics.ONLINE, retain=True)
        async with running(h):
            await h.enqueue(5)
            await until(lambda: len(_seqs(cloud)) == 1, what="the envelope")
            await asyncio.sleep(0.3)
            assert len(_seqs(cloud)) == 1
            assert h.sync.stats.bridge_resent == 0

    asyncio.run(scenario())
