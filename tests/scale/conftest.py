"""Fixtures of the scale tests: a fresh PostgreSQL database per test (several bridges share one;
that is the point), a park of collectors seeded the way the scale benchmark seeds it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.scale import procs, seed
from cloud.db import Database
from tests.e2e.dbs import postgres_url


@pytest.fixture
def pg() -> Iterator[Database]:
    with postgres_url("gv_scale_test") as url:
        db = Database(url)
        db.upgrade()
        try:
            yield db
        finally:
            db.dispose()


def seeded(db: Database, collectors: int, meters: int = 4) -> list[seed.Collector]:
    park = seed.plan(collectors, 2, meters)
    seed.seed(db, park)
    return park


def load_worker(
    name: str, park: list[seed.Collector], url: str, ack_timeout_s: float
) -> procs.LoadWorker:
    """A load process of virtual collectors for ``park`` on the broker at ``url``, reporting
    every second, every one connected."""
    specs = [
        {"site": c.site, "gateway": c.gateway, "key_hex": c.key_hex, "meters": c.meters}
        for c in park
    ]
    options = {"urls": [url], "report_s": 1.0, "ack_timeout_s": ack_timeout_s}
    worker = procs.LoadWorker(name, specs, options)
    procs.wait_until(
        lambda: (r := worker.call("ready"))["connected"] == r["wires"], 60, "collectors online"
    )
    return worker
