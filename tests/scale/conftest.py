"""Fixtures of the scale tests: a fresh PostgreSQL database per test (several bridges share one;
that is the point), a park of collectors seeded the way the scale benchmark seeds it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.scale import seed
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
