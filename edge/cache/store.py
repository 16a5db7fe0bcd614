"""The collector's SQLite store: one file, WAL, ``synchronous=FULL``, versioned migrations.

Theory of operation
-------------------
One writer: the agent owns one :class:`Store` and calls it from one thread at a time (its store
thread), so there is no locking here. Readers (``gridvend edge status``) open their own
connection with :func:`open_readonly`; WAL lets them read while the agent writes.

Atomicity is the caller's unit: ``with store.transaction():`` wraps everything one reading (or a
sweep of readings, or one downlink envelope) changes: engine state, ledger rows, history, outbox
rows, inbox rows, the replay window. ``synchronous=FULL`` makes the commit durable before it
returns (WAL with NORMAL may lose the last commits on power loss: protocols.md §7).

Uplink sequence numbers (the envelope nonce) come from :meth:`Store.next_seq`, which reserves
blocks durably *before* handing out any number of the block; after a crash the agent starts at
the next block, so numbers strictly increase across restarts and a nonce is never reused. The
sealed bytes go to ``inflight`` in the same transaction that removes their outbox rows, and are
resent byte for byte until acked; a sequence number is never sealed twice.

The engine state is an opaque JSON dict here; the agent passes the few values ``status`` shows
(balance, display state, relay, mode) as separate arguments.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edge.cache.queues import Inbox, Outbox, Tariffs
from edge.cache.queues import dumps as _dumps
from edge.cache.schema import LATEST, MIGRATIONS
from edge.errors import StoreError

# Work a caller hands to the store thread's open transaction (the downlink's replay window and
# acks, written in the commands' own transaction: edge/sync.py, edge/commands.py).
Persist = Callable[["Store"], None]

# Ledger classification (docs/architecture.md, "Where the truth lives").
CREDIT_KINDS = ("credit", "transfer_in", "settlement_credit")
REFUND_KINDS = ("refund", "reversal", "settlement_refund")
CHARGE_KIND = "charge"
LEDGER_KINDS = (*CREDIT_KINDS, *REFUND_KINDS, CHARGE_KIND)


def _connect(path: str | Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{Path(path).resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """A read-only connection for inspection while the agent runs (WAL) or is stopped."""
    if not Path(path).exists():
        raise StoreError(f"no store at {path}: has the agent run with this config yet?")
    conn = _connect(path, readonly=True)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        raise StoreError(f"{path} is not a gridvend store (schema version 0)")
    if version > LATEST:
        raise StoreError(f"{path} has schema {version}; this gridvend knows up to {LATEST}")
    return conn


class Store:
    """The agent's handle on its store file (see the module docstring)."""

    def __init__(self, path: str | Path, seq_block: int = 1000) -> None:
        if seq_block < 1:
            raise StoreError("seq_block must be at least 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = _connect(self.path, readonly=False)
        mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch to WAL (journal mode {mode})")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self._in_tx = False
        self.outbox = Outbox(self)
        self.inbox = Inbox(self)
        self.tariffs = Tariffs(self)
        self.migrate()
        self._seq_block = seq_block
        reserved = self.get_kv("seq_reserved", 0)
        self._seq_next = int(reserved) + 1
        self._seq_limit = int(reserved)

    # --- plumbing ------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version now in force."""
        version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        if version > LATEST:
            raise StoreError(
                f"{self.path} has schema version {version} but this gridvend knows up to "
                f"{LATEST}: run the newer gridvend, or restore a backup"
            )
        for number, sql in MIGRATIONS:
            if number <= version:
                continue
            # executescript commits first; run the whole migration as one transaction.
            self.conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;"
            )
            version = number
        return version

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """One atomic, durable unit of work (``BEGIN IMMEDIATE`` … ``COMMIT``)."""
        if self._in_tx:
            raise StoreError("transactions do not nest; pass the open one down instead")
        self.conn.execute("BEGIN IMMEDIATE")
        self._in_tx = True
        try:
            yield self
        except BaseException:
            self._in_tx = False
            self.conn.execute("ROLLBACK")
            raise
        self._in_tx = False
        self.conn.execute("COMMIT")

    @property
    def in_transaction(self) -> bool:
        """True inside :meth:`transaction`."""
        return self._in_tx

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()

    # --- kv ------------------------------------------------------------------------------

    def get_kv(self, key: str, default: Any = None) -> Any:
        """A JSON value stored under ``key`` (``default`` if absent)."""
        row = self.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put_kv(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``."""
        self.conn.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, _dumps(value)),
        )

    # --- uplink sequence numbers -----------------------------------------------------------

    def next_seq(self) -> int:
        """The next uplink sequence number; reserves a new block durably when one runs out.

        Called outside a transaction, so the reservation commits on its own before any number
        of the block is used.
        """
        if self._seq_next > self._seq_limit:
            if self._in_tx:
                raise StoreError("reserve sequence numbers outside a transaction")
            limit = self._seq_limit + self._seq_block
            with self.transaction():
                self.put_kv("seq_reserved", limit)
            self._seq_limit = limit
        seq = self._seq_next
        self._seq_next += 1
        return seq

    # --- meters --------------------------------------------------------------------------

    def upsert_meter(
        self, meter: str, bus: str, address: str, model: str, config: dict[str, Any]
    ) -> None:
        """Create or update a meter's configuration (its state and history are kept)."""
        self.conn.execute(
            "INSERT INTO meters (id, bus, address, model, config_json) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET bus = excluded.bus, address = excluded.address, "
            "model = excluded.model, config_json = excluded.config_json",
            (meter, bus, str(address), model, _dumps(config)),
        )

    def meters(self) -> dict[str, dict[str, Any]]:
        """Every meter's row, JSON columns decoded (``state`` is None for a new meter)."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.conn.execute("SELECT * FROM meters ORDER BY id"):
            out[row["id"]] = _meter_row(row)
        return out

    def save_state(
        self,
        meter: str,
        state: dict[str, Any],
        *,
        balance_micro_yuan: int,
        display_state: str,
        relay: str | None,
        mode: str,
        ts: int,
        agent: dict[str, Any] | None = None,
        reading: dict[str, Any] | None = None,
    ) -> None:
        """Persist a meter's engine state with the values ``status`` shows; optionally the
        agent's bookkeeping for the meter and its latest reading (one UPDATE)."""
        sets = [
            "state_json = ?",
            "balance_micro_yuan = ?",
            "display_state = ?",
            "relay = ?",
            "mode = ?",
            "updated_ts = ?",
        ]
        args: list[Any] = [_dumps(state), balance_micro_yuan, display_state, relay, mode, ts]
        if agent is not None:
            sets.append("agent_json = ?")
            args.append(_dumps(agent))
        if reading is not None:
            sets += ["last_reading_json = ?", "last_reading_ts = ?"]
            args += [_dumps(reading), reading["ts"]]
        args.append(meter)
        cur = self.conn.execute(f"UPDATE meters SET {', '.join(sets)} WHERE id = ?", args)
        if cur.rowcount != 1:
            raise StoreError(f"meter {meter!r} is not in the store; upsert it first")

    def mark_reported(self, meter: str, ts: int, charges_micro_yuan: int) -> None:
        """Record what the last uplink ``reading`` carried (the next one's charge starts here)."""
        self.conn.execute(
            "UPDATE meters SET reported_ts = ?, reported_charges = ? WHERE id = ?",
            (ts, charges_micro_yuan, meter),
        )

    # --- history -------------------------------------------------------------------------

    def add_history(
        self,
        meter: str,
        slot: int,
        reading: dict[str, Any],
        balance_micro_yuan: int | None,
        charges_micro_yuan: int | None,
    ) -> None:
        """A history row for ``reading``; ``slot`` (ts // interval) is remembered per meter."""
        self.conn.execute(
            "INSERT OR REPLACE INTO history (meter, ts, energy_wh, power_w, relay, "
            "balance_micro_yuan, charges_micro_yuan, reading_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                meter,
                reading["ts"],
                reading["energy_wh"],
                reading.get("power_w"),
                reading.get("relay"),
                balance_micro_yuan,
                charges_micro_yuan,
                _dumps(reading),
            ),
        )
        self.conn.execute("UPDATE meters SET history_slot = ? WHERE id = ?", (slot, meter))

    def history(self, meter: str, since_ts: int = 0) -> list[dict[str, Any]]:
        """History rows of a meter from ``since_ts``, oldest first."""
        rows = self.conn.execute(
            "SELECT ts, energy_wh, power_w, relay, balance_micro_yuan, charges_micro_yuan "
            "FROM history WHERE meter = ? AND ts >= ? ORDER BY ts",
            (meter, since_ts),
        )
        return [dict(r) for r in rows]

    # --- ledger --------------------------------------------------------------------------

    def add_ledger(
        self,
        meter: str,
        ts: int,
        kind: str,
        amount_micro_yuan: int,
        *,
        energy_wh: int | None = None,
        purchase_no: int | None = None,
        cmd: str | None = None,
    ) -> int:
        """Append a ledger row; returns its id. A credit's purchase number is unique per meter."""
        if kind not in LEDGER_KINDS:
            raise StoreError(f"ledger kind {kind!r} is not one of {LEDGER_KINDS}")
        if isinstance(amount_micro_yuan, bool) or not isinstance(amount_micro_yuan, int):
            raise StoreError(f"ledger amount {amount_micro_yuan!r} is not an integer")
        cur = self.conn.execute(
            "INSERT INTO ledger (meter, ts, kind, amount_micro_yuan, energy_wh, purchase_no, cmd) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (meter, ts, kind, amount_micro_yuan, energy_wh, purchase_no, cmd),
        )
        return int(cur.lastrowid or 0)

    def book_charges(self, meter: str, ts: int, charges_micro_yuan: int, energy_wh: int) -> int:
        """Book consumption up to the running totals as one ``charge`` row (if any is due).

        ``charges_micro_yuan`` / ``energy_wh`` are the meter's running totals; the row carries
        the part not booked yet. Returns the amount booked.
        """
        row = self.conn.execute(
            "SELECT booked_charges, booked_energy_wh FROM meters WHERE id = ?", (meter,)
        ).fetchone()
        if row is None:
            raise StoreError(f"meter {meter!r} is not in the store")
        amount = charges_micro_yuan - row[0]
        energy = energy_wh - row[1]
        if amount == 0 and energy == 0:
            return 0
        self.add_ledger(meter, ts, CHARGE_KIND, amount, energy_wh=energy)
        self.conn.execute(
            "UPDATE meters SET booked_charges = ?, booked_energy_wh = ? WHERE id = ?",
            (charges_micro_yuan, energy_wh, meter),
        )
        return amount

    def ledger(self, meter: str) -> list[dict[str, Any]]:
        """A meter's ledger rows, oldest first."""
        rows = self.conn.execute(
            "SELECT id, ts, kind, amount_micro_yuan, energy_wh, purchase_no, cmd FROM ledger "
            "WHERE meter = ? ORDER BY id",
            (meter,),
        )
        return [dict(r) for r in rows]

    def ledger_totals(self, meter: str) -> dict[str, int]:
        """Σ credits, Σ refunds and Σ booked charges of a meter (rolled-up rows included)."""
        totals = {"credits_micro_yuan": 0, "refunds_micro_yuan": 0, "charges_micro_yuan": 0}
        for kind, amount in self.conn.execute(
            "SELECT kind, SUM(amount_micro_yuan) FROM ledger WHERE meter = ? GROUP BY kind",
            (meter,),
        ):
            if kind in CREDIT_KINDS:
                totals["credits_micro_yuan"] += amount
            elif kind in REFUND_KINDS:
                totals["refunds_micro_yuan"] += amount
            else:
                totals["charges_micro_yuan"] += amount
        rolled = self.conn.execute(
            "SELECT charges_micro_yuan FROM ledger_rollup WHERE meter = ?", (meter,)
        ).fetchone()
        if rolled is not None:
            totals["charges_micro_yuan"] += rolled[0]
        return totals

    # --- retention -----------------------------------------------------------------------

    def prune(
        self, now: int, history_keep_s: int, inbox_keep_s: int, ledger_keep_s: int
    ) -> dict[str, int]:
        """Drop old history, old inbox rows and old charge rows (summed into the rollup).

        Never touches the outbox, in-flight envelopes, held credits, money ledger rows or the
        inbox row of a command whose result is not acked yet.
        """
        counts = {}
        with self.transaction():
            cur = self.conn.execute("DELETE FROM history WHERE ts < ?", (now - history_keep_s,))
            counts["history"] = cur.rowcount
            # A result not acked yet may still make the cloud resend its command: keep its row.
            unacked = self.conn.execute(
                "SELECT MIN(id) FROM (SELECT MIN(id) AS id FROM outbox "
                "UNION ALL SELECT MIN(first_id) FROM inflight)"
            ).fetchone()[0]
            cur = self.conn.execute(
                "DELETE FROM inbox WHERE ts < ? AND status != 'held' "
                "AND (result_id IS NULL OR ? IS NULL OR result_id < ?)",
                (now - inbox_keep_s, unacked, unacked),
            )
            counts["inbox"] = cur.rowcount
            cutoff = now - ledger_keep_s
            self.conn.execute(
                "INSERT INTO ledger_rollup (meter, charges_micro_yuan, energy_wh, rows) "
                "SELECT meter, SUM(amount_micro_yuan), SUM(COALESCE(energy_wh, 0)), COUNT(*) "
                "FROM ledger WHERE kind = 'charge' AND ts < ? GROUP BY meter "
                "ON CONFLICT (meter) DO UPDATE SET "
                "charges_micro_yuan = charges_micro_yuan + excluded.charges_micro_yuan, "
                "energy_wh = energy_wh + excluded.energy_wh, rows = rows + excluded.rows",
                (cutoff,),
            )
            cur = self.conn.execute(
                "DELETE FROM ledger WHERE kind = 'charge' AND ts < ?", (cutoff,)
            )
            counts["ledger_charges"] = cur.rowcount
        return counts


def _meter_row(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["config"] = json.loads(d.pop("config_json") or "{}")
    state = d.pop("state_json")
    d["state"] = json.loads(state) if state else None
    last = d.pop("last_reading_json")
    d["last_reading"] = json.loads(last) if last else None
    d["agent"] = json.loads(d.pop("agent_json") or "{}")
    return d
