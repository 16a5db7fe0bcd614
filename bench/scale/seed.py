"""The bench's park in the cloud database: many sites, thousands of collectors with 32 meters
each, seeded in seconds rather than through one ORM call per meter.

One collector and its meters are made through ``cloud.park.inventory`` (so every column has
the value the real code gives it); the others are copies of those rows with their own ids and
keys, inserted in bulk. The template is removed afterwards.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from cloud.db import Database
from cloud.models import Bus, Gateway, Meter, PurchaseSequence
from cloud.park import inventory

TEMPLATE = "tmpl-gw"
CHUNK = 5_000


@dataclass
class Collector:
    """A collector the bench seeded: the load process builds a virtual collector from it."""

    site: str
    gateway: str
    key_hex: str
    meters: list[str]


def meter_id(gateway: str, index: int) -> str:
    return f"{gateway}-m{index:02d}"


def plan(collectors: int, sites: int, meters: int) -> list[Collector]:
    """Names and keys: collector ``i`` belongs to site ``i % sites``."""
    out = []
    for i in range(collectors):
        gw = f"c{i:05d}"
        out.append(
            Collector(
                f"scale-{i % sites:02d}",
                gw,
                secrets.token_bytes(32).hex(),
                [meter_id(gw, m) for m in range(meters)],
            )
        )
    return out


def _rows(session: Session, model: Any, where: Any) -> list[dict[str, Any]]:
    table = model.__table__
    return [dict(r._mapping) for r in session.execute(select(table).where(where))]


def seed(db: Database, park: list[Collector]) -> None:
    """Insert every site, collector, bus, meter and purchase sequence of ``park``."""
    meters = len(park[0].meters) if park else 0
    with db.session() as s:
        for site in sorted({c.site for c in park}):
            inventory.upsert_site(s, site, f"Bench park {site}")
        inventory.upsert_gateway(s, TEMPLATE, park[0].site, secrets.token_bytes(32).hex())
        for m in range(meters):
            inventory.upsert_meter(s, meter_id(TEMPLATE, m), TEMPLATE, "bus1", str(m + 1), "acrel")
    with db.session() as s:
        gw_row = _rows(s, Gateway, Gateway.id == TEMPLATE)[0]
        bus_row = _rows(s, Bus, Bus.gateway_id == TEMPLATE)[0]
        meter_rows = sorted(_rows(s, Meter, Meter.gateway_id == TEMPLATE), key=lambda r: r["id"])
        seq_row = _rows(s, PurchaseSequence, PurchaseSequence.meter_id == meter_id(TEMPLATE, 0))[0]
        next_bus = int(s.scalar(select(func.max(Bus.id))) or 0) + 1
    gateways, buses, meter_out, seqs = [], [], [], []
    for n, c in enumerate(park):
        bus_id = next_bus + n
        gateways.append(
            {
                **gw_row,
                "id": c.gateway,
                "site_id": c.site,
                "key_hex": c.key_hex,
                "mqtt_username": c.gateway,
            }
        )
        buses.append({**bus_row, "id": bus_id, "gateway_id": c.gateway})
        for mid, row in zip(c.meters, meter_rows, strict=True):
            meter_out.append({**row, "id": mid, "gateway_id": c.gateway, "bus_id": bus_id})
            seqs.append({**seq_row, "meter_id": mid})
    with db.session() as s:
        for model, rows in (
            (Gateway, gateways),
            (Bus, buses),
            (Meter, meter_out),
            (PurchaseSequence, seqs),
        ):
            for i in range(0, len(rows), CHUNK):
                s.execute(insert(model), rows[i : i + CHUNK])
        s.execute(delete(PurchaseSequence).where(PurchaseSequence.meter_id.like(f"{TEMPLATE}-%")))
        s.execute(delete(Meter).where(Meter.gateway_id == TEMPLATE))
        s.execute(delete(Bus).where(Bus.gateway_id == TEMPLATE))
        s.execute(delete(Gateway).where(Gateway.id == TEMPLATE))
        if not db.is_sqlite:
            s.execute(
                text("SELECT setval(pg_get_serial_sequence('buses', 'id'), max(id)) FROM buses")
            )
    if not db.is_sqlite:
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("gateways", "buses", "meters", "purchase_sequences"):
                conn.execute(text(f"ANALYZE {table}"))
