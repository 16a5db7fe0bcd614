"""The report tests' fixture park (``park.build``), built once per test session on a SQLite file
and once on a PostgreSQL database of its own (created on 127.0.0.1:5432 and dropped at the end;
unreachable PostgreSQL errors the postgres half, never skips it). The park is read-only for the
tests: a test that changes something (acknowledging an alarm) undoes nothing and checks only
what it changed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from cloud.db import Database
from tests.reports import park as fixture

PG_ADMIN_URL = os.environ.get("GRIDVEND_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Built:
    db: Database
    archive_dir: Path
    kind: str


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql)


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    folder = tmp_path_factory.mktemp(f"reports-{request.param}")
    name = ""
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'reports.db'}"
    else:
        name = f"gridvend_reports_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        _pg_admin(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
        url = f"{base}/{name}"
    db = Database(url)
    try:
        db.upgrade()
        fixture.build(db, folder / "archive")
        yield Built(db, folder / "archive", request.param)
    finally:
        db.dispose()
        if name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
