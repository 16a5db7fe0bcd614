"""Upgrading from the previous release: a cloud database and a collector store made by that
release's own code (``tests/deploy/make_previous_release.py``: cloud schema ``0001``, edge store
migrations 1-2, dumped as SQL) are migrated by this release with nothing lost: every row and
every value the old release wrote is still there, the ledger identity holds on every meter, the
old operator, API token and collector keys still work, and new work (a sale) goes through.

PostgreSQL gets the same rows: the schema made by migration 0001 on a fresh database, the
fixture's rows copied in, then the upgrade."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, MetaData, create_engine, select, text

from cloud.access import auth
from cloud.audit import Actor
from cloud.db import Database, current_revision, head_revisions
from cloud.models import Gateway, Meter, Sale
from cloud.money import ledger, sales
from cloud.web import create_app
from edge.cache.schema import LATEST
from edge.cache.store import Store
from tests.e2e.dbs import postgres_url

FIXTURES = Path(__file__).parent / "fixtures"
OLD_TOKEN = "prev-release-token-0123"
# Values a migration changes on purpose, with the migration that says why; every other value the
# old release wrote must come out unchanged.
CHANGED = {
    # 0004_input_limits: a site without a cap had none only because there was no default.
    ("site_defaults", "hoarding_cap_micro_yuan"): (None, 30_000 * 1_000_000),
}


def load_sql(dump: Path, path: Path) -> Path:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(dump.read_text(encoding="utf-8"))
    finally:
        conn.close()
    return path


def rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table the old release made, as plain values, keyed by table."""
    engine = create_engine(url)
    meta = MetaData()
    try:
        meta.reflect(engine)
        out = {}
        with engine.connect() as conn:
            for name, table in meta.tables.items():
                if name == "alembic_version":
                    continue
                key = list(table.primary_key.columns) or list(table.columns)
                out[name] = [dict(r._mapping) for r in conn.execute(select(table).order_by(*key))]
        return out
    finally:
        engine.dispose()


def _normal(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def copy_rows(sqlite_url: str, pg_url: str) -> None:
    """The fixture's rows into a PostgreSQL database at 0001 (types as PostgreSQL has them)."""
    src, dst = create_engine(sqlite_url), create_engine(pg_url)
    meta = MetaData()
    try:
        meta.reflect(dst)
        with src.connect() as s_conn, dst.begin() as d_conn:
            for table in meta.sorted_tables:
                if table.name == "alembic_version":
                    continue
                data = [
                    dict(r._mapping) for r in s_conn.execute(text(f'SELECT * FROM "{table.name}"'))
                ]
                for row in data:
                    for col in table.columns:
                        value = row.get(col.name)
                        if value is not None and isinstance(col.type, Boolean):
                            row[col.name] = bool(value)
                        elif isinstance(value, str) and isinstance(col.type, JSON):
                            row[col.name] = json.loads(value)
                if data:
                    d_conn.execute(table.insert(), data)
                if "id" in table.columns and data and table.columns["id"].autoincrement:
                    d_conn.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
                        f"(SELECT max(id) FROM \"{table.name}\"))"))  # fmt: skip
    finally:
        src.dispose()
        dst.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_cloud(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict]]:
    sqlite_url = f"sqlite:///{load_sql(FIXTURES / 'previous_cloud.sql', tmp_path / 'old.db')}"
    before = rows(sqlite_url)
    if request.param == "sqlite":
        yield sqlite_url, before
        return
    with postgres_url("gv_upgrade") as pg:
        db = Database(pg)
        db.upgrade("0001")
        db.dispose()
        copy_rows(sqlite_url, pg)
        yield pg, before


