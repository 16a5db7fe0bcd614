"""Shared fixtures. Area fixtures live in each area's conftest (tests/<area>/conftest.py).

`mosquitto` gives a test its own broker (free loopback port, own config) that it may stop and
restart; `pty_pair` gives two linked serial devices made by socat."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import Mosquitto, PtyPair

# The longest modules (minutes each; `make test PYTEST_ARGS=--durations=30` shows them) start
# first, so the two workers of `make test` (pytest-xdist, a module per worker at a time) finish
# together instead of one of them running the longest alone at the end (the Makefile's
# --no-loadscope-reorder keeps this order: xdist would sort modules by their number of tests).
# Order only: every test runs either way.
LONG_MODULES = (
    "tests/cloud/test_schemathesis.py",
    "tests/e2e/test_pipeline.py",
    "tests/reports/test_figures.py",
    "tests/web/test_cashier.py",
    "tests/web/test_report_screens.py",
    "tests/web/test_board_screens.py",
    "tests/e2e/test_demo.py",
    "tests/e2e/test_notify.py",
    "tests/notify/test_notifier.py",
    "tests/scale/test_cluster.py",
    "tests/scale/test_bridges.py",
    "tests/scale/test_crash.py",
    "tests/tenant/test_browser.py",
    "tests/web/test_customer_screens.py",
    "tests/edge/test_crash.py",
    "tests/e2e/test_tenant_site.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: k for k, path in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


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
