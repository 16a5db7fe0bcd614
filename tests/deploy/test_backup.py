"""`gridvend cloud backup` / `restore` on SQLite and PostgreSQL, and the collector store's
backup and restore: consistent copies, manifests that catch damage, refusals that keep the
target untouched, and a restore of an older backup that ends on this release's schema."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.audit import Actor
from cloud.backup import BackupError, backup, restore, row_counts
from cloud.cli import main as cloud_main
from cloud.db import Database, current_revision, head_revisions
from cloud.models import Sale
from cloud.money import sales
from edge.agent import lock_store
from edge.cache import backup as edge_backup
from edge.cache.store import Store
from edge.cli import main as edge_main
from provisioning.gateway import provision_gateway
from tests.deploy.test_upgrade import FIXTURES, copy_rows, load_sql
from tests.e2e.dbs import postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def cloud_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The previous release's database, upgraded: a park with money on it."""
    sqlite_url = f"sqlite:///{load_sql(FIXTURES / 'previous_cloud.sql', tmp_path / 'c.db')}"
    if request.param == "sqlite":
        db = Database(sqlite_url)
        db.upgrade()
        yield db
        db.dispose()
        return
    with postgres_url("gv_backup") as pg:
        db = Database(pg)
        db.upgrade("0001")
        copy_rows(sqlite_url, pg)
        db.upgrade()
        yield db
        db.dispose()


def _sales(db: Database) -> int:
    with db.session(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(Sale)) or 0)


def test_a_backup_restores_over_later_changes_and_a_damaged_one_is_refused(
    cloud_db: Database, tmp_path: Path
) -> None:
    out = tmp_path / "backups" / "cloud.backup"
    manifest = backup(cloud_db, out)
    assert manifest["rows"]["meters"] == 7
    assert manifest["revision"] == head_revisions()[0]
    with pytest.raises(BackupError, match="never overwritten"):
        backup(cloud_db, out)
    sold = _sales(cloud_db)
    with cloud_db.session() as s:
        sales.sell(s, "m-101", 1_000_000, "cash", Actor("t"), idempotency_key="after-backup")
    assert _sales(cloud_db) == sold + 1
    with pytest.raises(BackupError, match="already has tables"):
        restore(cloud_db, out)
    assert _sales(cloud_db) == sold + 1  # refused: nothing changed
    done = restore(cloud_db, out, force=True)
    assert _sales(cloud_db) == sold
    assert done["rows"] == manifest["rows"]
    assert current_revision(cloud_db.engine) == head_revisions()[0]
    damaged = tmp_path / "damaged.backup"
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    Path(f"{damaged}.json").write_text(Path(f"{out}.json").read_text())
    with pytest.raises(BackupError, match="damaged"):
        restore(cloud_db, damaged, force=True)
    assert row_counts(cloud_db) == manifest["rows"]