def test_the_previous_releases_cloud_database_upgrades_with_nothing_lost(
    old_cloud: tuple[str, dict[str, list[dict[str, Any]]]],
) -> None:
    url, before = old_cloud
    db = Database(url)
    try:
        assert current_revision(db.engine) == "0001"
        db.upgrade()
        assert [current_revision(db.engine)] == head_revisions()
        after = rows(url)
        for table, old_rows in before.items():
            assert len(after[table]) == len(old_rows), table
            for old, new in zip(old_rows, after[table], strict=True):
                for column, value in old.items():  # every old value as it was (new columns aside)
                    want = _normal(value)
                    if (table, column) in CHANGED and value == CHANGED[table, column][0]:
                        want = CHANGED[table, column][1]
                    assert _normal(new[column]) == want, (table, column, old)
        assert sum(len(v) for v in before.values()) > 150  # the fixture is not empty
        with db.session() as s:
            for meter in s.scalars(select(Meter)):
                assert meter.balance_micro_yuan == (
                    meter.credits_micro_yuan - meter.refunds_micro_yuan - meter.charges_micro_yuan
                ), meter.id
                ledger.verify(s, meter.id)  # the mirror still equals its records
            gw = s.get(Gateway, "gw-1")
            assert gw is not None
            assert gw.key_hex == "11" * 32
            auth.check_password(s, "office", "previous-release-pw")
            sale, created = sales.sell(s, "m-101", 20_000_000, "cash", Actor("upgrade-test"),
                                       idempotency_key="after-upgrade-1")  # fmt: skip
            assert created
            assert sale.status == "pending"
            assert sale.purchase_no == 1 + max(
                x.purchase_no
                for x in s.scalars(select(Sale).where(Sale.meter_id == "m-101"))
                if x.id != sale.id
            )
        client = create_app({"TESTING": True, "DATABASE": db}).test_client()
        answer = client.get("/api/v1/meters/m-101",
                            headers={"Authorization": f"Bearer {OLD_TOKEN}"})  # fmt: skip
        assert answer.status_code == 200, answer.get_data(as_text=True)
        old_meter = next(m for m in before["meters"] if m["id"] == "m-101")
        assert answer.get_json()["credits_micro_yuan"] == old_meter["credits_micro_yuan"]
    finally:
        db.dispose()


def _store_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall()
                for n in names if not n.startswith("sqlite_")}  # fmt: skip
    finally:
        conn.close()


@pytest.mark.parametrize("version", [2, 1])
def test_the_previous_releases_edge_store_opens_migrated_with_nothing_lost(
    tmp_path: Path, version: int
) -> None:
    path = load_sql(FIXTURES / "previous_edge.sql", tmp_path / "gw-1.sqlite")
    if version == 1:  # a store the first agent made, before the inbox kept its result id
        conn = sqlite3.connect(path)
        conn.execute("ALTER TABLE inbox DROP COLUMN result_id")
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
        conn.close()
    before = _store_rows(path)
    store = Store(path)
    try:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
        meters = store.meters()
        assert sorted(meters) == ["m-101", "m-102", "m-103"]
        for i, meter in enumerate(("m-101", "m-102", "m-103"), start=1):
            totals = store.ledger_totals(meter)
            state = meters[meter]["state"]
            assert totals["credits_micro_yuan"] == 30_000_000 * i
            assert totals["charges_micro_yuan"] == 5_000_000 * i
            assert state["balance_micro_yuan"] == (
                totals["credits_micro_yuan"] - totals["refunds_micro_yuan"]
                - totals["charges_micro_yuan"]
            )  # fmt: skip
        ((seq, sealed, _),) = store.outbox.inflight()
        assert sealed == before["inflight"][0][1]  # resent byte for byte after the upgrade
        assert store.inbox.get("c-1") is not None
        assert 3 in store.inbox.held("m-102")
        assert store.tariffs.all() == {"flat": [{"version": 1, "effective_from": 0,
                                             "price_micro_yuan_per_kwh": 1_000_000}]}  # fmt: skip
        after = _store_rows(path)
        for table, old in before.items():  # every row and value (new columns aside)
            assert [r[: len(old[0])] if old else r for r in after[table]] == old, table
        assert store.next_seq() > seq  # a new number, never one the old agent used
    finally:
        store.close()
