"""The anchor of the scale benchmark: how fast PostgreSQL itself takes the bridge's reading rows.

The same rows the bridge writes (``cloud.uplink.ingest``'s reading rows, for the bench's real
meters), into a scratch copy of the ``readings`` table with the same indexes and the same foreign
key to ``meters``, measured two ways in the same run as the bridges:

- ``multirow``: ``INSERT … VALUES`` many rows per statement (SQLAlchemy Core executemany, which
  psycopg 3 sends as pipelined statements), one transaction per 3,200 rows (100 envelopes of 32);
- ``copy``: ``COPY … FROM STDIN`` of the same batches, one transaction each.

The faster of the two is the raw rate the bridges' ingest is compared with.
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
from sqlalchemy import Column, MetaData, Table, insert, text

from cloud.db import Database
from cloud.models import Reading

SCRATCH = "bench_raw_readings"
COLUMNS = [
    "gateway_id",
    "reading_id",
    "meter_id",
    "ts",
    "energy_wh",
    "power_w",
    "relay",
    "band_energy_wh",
    "voltages_dv",
    "currents_ma",
    "charge_micro_yuan",
    "balance_micro_yuan",
    "credits_micro_yuan",
    "refunds_micro_yuan",
    "charges_micro_yuan",
    "received_ts",
]


def rows(gateways: list[tuple[str, list[str]]], count: int, first_id: int) -> list[dict[str, Any]]:
    """``count`` reading rows as the bridge builds them, round-robin over the collectors."""
    out: list[dict[str, Any]] = []
    now = int(time.time())
    per = max(1, count // max(1, len(gateways)))
    for gw, meters in gateways:
        for i in range(per):
            meter = meters[i % len(meters)]
            energy = 1_000_000 + i * 25
            out.append(
                {
                    "gateway_id": gw,
                    "reading_id": first_id + i,
                    "meter_id": meter,
                    "ts": now + i,
                    "energy_wh": energy,
                    "power_w": 3000,
                    "relay": "closed",
                    "band_energy_wh": {
                        "sharp": 0,
                        "peak": energy // 3,
                        "flat": energy // 3,
                        "valley": energy - 2 * (energy // 3),
                    },
                    "voltages_dv": [2201, 2198, 2203],
                    "currents_ma": [4540, 4510, 4560],
                    "charge_micro_yuan": 25_000,
                    "balance_micro_yuan": -25_000 * (i + 1),
                    "credits_micro_yuan": 0,
                    "refunds_micro_yuan": 0,
                    "charges_micro_yuan": 25_000 * (i + 1),
                    "received_ts": now,
                }
            )
            if len(out) >= count:
                return out
    return out


def _scratch(db: Database) -> Table:
    with db.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {SCRATCH}"))
        conn.execute(text(f"CREATE TABLE {SCRATCH} (LIKE readings INCLUDING ALL)"))
        # Its own id sequence (LIKE copies the default, nextval of readings' own): else the
        # anchor's rows use up readings ids, and the capacity runs count committed readings
        # by that sequence.
        conn.execute(text(f"CREATE SEQUENCE {SCRATCH}_id_seq OWNED BY {SCRATCH}.id"))
        conn.execute(
            text(f"ALTER TABLE {SCRATCH} ALTER COLUMN id SET DEFAULT nextval('{SCRATCH}_id_seq')")
        )
        conn.execute(
            text(f"ALTER TABLE {SCRATCH} ADD FOREIGN KEY (meter_id) REFERENCES meters (id)")
        )
    columns = [Column(c.name, c.type) for c in Reading.__table__.columns if c.name != "id"]
    return Table(SCRATCH, MetaData(), *columns)


def _truncate(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {SCRATCH}"))


def multirow(db: Database, table: Table, batch: list[list[dict[str, Any]]]) -> float:
    """Rows per second with multi-row INSERTs, one transaction per batch."""
    start = time.perf_counter()
    for chunk in batch:
        with db.engine.begin() as conn:
            conn.execute(insert(table), chunk)
    return sum(len(c) for c in batch) / (time.perf_counter() - start)


def copy(url: str, batch: list[list[dict[str, Any]]]) -> float:
    """Rows per second with COPY FROM STDIN, one transaction per batch."""
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    json_columns = {"band_energy_wh", "voltages_dv", "currents_ma"}
    with psycopg.connect(plain) as conn:
        start = time.perf_counter()
        for chunk in batch:
            with conn.transaction(), conn.cursor() as cur:
                sql = f"COPY {SCRATCH} ({', '.join(COLUMNS)}) FROM STDIN"
                with cur.copy(sql) as out:
                    for row in chunk:
                        out.write_row(
                            [json.dumps(row[c]) if c in json_columns else row[c] for c in COLUMNS]
                        )
        return sum(len(c) for c in batch) / (time.perf_counter() - start)


def measure(
    db: Database, url: str, sample: list[dict[str, Any]], per_tx: int = 3200
) -> dict[str, float]:
    """Both methods on the same rows (the scratch table emptied between them); dropped after."""
    table = _scratch(db)
    batch = [sample[i : i + per_tx] for i in range(0, len(sample), per_tx)]
    try:
        out = {"multirow": multirow(db, table, batch)}
        _truncate(db)
        out["copy"] = copy(url, batch)
    finally:
        with db.engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {SCRATCH}"))
    return out
