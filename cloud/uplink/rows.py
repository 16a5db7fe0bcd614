"""Writing an ingest batch's reading rows: one ``COPY … FROM STDIN`` on PostgreSQL (measured by
``gridvend bench scale``'s anchor at about 2.3× a multi-row INSERT of the same rows), one
multi-row INSERT elsewhere. Either runs on the session's connection, inside its transaction:
the rows commit, or roll back, with everything else the batch did.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from cloud.models import Reading
from cloud.models.base import table_of

_TABLE = table_of(Reading)
# The columns a reading row carries (every column but the serial id), in table order.
COLUMNS = [c.name for c in _TABLE.columns if c.name != "id"]
_JSON = {c.name for c in _TABLE.columns if c.type.__class__.__name__ == "JSON"}
_JSON_AT = [i for i, name in enumerate(COLUMNS) if name in _JSON]
_COPY = f"COPY {_TABLE.name} ({', '.join(COLUMNS)}) FROM STDIN"


def insert_readings(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts of :data:`COLUMNS`; a missing one is NULL) in the session's
    transaction."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        conn.execute(insert(Reading), rows)
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(_COPY) as copy:
        for row in rows:
            values = [row.get(name) for name in COLUMNS]
            for i in _JSON_AT:
                if values[i] is not None:
                    values[i] = json.dumps(values[i], separators=(",", ":"))
            copy.write_row(values)
