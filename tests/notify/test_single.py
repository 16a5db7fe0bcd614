"""One notifier per database (``cloud.notify.single``), in one process on both databases: a
second holder is refused at once and told what holds the lock; the lock is free again after the
block; the lock is per database. The processes themselves (a second ``gridvend cloud notify``,
kill -9) are in test_notifier.py."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from cloud.db import Database
from cloud.notify import single
from cloud.notify.errors import AlreadyRunning


def test_a_second_holder_is_refused_at_once_naming_the_lock_and_the_lock_is_free_after(
    db: Database,
) -> None:
    other = Database(db.url)  # another process's engine: its own connections
    try:
        with single.hold(db):
            t0 = time.monotonic()
            with pytest.raises(AlreadyRunning) as refused, single.hold(other):
                pass
            assert time.monotonic() - t0 < 10  # refused, not waited for (that would be forever)
        message = str(refused.value)
        assert message.startswith("another notifier is running on this database (")
        assert message.endswith("); stop it first")
        me = f"pid {os.getpid()} on {socket.gethostname()}"
        if db.is_sqlite:
            lock_file = f"{db.url.removeprefix('sqlite:///')}.notify.lock"
            assert f"(lock file {lock_file}, held by {me})" in message
        else:
            lock = "PostgreSQL advisory lock gridvend-notifier"
            assert f"({lock}, held by gridvend-notifier {me} (server pid " in message
        with single.hold(other):  # released when the first block ended
            pass
        with single.hold(db):
            pass
    finally:
        other.dispose()


def test_the_sqlite_lock_is_per_database_file(sqlite_template: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    shutil.copyfile(sqlite_template, a)
    shutil.copyfile(sqlite_template, b)
    db_a, db_b = Database(f"sqlite:///{a}"), Database(f"sqlite:///{b}")
    try:
        with single.hold(db_a), single.hold(db_b):
            assert (tmp_path / "a.db.notify.lock").read_text().startswith("pid ")
    finally:
        db_a.dispose()
        db_b.dispose()
