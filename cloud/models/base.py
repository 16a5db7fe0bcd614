"""The declarative base, the constraint naming convention Alembic relies on, and column helpers.

Conventions for every table: money is ``BigInteger`` micro-yuan, energy ``BigInteger`` Wh, and
times are UTC epoch seconds in ``BigInteger`` columns named ``*_ts`` (as on the wire, see
docs/architecture.md "Money, energy, time"), so no time zone ever hides in a column and both
SQLite and PostgreSQL compare them the same way.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Integer, MetaData, Table
from sqlalchemy.orm import DeclarativeBase, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A 64-bit autoincrementing key: BIGINT on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY"
# autoincrements (it is 64-bit there anyway).
BigId = BigInteger().with_variant(Integer(), "sqlite")


def now_ts() -> int:
    """The current time, UTC epoch seconds."""
    return int(time.time())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        int: BigId,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class, for hot paths that run Core statements built once
    (``__table__`` is typed as any ``FromClause``; a declarative class always has a Table)."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


def money(**kw: Any) -> Any:
    """A non-null micro-yuan column defaulting to 0."""
    return mapped_column(BigInteger, nullable=False, default=0, server_default="0", **kw)
