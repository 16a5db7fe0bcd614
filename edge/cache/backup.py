"""The collector store's backup (``gridvend edge backup``) and restore (``gridvend edge restore``).

Backup uses SQLite's online backup API: a consistent copy while the agent runs (the agent keeps
writing; the copy is one read transaction of the WAL database). The copy is checked
(``PRAGMA integrity_check``) and a manifest ``<file>.json`` records its schema version and
SHA-256.

Restore is for a collector whose store was lost (a dead SD card). Two facts make it more than a
copy, both handled here:

* Uplink sequence numbers are AES-GCM nonces. The backup's reservation is older than numbers the
  lost store already used: reusing one under the same key would break the cipher, and the cloud
  would refuse it as a replay anyway. The restored store's reservation jumps ``SEQ_JUMP`` ahead.
* Money moved after the backup (credits applied, energy charged) is not in it. The cloud keeps
  its copies (sales, results, readings) and its cross-check raises ``ledger_mismatch`` /
  ``charge_gap`` for the meters that differ, for an operator to settle. Hence ``force``.

The agent must be stopped (its store lock is checked). A backup is one collector's store (its
meters' wallets, envelopes sealed under its key for its topics): the manifest names the collector
(``site/gateway``) and a restore onto another collector is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from edge.agent import StoreLocked, lock_store

SEQ_JUMP = 1 << 32  # far beyond any number a store can have used since its backup


class BackupError(RuntimeError):
    """The store cannot be backed up or restored; the message says why."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def backup_store(store: Path, out: Path, collector: str | None = None) -> dict[str, Any]:
    """Copy ``store`` to ``out`` (never overwritten) with its manifest, which names
    ``collector`` (``site/gateway``) when given; returns the manifest."""
    store, out = Path(store), Path(out)
    if not store.is_file():
        raise BackupError(f"no store at {store}")
    if out.exists():
        raise BackupError(f"{out} exists; choose a new file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    src = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst)
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        version = int(dst.execute("PRAGMA user_version").fetchone()[0])
        meters = int(dst.execute("SELECT count(*) FROM meters").fetchone()[0])
    finally:
        dst.close()
        src.close()
    if check != "ok":
        tmp.unlink(missing_ok=True)
        raise BackupError(f"the copy of {store} fails its integrity check: {check}")
    os.chmod(tmp, 0o600)
    os.replace(tmp, out)
    manifest = {"format": 1, "kind": "edge-store", "user_version": version, "meters": meters,
                "created_ts": int(time.time()), "sha256": _sha256(out)}  # fmt: skip
    if collector is not None:
        manifest["collector"] = collector
    Path(f"{out}.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def restore_store(
    backup: Path, store: Path, *, force: bool = False, collector: str | None = None
) -> dict[str, Any]:
    """Put ``backup`` in place of ``store`` (see the module docstring); the agent is stopped.
    ``collector``: the one restoring (``site/gateway``); a backup naming another is refused."""
    backup, store = Path(backup), Path(store)
    try:
        manifest = json.loads(Path(f"{backup}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{backup}.json (the manifest) cannot be read: {exc}") from None
    if manifest.get("kind") != "edge-store" or _sha256(backup) != manifest.get("sha256"):
        raise BackupError(f"{backup} is not an intact edge store backup (manifest mismatch)")
    made_by = manifest.get("collector")
    if collector is not None and made_by is not None and made_by != collector:
        raise BackupError(
            f"{backup} is the store of collector {made_by}, not of {collector}: its meters' "
            "money and its sealed envelopes are that collector's; restore it there"
        )
    if store.exists() and not force:
        raise BackupError(
            f"{store} exists. Restoring loses what happened since the backup (the cloud's "
            "cross-check will flag those meters); to go on, use --force"
        )
    try:
        lock = lock_store(store)
    except StoreLocked as exc:
        raise BackupError(f"{exc}: stop the agent first") from None
    try:
        tmp = store.with_name(f".{store.name}.restore")
        shutil.copyfile(backup, tmp)
        conn = sqlite3.connect(tmp)
        try:
            row = conn.execute("SELECT value FROM kv WHERE key = 'seq_reserved'").fetchone()
            reserved = int(json.loads(row[0])) if row else 0
            jumped = reserved + SEQ_JUMP
            conn.execute(
                "INSERT INTO kv (key, value) VALUES ('seq_reserved', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (json.dumps(jumped),),
            )
            conn.commit()
        finally:
            conn.close()
        for stale in (Path(f"{store}-wal"), Path(f"{store}-shm")):
            stale.unlink(missing_ok=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, store)
    finally:
        os.close(lock)
    return {"user_version": manifest["user_version"], "seq_reserved": jumped}
