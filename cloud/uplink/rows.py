"""Writing an ingest batch's reading rows: one ``COPY … FROM STDIN`` on PostgreSQL (measured by
``gridvend bench scale``'s anchor at about 2.3× a multi-row INSERT of the same rows), one
multi-row INSERT elsewhere. Either runs on the session's connection, inside its transaction:
the rows commit, or roll back, with everything else the batch did.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from cloud.models import Reading
from cloud.models.base import table_of
from shared.codec import readings

_TABLE = table_of(Reading)
# The columns a reading row carries (every column but the serial id), in table order.
COLUMNS = [c.name for c in _TABLE.columns if c.name != "id"]
_JSON = {c.name for c in _TABLE.columns if c.type.__class__.__name__ == "JSON"}
_JSON_AT = [i for i, name in enumerate(COLUMNS) if name in _JSON]
_COPY = f"COPY {_TABLE.name} ({', '.join(COLUMNS)}) FROM STDIN"
# A row is built from the message's stored fields (shared/codec/readings.py) and the four the
# batch knows; any other column stays NULL.
_FIELDS = [name if name in readings.STORED else "" for name in COLUMNS]
_GATEWAY, _READING, _METER, _RECEIVED = (
    COLUMNS.index(name) for name in ("gateway_id", "reading_id", "meter_id", "received_ts")
)
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"))
# Compact JSON, as the ingest writes it (its rows' JSON columns, its JSON parameters).
encode_json = _JSON_ENCODER.encode


def _encoder() -> Callable[[Any], str]:
    """``encode_json`` for one batch's values, made once: ``JSONEncoder.encode`` builds CPython's C
    encoder anew at every call, most of what a three-element list costs (1.1 -> 0.45 µs);
    the same encoder and arguments, so the same text. ``encode_json`` where there is no C one."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encode_json
    e = _JSON_ENCODER
    chunks = make(
        {},  # the markers of circular references (check_circular), as encode() makes
        e.default,
        json.encoder.encode_basestring_ascii,
        e.indent,
        e.key_separator,
        e.item_separator,
        e.sort_keys,
        e.skipkeys,
        e.allow_nan,
    )
    join = "".join
    return lambda value: join(chunks(value, 0))


def reading_row(msg: dict[str, Any], gateway_id: str, meter_id: str, received_ts: int) -> list[Any]:
    """The row of one validated ``reading`` message, its values in :data:`COLUMNS` order."""
    get = msg.get
    row = [get(name) if name else None for name in _FIELDS]
    row[_GATEWAY] = gateway_id
    row[_READING] = msg["id"]
    row[_METER] = meter_id
    row[_RECEIVED] = received_ts
    return row


def insert_readings(session: Session, rows: list[list[Any]]) -> None:
    """Insert ``rows`` (from :func:`reading_row`) in the session's transaction."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        conn.execute(insert(Reading), [dict(zip(COLUMNS, row, strict=True)) for row in rows])
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    encode = _encoder()
    with raw.cursor() as cur, cur.copy(_COPY) as copy:
        for row in rows:
            for i in _JSON_AT:
                if row[i] is not None:
                    row[i] = encode(row[i])
            copy.write_row(row)
