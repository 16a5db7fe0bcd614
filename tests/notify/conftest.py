"""The notify tests that touch the database reuse the cloud's fixtures: a migrated SQLite file
and the PostgreSQL server (every ``db`` test runs on both), the seeded park."""

from tests.cloud.conftest import db, db_url, park, pg_url, sqlite_template  # noqa: F401
