"""``gridvend cloud backup`` / ``restore``: a consistent copy of the cloud database, and putting
one back.

* SQLite: the online backup API (``sqlite3.Connection.backup``), page by page inside one read
  transaction, so the copy is consistent while the web app and the bridge keep writing (a file
  copy of a WAL database is not). The backup is itself a SQLite file.
* PostgreSQL: ``pg_dump --format=custom`` (the Debian ``postgresql-client`` package), restored
  with ``pg_restore --clean --if-exists --no-owner --single-transaction``: all or nothing.

Beside every backup a manifest ``<file>.json`` records the kind, the schema revision, the row
count of every table and the file's SHA-256; ``restore`` refuses a file whose digest differs or
whose kind is not the target's, then upgrades the restored schema to this release's head
(restoring last month's backup after an upgrade is the normal case) and checks the row counts.
Restoring over a database that has tables needs ``force``; the services must be stopped first
(for SQLite this is checked: a database another process writes to is refused).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from cloud.db import Database, current_revision
from cloud.errors import ServiceError


class BackupError(ServiceError):
    """The backup or restore cannot be done; the message says why and what to do."""

    status = 409
    code = "backup_failed"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _libpq_url(url: str) -> str:
    """The SQLAlchemy URL as pg_dump/pg_restore take it (no ``+driver``)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed; install postgresql-client (make sysdeps)")
    return path


def row_counts(database: Database) -> dict[str, int]:
    """Rows per table (the alembic version table excluded)."""
    with database.engine.connect() as conn:
        names = [n for n in inspect(conn).get_table_names() if n != "alembic_version"]
        return {n: int(conn.execute(text(f'SELECT count(*) FROM "{n}"')).scalar_one())
                for n in sorted(names)}  # fmt: skip


def _sqlite_path(database: Database) -> Path:
    name = make_url(database.url).database
    if not name or name == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(name)


def backup(database: Database, out: Path) -> dict[str, Any]:
    """Write a backup of ``database`` to ``out`` and its manifest beside it; returns the
    manifest."""
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} exists; choose a new file name (backups are never overwritten)")
    out.parent.mkdir(parents=True, exist_ok=True)
    revision = current_revision(database.engine)
    if revision is None:
        raise BackupError(f"{database.url} has no schema: nothing to back up")
    counts = row_counts(database)
    tmp = out.with_name(f".{out.name}.tmp")
    if database.is_sqlite:
        src = sqlite3.connect(_sqlite_path(database))
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        kind = "sqlite"
    else:
        proc = subprocess.run(
            [_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(tmp),
             _libpq_url(database.url)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise BackupError(f"pg_dump failed: {proc.stderr.strip()}")
        kind = "postgresql"
    os.chmod(tmp, 0o600)  # a backup holds collectors' keys and password hashes
    os.replace(tmp, out)
    manifest = {
        "format": 1,
        "kind": kind,
        "revision": revision,
        "created_ts": int(time.time()),
        "sha256": _sha256(out),
        "bytes": out.stat().st_size,
        "rows": counts,
    }
    Path(f"{out}.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(
            f"{path}.json is missing: a backup is the file and its manifest"
        ) from None
    except ValueError as exc:
        raise BackupError(f"{path}.json is damaged: {exc}") from None
    if _sha256(path) != manifest.get("sha256"):
        raise BackupError(f"{path} does not match its manifest's SHA-256: it is damaged")
    return dict(manifest)


def _has_tables(database: Database) -> bool:
    with database.engine.connect() as conn:
        return bool(inspect(conn).get_table_names())


def _check_not_in_use(database: Database) -> None:
    target = _sqlite_path(database)
    database.dispose()
    if not target.exists():
        return
    conn = sqlite3.connect(target, timeout=0.5)
    try:
        conn.execute("BEGIN EXCLUSIVE")  # fails while a service holds the database
        conn.rollback()
    except sqlite3.OperationalError:
        raise BackupError(
            f"{target} is in use: stop gridvend-web and gridvend-bridge first"
        ) from None
    finally:
        conn.close()


def _restore_sqlite(database: Database, path: Path) -> None:
    target = _sqlite_path(database)
    database.dispose()
    tmp = target.with_name(f".{target.name}.restore")
    shutil.copyfile(path, tmp)
    for stale in (Path(f"{target}-wal"), Path(f"{target}-shm")):
        stale.unlink(missing_ok=True)  # another database's log must never be replayed into it
    os.replace(tmp, target)


def _restore_postgres(database: Database, path: Path) -> None:
    database.dispose()
    proc = subprocess.run(
        [_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
         "--dbname", _libpq_url(database.url), str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BackupError(f"pg_restore failed (nothing was changed): {proc.stderr.strip()}")


def restore(database: Database, path: Path, *, force: bool = False) -> dict[str, Any]:
    """Put the backup ``path`` into ``database`` and upgrade it to this release's schema.
    Returns ``{"from_revision", "revision", "rows"}``; ``BackupError`` if anything is wrong
    (then nothing was changed)."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"no such backup: {path}")
    manifest = _manifest(path)
    kind = "sqlite" if database.is_sqlite else "postgresql"
    if manifest["kind"] != kind:
        raise BackupError(f"{path} is a {manifest['kind']} backup; the target is {kind}")
    if kind == "sqlite":
        _check_not_in_use(database)
    if _has_tables(database) and not force:
        raise BackupError(f"{database.url} already has tables; restore over it with --force")
    if kind == "sqlite":
        _restore_sqlite(database, path)
    else:
        _restore_postgres(database, path)
    database.upgrade()
    counts = row_counts(database)
    lost = {t: (n, counts.get(t, 0)) for t, n in manifest["rows"].items() if counts.get(t, 0) < n}
    if lost:
        raise BackupError(f"the restored database lacks rows: {lost} (table: backup, now)")
    return {
        "from_revision": manifest["revision"],
        "revision": current_revision(database.engine),
        "rows": counts,
    }
