"""Databases for the end-to-end tests: a fresh SQLite file, or a fresh PostgreSQL database on
127.0.0.1:5432 (user postgres, trust) created with a unique name and dropped afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def postgres_url(prefix: str = "gv_e2e") -> Iterator[str]:
    """A new, empty PostgreSQL database's SQLAlchemy URL; dropped on exit."""

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def database_url(kind: str, folder: Path) -> Iterator[str]:
    """``kind`` is ``sqlite`` or ``postgres``."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'cloud.db'}"
    else:
        with postgres_url() as url:
            yield url
