"""One notifier per database, held by the database itself so it holds across machines.

Why: at start the notifier puts every message left ``sending`` back to be sent
(``outbox.recover``, after a kill -9). A second notifier on the same database would "recover"
the first one's messages in flight and the tenant would get the text twice. So
``gridvend cloud notify`` takes this lock before anything else (before ``recover``, before a
channel opens the modem's port) and keeps it for its whole life:

- PostgreSQL: a session-level ``pg_try_advisory_lock(PG_LOCK_KEY)`` on a connection of its own
  (autocommit: no transaction stays open). Advisory locks are per database, so two installations
  on one server do not clash. The server drops the lock with the session, so a process killed
  with kill -9 never leaves it stale. In ``pg_locks`` it shows as ``locktype = 'advisory'``,
  ``classid``/``objid`` = the key's high/low 32 bits, ``objsubid = 1``; the holder's
  ``application_name`` says which host and process it is.
- SQLite (one machine by nature): an exclusive ``flock`` on ``<database file>.notify.lock``
  (the holder writes its pid and host into it); the kernel drops it with the process. An
  in-memory database cannot be shared by two processes, so it needs no lock.

A second notifier gets ``AlreadyRunning`` at once (never waits), naming the lock and its holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from cloud.db import Database
from cloud.notify.errors import AlreadyRunning

LOCK_NAME = "gridvend-notifier"
# The first 8 bytes of SHA-256("gridvend-notifier") as a signed bigint: -132574257339909585.
PG_LOCK_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
LOCK_SUFFIX = ".notify.lock"


def _me() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _refused(lock: str, holder: str) -> AlreadyRunning:
    held_by = f", held by {holder}" if holder else ""
    return AlreadyRunning(
        f"another notifier is running on this database ({lock}{held_by}); stop it first"
    )


@contextlib.contextmanager
def hold(db: Database) -> Iterator[None]:
    """Hold the notifier's lock on ``db`` for the block; ``AlreadyRunning`` if another has it."""
    if db.is_sqlite:
        name = make_url(db.url).database
        if not name or name == ":memory:":
            yield
            return
        path = Path(name).resolve()
        with _file_lock(path.with_name(path.name + LOCK_SUFFIX)):
            yield
    else:
        with _advisory_lock(db):
            yield


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise AlreadyRunning(
            f"cannot open the notifier's lock file {path} ({exc.strerror}); check the folder's "
            "permissions"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            raise _refused(f"lock file {path}", holder) from None
        # Who holds it, for the next one's message. The file itself stays: removing it would
        # let a third process lock a new file while the second still holds the old one.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{_me()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def _advisory_lock(db: Database) -> Iterator[None]:
    conn = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        conn.execute(text("SELECT set_config('application_name', :n, false)"),
                     {"n": f"{LOCK_NAME} {_me()}"[:63]})  # fmt: skip
        if not conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": PG_LOCK_KEY}):
            raise _refused(f"PostgreSQL advisory lock {LOCK_NAME}", _pg_holder(conn))
        yield
    finally:
        # Closed for good, not handed back to the pool: a pooled session would keep the lock.
        conn.invalidate()
        conn.close()


def _pg_holder(conn: Connection) -> str:
    """The session holding the lock, as far as this role may see it ('' if not at all)."""
    row = conn.execute(
        text(
            "SELECT a.pid, a.application_name, host(a.client_addr) FROM pg_locks l "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = CAST(:hi AS oid) AND l.objid = CAST(:lo AS oid)"
        ),
        {"hi": (PG_LOCK_KEY >> 32) & 0xFFFFFFFF, "lo": PG_LOCK_KEY & 0xFFFFFFFF},
    ).first()
    if row is None:
        return ""
    pid, app, addr = row
    who = f"{app or 'a session'} (server pid {pid}"
    return f"{who}, from {addr})" if addr else f"{who})"
