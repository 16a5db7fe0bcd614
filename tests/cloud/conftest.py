"""Fixtures of the cloud tests: a migrated database on SQLite and on PostgreSQL (every test that
takes ``db`` runs on both), a seeded park, a fake edge that answers commands, the Flask app.

PostgreSQL: one database per test session, uniquely named, created on 127.0.0.1:5432 as user
postgres, migrated once, emptied (TRUNCATE) before each test and dropped at the end. SQLite: a
migrated template file copied per test. If PostgreSQL is unreachable the postgres half of the
suite errors (it is never skipped)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from cloud.access import auth
from cloud.audit import Actor
from cloud.db import Database
from cloud.models import Base, Operator, Role
from cloud.web import create_app
from tests.cloud.support import Park, seed_park

PG_ADMIN_URL = os.environ.get("GRIDVEND_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"gridvend_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
    url = f"{url}/{name}"
    try:
        db = Database(url)
        db.upgrade()
        db.dispose()
        yield url
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cloud-template") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    db.dispose()
    return path


def _truncate_all(db: Database) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "cloud.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    if not database.is_sqlite:
        _truncate_all(database)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def park(db: Database) -> Park:
    """A site with two collectors and six prepaid meters plus one plain meter, one account."""
    with db.session() as s:
        return seed_park(s)


@pytest.fixture
def app(db: Database, park: Park, tmp_path: Path):
    return create_app({"TESTING": True, "DATABASE": db})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def tokens(db: Database) -> dict[str, str]:
    """A bearer token per built-in role: {"admin": "gv_...", "cashier": ..., ...}."""

    out = {}
    with db.session() as s:
        auth.ensure_roles(s)
        roles = {r.name: r.id for r in s.query(Role)}
        for role in auth.ROLES:
            # No usable password (a hash nothing matches): only the token logs in. Saves a
            # deliberately slow scrypt per operator per test.
            s.add(Operator(username=f"{role}-1", password_hash="!", role_id=roles[role]))
            s.flush()
            out[role] = auth.create_token(s, f"{role}-1", Actor("test"))[1]
    return out
