"""The cloud database: where the URL comes from, engines with the right per-dialect settings,
sessions, and schema creation through Alembic.

SQLite is the default (a file in the Flask instance folder); PostgreSQL is chosen with
``GRIDVEND_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/NAME``. No SQL here or in
the services is SQLite-only: the test suite runs on both.

SQLite notes (docs protocols.md §7): money tables need ``synchronous=FULL``; WAL lets the API
read while the bridge writes. pysqlite's own transaction handling is switched off and every
transaction starts with ``BEGIN IMMEDIATE`` so that concurrent writers queue on the busy timeout
instead of failing with SQLITE_BUSY when a read transaction tries to become a write one;
within one process they queue on a lock first (``_WriteGate``). Read-only work asks for a
deferred ``BEGIN`` with ``Database.session(readonly=True)`` and never waits for writers.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

ENV_URL = "GRIDVEND_DATABASE_URL"
SQLITE_FILE = "gridvend.db"
# How long a SQLite writer waits for another writer before giving up (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000


class DatabaseConfigError(ValueError):
    """The database URL is unusable (unknown dialect, missing driver)."""


def resolve_url(url: str | None = None, instance_path: str | os.PathLike[str] | None = None) -> str:
    """The database URL: ``url`` if given, else ``$GRIDVEND_DATABASE_URL``, else a SQLite file
    ``gridvend.db`` in ``instance_path`` (default ``./instance``)."""
    if url:
        return url
    env = os.environ.get(ENV_URL, "").strip()
    if env:
        return env
    folder = Path(instance_path or "instance")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / SQLITE_FILE).resolve()}"


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from pysqlite; the "begin" hook below issues BEGIN itself.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = FULL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


class FairRLock:
    """A re-entrant lock that hands itself to waiters in arrival order (FIFO).

    ``threading.RLock`` is not fair: a thread that releases it, or one that just arrived, can
    take it ahead of threads that have waited for many turns, so under contention some waits
    grow without bound. With a FIFO hand-off a writer waits at most for those queued before it:
    the API's tail latency is then the queue, not luck.
    """

    _HANDOFF = object()

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: Any = None
        self._count = 0
        self._waiters: collections.deque[threading.Lock] = collections.deque()

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._count += 1
                return
            if self._owner is None:
                self._owner, self._count = me, 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # blocks until release() hands the lock to this waiter
        with self._mutex:
            self._owner = me

    def release(self) -> None:
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError("FairRLock released by a thread that does not hold it")
            self._count -= 1
            if self._count:
                return
            if self._waiters:
                # Ownership passes directly, so no newcomer can slip in between.
                self._owner, self._count = self._HANDOFF, 1
                self._waiters.popleft().release()
            else:
                self._owner = None


class _WriteGate:
    """Queues this process's SQLite write transactions on a lock before ``BEGIN IMMEDIATE``.

    SQLite allows one writer; a second one waits in SQLite's busy handler, which sleeps in
    growing steps (up to 100 ms) and wakes late, so under 20 concurrent API requests the tail
    latency explodes. Waiting on a Python lock instead wakes the next writer the moment the
    previous one commits, and a fair one (FIFO) bounds each writer's wait by the queue ahead of
    it. Other processes (the bridge) still meet the busy handler. Re-entrant per thread, so
    nested sessions behave as they would without the gate.
    """

    def __init__(self) -> None:
        self.lock = FairRLock()
        self.local = threading.local()

    def begin(self, conn: Any) -> None:
        if conn.get_execution_options().get("sqlite_begin", "IMMEDIATE") == "DEFERRED":
            conn.exec_driver_sql("BEGIN")
            return
        self.lock.acquire()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        self.local.held = getattr(self.local, "held", 0) + 1
        conn.info["gridvend_gate"] = True

    def end(self, conn: Any) -> None:
        if conn.info.pop("gridvend_gate", False):
            self.local.held -= 1
            self.lock.release()


class Prepared:
    """A Core statement compiled once per dialect (and set of parameters) and run straight on
    the session's DBAPI connection, inside its transaction (as ``cloud.uplink.rows`` runs its
    ``COPY``): for the few hot statements where SQLAlchemy's execution costs more than the
    statement (the sale screen's receipt: its read ~160 us through ``Connection.execute``,
    ~25 us on the cursor, the compiled-cache lookup, the parameters' and the 37 result
    columns' set-up; its insert ~70 us against ~20). Only for statements whose parameters and
    columns need no type processing (integers, strings, NULL, booleans read as their truth).
    ``first`` gives a ``SELECT``'s first row (columns by label) or None, ``scalar`` the first
    column of the first row an ``INSERT … RETURNING`` gives, or None. No SQLAlchemy cursor
    events fire for them."""

    def __init__(self, stmt: Any) -> None:
        self.stmt = stmt
        self._compiled: dict[tuple[str, frozenset[str] | None], Any] = {}
        self._row_type: Any = None

    def _run(self, session: Session, params: dict[str, Any], keys: bool) -> Any:
        conn = session.connection()  # begins the session's transaction if it has not
        cache_key = (conn.dialect.name, frozenset(params) if keys else None)
        compiled = self._compiled.get(cache_key)
        if compiled is None:
            column_keys = sorted(params) if keys else None
            compiled = self.stmt.compile(dialect=conn.dialect, column_keys=column_keys)
            self._compiled[cache_key] = compiled
        values = compiled.construct_params(params)
        args: Any = values
        if compiled.positional:
            args = tuple(values[name] for name in compiled.positiontup)
        raw = conn.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            cursor.execute(compiled.string, args)
            return cursor.fetchone()
        finally:
            cursor.close()

    def first(self, session: Session, **params: Any) -> Any:
        row = self._run(session, params, keys=False)
        if row is None:
            return None
        if self._row_type is None:
            names = [c.key for c in self.stmt.selected_columns]
            self._row_type = collections.namedtuple("Row", names)  # type: ignore[misc]
        return self._row_type(*row)

    def scalar(self, session: Session, params: dict[str, Any]) -> Any:
        row = self._run(session, params, keys=True)
        return None if row is None else row[0]


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with gridvend's per-dialect settings."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise DatabaseConfigError(
                "an in-memory SQLite database cannot be shared by the API and the bridge; "
                "use sqlite:///PATH/TO/FILE.db"
            )
        # A pool of connections (each used by one thread at a time): opening one costs the
        # pragmas below, too much to pay per request.
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        engine = create_engine(url, **kwargs)
        gate = _WriteGate()
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", gate.begin)
        event.listen(engine, "commit", gate.end)
        event.listen(engine, "rollback", gate.end)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", "psycopg2"):
            raise DatabaseConfigError(
                f"PostgreSQL URL {url!r} names driver {parsed.get_driver_name()!r}; "
                "use postgresql+psycopg://user@host:port/name"
            )
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        return create_engine(url, **kwargs)
    raise DatabaseConfigError(
        f"unsupported database {backend!r} in {url!r}: use sqlite:///FILE or "
        "postgresql+psycopg://user@host:port/name"
    )


class Database:
    """One database: an engine and a session factory.

    ``with db.session() as s:`` commits when the block ends normally and rolls back on an
    exception. Services never commit themselves; their caller decides the transaction.
    """

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._ro_factory = sessionmaker(
            bind=self.engine.execution_options(sqlite_begin="DEFERRED"), expire_on_commit=False
        )

    def new_session(self, readonly: bool = False) -> Session:
        """A new session; the caller commits/rolls back and closes it."""
        return (self._ro_factory if readonly else self._factory)()

    @contextlib.contextmanager
    def session(self, readonly: bool = False) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        s = self.new_session(readonly)
        try:
            yield s
            # A block that committed itself and began nothing since has nothing to end.
            if s.in_transaction():
                if readonly:
                    s.rollback()
                else:
                    s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with Alembic (``gridvend cloud init-db``)."""
        upgrade(self.engine, revision)

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config() -> Any:
    """An Alembic ``Config`` pointing at the migrations shipped in the package."""

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` on ``engine``."""

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def head_revisions() -> list[str]:
    """The newest revision(s) of the shipped migrations: exactly one when the chain is whole."""

    return list(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None: never initialised)."""

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
