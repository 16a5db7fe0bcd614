"""The standby copies a bridge keeps of other bridges' envelopes (cloud/bridge/standby.py): taken
per collector in arrival order, dropped when too old or too many, and a collector whose copies
nobody applied is offered for a claim at most once per grace period."""

from __future__ import annotations

from cloud.bridge.link import Inbound
from cloud.bridge.standby import Standby


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _item(n: int, t: float) -> Inbound:
    return Inbound(f"gridvend/v1/s/g{n % 2}/up", bytes([n]), t)


def test_copies_come_back_per_collector_in_arrival_order_and_only_once() -> None:
    clock = Clock()
    st = Standby(keep_s=20, clock=clock)
    for n in range(6):
        st.keep(f"g{n % 2}", _item(n, clock.now + n))
    assert [i.payload[0] for i in st.take(["g0"])] == [0, 2, 4]
    assert st.take(["g0"]) == []
    assert st.size == 3
    assert sorted(st.gateways()) == ["g1"]


def test_old_copies_and_too_many_copies_are_dropped_oldest_first() -> None:
    clock = Clock()
    st = Standby(keep_s=10, max_envelopes=3, clock=clock)
    for n in range(5):
        st.keep("g0", _item(n, clock.now))
    assert st.size == 3
    assert st.dropped == 2
    assert [i.payload[0] for i in st.take(["g0"])] == [2, 3, 4]
    st.keep("g1", _item(9, clock.now))
    clock.now += 11
    st.expire()
    assert st.size == 0
    assert st.gateways() == []


def test_a_copy_taken_then_kept_again_is_not_dropped_by_a_stale_index_entry() -> None:
    clock = Clock()
    st = Standby(keep_s=10, clock=clock)
    st.keep("g0", _item(0, clock.now))
    st.take(["g0"])
    clock.now += 5
    st.keep("g0", _item(2, clock.now))
    clock.now += 6  # the first copy's index entry is past keep_s, the second is not
    st.expire()
    assert [i.payload[0] for i in st.take(["g0"])] == [2]


def test_unapplied_copies_are_offered_once_per_grace_period() -> None:
    clock = Clock()
    st = Standby(keep_s=60, clock=clock)
    st.keep("g0", _item(0, clock.now))
    assert st.waiting(5) == []
    clock.now += 6
    assert st.waiting(5) == ["g0"]
    assert st.waiting(5) == []  # just offered
    clock.now += 6
    assert st.waiting(5) == ["g0"]