def test_an_older_backup_restores_onto_this_releases_schema(tmp_path: Path) -> None:
    """A backup taken before an upgrade (schema 0001) comes back upgraded."""
    old = Database(f"sqlite:///{load_sql(FIXTURES / 'previous_cloud.sql', tmp_path / 'o.db')}")
    manifest = backup(old, tmp_path / "old.backup")
    old.dispose()
    assert manifest["revision"] == "0001"
    fresh = Database(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        done = restore(fresh, tmp_path / "old.backup")
        assert done["from_revision"] == "0001"
        assert [done["revision"]] == head_revisions()
        assert all(done["rows"][t] >= n for t, n in manifest["rows"].items())
    finally:
        fresh.dispose()


def test_sqlite_restore_is_refused_while_a_service_holds_the_database(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{load_sql(FIXTURES / 'previous_cloud.sql', tmp_path / 'c.db')}")
    db.upgrade()
    backup(db, tmp_path / "b.backup")
    holder = sqlite3.connect(tmp_path / "c.db")
    holder.execute("BEGIN IMMEDIATE")  # a writer mid-transaction, as the bridge would be
    try:
        with pytest.raises(BackupError, match="in use: stop gridvend-web and gridvend-bridge"):
            restore(db, tmp_path / "b.backup", force=True)
    finally:
        holder.rollback()
        holder.close()
        db.dispose()


def test_backup_and_restore_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{load_sql(FIXTURES / 'previous_cloud.sql', tmp_path / 'c.db')}"
    assert cloud_main(["init-db", "--database", url]) == 0
    assert cloud_main(["backup", "--database", url, "--out", str(tmp_path / "x.backup")]) == 0
    assert "backup " in capsys.readouterr().out
    target = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert cloud_main(["restore", str(tmp_path / "x.backup"), "--database", target]) == 0
    assert "restored" in capsys.readouterr().out
    assert cloud_main(["restore", str(tmp_path / "x.backup"), "--database", target]) == 1
    assert "already has tables; restore over it with --force" in capsys.readouterr().err


def test_the_edge_store_backs_up_while_in_use_and_restores_without_reusing_a_sequence(
    tmp_path: Path,
) -> None:
    path = load_sql(FIXTURES / "previous_edge.sql", tmp_path / "gw-1.sqlite")
    store = Store(path)  # the running agent's store, open and writing
    seq_before = store.next_seq()
    with store.transaction():
        store.put_kv("written-before-backup", 1)
    manifest = edge_backup.backup_store(path, tmp_path / "gw-1.backup")
    with store.transaction():
        store.put_kv("written-after-backup", 1)
    used = [store.next_seq() for _ in range(1500)]  # the lost store went on sealing
    store.close()
    assert manifest["meters"] == 3
    with pytest.raises(edge_backup.BackupError, match="use --force"):
        edge_backup.restore_store(tmp_path / "gw-1.backup", path)
    lock = lock_store(path)  # an agent runs
    try:
        with pytest.raises(edge_backup.BackupError, match="stop the agent first"):
            edge_backup.restore_store(tmp_path / "gw-1.backup", path, force=True)
    finally:
        os.close(lock)
    edge_backup.restore_store(tmp_path / "gw-1.backup", path, force=True)
    restored = Store(path)
    try:
        assert restored.get_kv("written-before-backup") == 1
        assert restored.get_kv("written-after-backup") is None
        assert restored.next_seq() > max(used) > seq_before  # no nonce is ever used twice
        assert sorted(restored.meters()) == ["m-101", "m-102", "m-103"]
    finally:
        restored.close()
    assert json.loads(Path(f"{tmp_path / 'gw-1.backup'}.json").read_text())["kind"] == "edge-store"


def test_a_collectors_store_backup_restores_onto_that_collector_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backup is one collector's store: its meters' wallets, its in-flight envelopes (sealed
    under its key, for its topic). Restored onto another collector it would put the first
    collector's money on the second's meters, so ``gridvend edge restore`` refuses it and
    leaves the store as it was."""
    bus = [{"name": "b1", "url": "tcp://127.0.0.1:5020", "model": "acrel-ddsy1352"}]
    configs = {}
    for gw in ("gw-1", "gw-2"):
        configs[gw] = provision_gateway(
            "site-1", gw, tmp_path / gw, buses=bus, meters=[{"id": f"{gw}-m", "bus": "b1",
                                                           "address": 1}],
        )["config"]  # fmt: skip
    load_sql(FIXTURES / "previous_edge.sql", tmp_path / "gw-1" / "gw-1.sqlite")
    other = load_sql(FIXTURES / "previous_edge.sql", tmp_path / "gw-2" / "gw-2.sqlite")
    store = Store(other)
    with store.transaction():
        store.put_kv("gw-2's own", 1)
    store.close()
    backup_file = tmp_path / "gw-1.backup"
    assert edge_main(["backup", "--config", str(configs["gw-1"]), "--out", str(backup_file)]) == 0
    assert json.loads(Path(f"{backup_file}.json").read_text())["collector"] == "site-1/gw-1"
    argv = ["restore", "--config", str(configs["gw-2"]), str(backup_file), "--force"]
    assert edge_main(argv) == 2
    assert "gw-1" in capsys.readouterr().err
    store = Store(other)
    assert store.get_kv("gw-2's own") == 1  # untouched
    store.close()
    argv = ["restore", "--config", str(configs["gw-1"]), str(backup_file), "--force"]
    assert edge_main(argv) == 0
