"""The store's queues, each an object the store composes over its one connection (so the store
stays one file, one connection and one transaction): :class:`Outbox` (uplink messages and the
sealed envelopes in flight), :class:`Inbox` (the results of applied commands and the credits held
for a missing purchase number) and :class:`Tariffs` (tariff versions the cloud pushed)::

    store.outbox.enqueue(msg, ts) -> id;  store.outbox.batch(max_msgs, max_bytes)
    store.outbox.move_to_inflight(seq, envelope, ids, ts);  store.outbox.inflight()
    store.outbox.ack(seqs) -> messages;  store.outbox.backlog()
    store.inbox.get(cmd_id);  store.inbox.put(cmd_id, meter, op, result, ts, result_id)
    store.inbox.hold(meter, purchase_no, cmd, ts);  store.inbox.held(meter)
    store.inbox.release(meter, purchase_no)
    store.tariffs.put(tariff_id, version);  store.tariffs.all()
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import Any, Protocol

from shared.codec import messages


def dumps(value: Any) -> str:
    """Compact JSON, as stored."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_dumps = dumps


class Connection(Protocol):
    """What a queue needs of the store: its connection and its transaction."""

    conn: sqlite3.Connection

    @property
    def in_transaction(self) -> bool: ...

    def transaction(self) -> contextlib.AbstractContextManager[Any]: ...


class _Queue:
    def __init__(self, db: Connection) -> None:
        self._db = db

    @property
    def conn(self) -> sqlite3.Connection:
        return self._db.conn

    def _own_transaction(self) -> contextlib.AbstractContextManager[Any]:
        """The caller's transaction when one is open, else one of our own."""
        return contextlib.nullcontext() if self._db.in_transaction else self._db.transaction()


class Outbox(_Queue):
    """Uplink messages waiting to be sealed, and sealed envelopes waiting for their ack."""

    def enqueue(self, msg: dict[str, Any], ts: int) -> int:
        """Queue an uplink message; its id (the outbox row id) is added when it is sent."""
        cur = self.conn.execute(
            "INSERT INTO outbox (kind, body, ts) VALUES (?, ?, ?)",
            (msg["t"], messages.encode(msg), ts),
        )
        return int(cur.lastrowid or 0)

    def batch(self, max_msgs: int, max_bytes: int) -> list[tuple[int, str]]:
        """The oldest queued messages as ``(id, encoded message numbered with its id)``
        (``shared.codec.messages.numbered``), within limits.

        At least one message is returned when any is queued, however large.
        """
        out: list[tuple[int, str]] = []
        size = 0
        for row_id, body in self.conn.execute(
            "SELECT id, body FROM outbox ORDER BY id LIMIT ?", (max_msgs,)
        ):
            text = messages.numbered(body, row_id)
            size += len(text) + 1
            if out and size > max_bytes:
                break
            out.append((row_id, text))
        return out

    def move_to_inflight(self, seq: int, envelope: bytes, ids: list[int], ts: int) -> None:
        """The sealed envelope replaces its outbox rows (one transaction, by the caller or here)."""
        with self._own_transaction():
            self.conn.execute(
                "INSERT INTO inflight (seq, envelope, first_id, last_id, count, created_ts) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (seq, envelope, min(ids) if ids else None, max(ids) if ids else None, len(ids), ts),
            )
            if ids:
                self.conn.execute(
                    "DELETE FROM outbox WHERE id BETWEEN ? AND ?", (min(ids), max(ids))
                )

    def inflight(self) -> list[tuple[int, bytes, int]]:
        """Sealed, unacked envelopes in sequence order: ``(seq, bytes, created_ts)``."""
        return [
            (int(r[0]), bytes(r[1]), int(r[2]))
            for r in self.conn.execute(
                "SELECT seq, envelope, created_ts FROM inflight ORDER BY seq"
            )
        ]

    def ack(self, seqs: list[int]) -> int:
        """Drop acked envelopes; returns how many messages they carried."""
        if not seqs:
            return 0
        dropped = 0
        with self._own_transaction():
            for seq in seqs:
                row = self.conn.execute(
                    "DELETE FROM inflight WHERE seq = ? RETURNING count", (seq,)
                ).fetchone()
                if row is not None:
                    dropped += int(row[0])
        return dropped

    def backlog(self) -> dict[str, int]:
        """Uplink backlog: queued messages, and envelopes / messages awaiting an ack."""
        queued = self.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        envs, msgs = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(count), 0) FROM inflight"
        ).fetchone()
        return {"queued": int(queued), "inflight_envelopes": int(envs), "inflight": int(msgs)}


class Inbox(_Queue):
    """The result of every command handled (a command sent again gets the same answer), and
    credits that arrived ahead of a missing purchase number."""

    def get(self, cmd_id: str | int) -> dict[str, Any] | None:
        """The stored result of a command already handled, or None."""
        row = self.conn.execute(
            "SELECT result_json FROM inbox WHERE cmd = ?", (_dumps(cmd_id),)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(
        self,
        cmd_id: str | int,
        meter: str | None,
        op: str,
        result: dict[str, Any],
        ts: int,
        result_id: int | None = None,
    ) -> None:
        """Store (or replace, for a held command that later applies) a command's result;
        ``result_id`` is the outbox id of the message carrying it (kept until it is acked)."""
        self.conn.execute(
            "INSERT OR REPLACE INTO inbox (cmd, meter, op, status, result_json, ts, result_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (_dumps(cmd_id), meter, op, result["status"], _dumps(result), ts, result_id),
        )

    def hold(self, meter: str, purchase_no: int, cmd: dict[str, Any], ts: int) -> None:
        """Keep a credit command that arrived ahead of a missing purchase number."""
        self.conn.execute(
            "INSERT OR REPLACE INTO held (meter, purchase_no, cmd_json, ts) VALUES (?, ?, ?, ?)",
            (meter, purchase_no, _dumps(cmd), ts),
        )

    def held(self, meter: str) -> dict[int, dict[str, Any]]:
        """Held credit commands of a meter by purchase number."""
        return {
            int(no): json.loads(body)
            for no, body in self.conn.execute(
                "SELECT purchase_no, cmd_json FROM held WHERE meter = ? ORDER BY purchase_no",
                (meter,),
            )
        }

    def release(self, meter: str, purchase_no: int) -> None:
        """Forget a held credit (it has been applied or refused)."""
        self.conn.execute(
            "DELETE FROM held WHERE meter = ? AND purchase_no = ?", (meter, purchase_no)
        )


class Tariffs(_Queue):
    """Tariff versions the cloud pushed (``tariff`` commands), kept across restarts."""

    def put(self, tariff_id: str, version: dict[str, Any]) -> None:
        """Store a tariff version (the same version number replaces the earlier copy)."""
        self.conn.execute(
            "INSERT OR REPLACE INTO tariffs (tariff_id, version, effective_from, version_json) "
            "VALUES (?, ?, ?, ?)",
            (tariff_id, int(version["version"]), int(version["effective_from"]), _dumps(version)),
        )

    def all(self) -> dict[str, list[dict[str, Any]]]:
        """Every stored tariff: ``{tariff_id: [version, ...]}`` by effective instant."""
        out: dict[str, list[dict[str, Any]]] = {}
        for tariff_id, body in self.conn.execute(
            "SELECT tariff_id, version_json FROM tariffs ORDER BY tariff_id, effective_from"
        ):
            out.setdefault(tariff_id, []).append(json.loads(body))
        return out
