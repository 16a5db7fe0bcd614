"""Shared fixtures. Area fixtures live in each area's conftest (tests/<area>/conftest.py).

`mosquitto` gives a test its own broker (free loopback port, own config) that it may stop and
restart; `pty_pair` gives two linked serial devices made by socat."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import Mosquitto, PtyPair


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    broker = Mosquitto().start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    with PtyPair() as pair:
        yield pair
