"""Alembic environment for the cloud schema.

Run through ``cloud.db.upgrade`` (``gridvend cloud init-db``), which hands over an open
connection in ``config.attributes["connection"]``. Without one, the URL comes from
``cloud.db.resolve_url`` (``$GRIDVEND_DATABASE_URL`` or the instance folder's SQLite file).
SQLite cannot ALTER most things, so migrations are rendered in batch mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from cloud.db import make_engine, resolve_url
from cloud.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=resolve_url(config.get_main_option("sqlalchemy.url")),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(resolve_url(config.get_main_option("sqlalchemy.url")))
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
