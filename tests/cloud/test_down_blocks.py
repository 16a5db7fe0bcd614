"""Downlink number blocks (cloud/park/gateways.reserve_down_blocks), on both databases: each
reservation starts where the last one ended, whoever holds the collector, so no (key, nonce)
pair repeats; collectors that do not exist are left out; objects of those rows already in the
caller's session read the new numbers, not stale ones."""

from __future__ import annotations

from cloud.db import Database
from cloud.models import Gateway
from cloud.park import gateways
from tests.cloud.support import Park


def test_blocks_follow_each_other_per_collector(db: Database, park: Park) -> None:
    gw1, gw2 = park.gateways
    with db.session() as s:
        first = gateways.reserve_down_blocks(s, [gw2, gw1, gw1, "no-such-collector"], 64)
    assert first == {gw1: range(1, 65), gw2: range(1, 65)}
    with db.session() as s:
        again = gateways.reserve_down_blocks(s, [gw1], 10)
        assert again == {gw1: range(65, 75)}
    with db.session() as s:
        held = s.get(Gateway, gw2)
        assert held is not None
        assert held.down_seq_reserved == 65
        both = gateways.reserve_down_blocks(s, [gw1, gw2], 5)
        assert both == {gw1: range(75, 80), gw2: range(65, 70)}
        # The object loaded before the reservation reads what was written.
        assert (held.down_seq_next, held.down_seq_reserved) == (65, 70)
    with db.session(readonly=True) as s:
        rows = {g.id: (g.down_seq_next, g.down_seq_reserved) for g in s.query(Gateway)}
    assert rows == {gw1: (75, 80), gw2: (65, 70)}
    with db.session() as s:
        assert gateways.reserve_down_block(s, gw1, 3) == range(80, 83)
