"""One ingest batch: per gateway, the state the message handlers share
(cloud/uplink/meter_messages.py, cloud/uplink/gateway.py), and the queries that load it for
every gateway of the batch at once (:class:`Loader`).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import (
    String,
    Text,
    any_,
    bindparam,
    cast,
    column,
    func,
    insert,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.state import InstanceState

from cloud.control import lifecycle
from cloud.errors import QuarantineError
from cloud.models import (
    GATEWAY_LOCK,
    Alarm,
    Command,
    Event,
    Gateway,
    InboxEntry,
    Meter,
    Quarantine,
    Reading,
)
from cloud.monitoring import alarms
from cloud.uplink.rows import encode_json

CHECK_KINDS = (alarms.CHARGE_GAP, alarms.LEDGER_MISMATCH, "lost_contact")
# The meter columns a reading changes (cloud/uplink/meter_messages.py, ``ledger.charge``), with
# their PostgreSQL types: a batch's meters that changed only these are written by one statement
# (``Loader.write_meters``) instead of one ORM UPDATE each.
MIRROR_COLUMNS = {
    "charges_micro_yuan": "bigint",
    "balance_micro_yuan": "bigint",
    "last_seen_ts": "bigint",
    "lost_contact": "boolean",
    "last_reading_id": "bigint",
    "last_reading_ts": "bigint",
    "energy_wh": "bigint",
    "power_w": "bigint",
    "relay": "text",
    "edge_balance_micro_yuan": "bigint",
    "edge_credits_micro_yuan": "bigint",
    "edge_refunds_micro_yuan": "bigint",
    "edge_charges_micro_yuan": "bigint",
}
_MIRROR = frozenset(MIRROR_COLUMNS)
# What a reading reads besides: the meter's collector, the credits and refunds it compares, the
# newest money result it must not predate (cloud/money/crosscheck.py).
_MIRROR_READ = ("id", "gateway_id", "credits_micro_yuan", "refunds_micro_yuan", "money_result_id")
# The rows go as one JSON parameter, each an array in ``_ROW`` order (``json.dumps`` and the
# database's JSON parser are C; an array parameter per column would cost psycopg a Python loop
# over every value, and objects cost the encoder 2.5 times what arrays do). PostgreSQL takes
# them as jsonb (parsed once; ``->>`` on json would parse each element again); SQLite (3.33+
# for UPDATE … FROM) reads them with json_each.
_ROW = ("id", *MIRROR_COLUMNS)
_MIRROR_PG = text(
    "UPDATE meters AS m SET "
    + ", ".join(f"{c} = v.{c}" for c in MIRROR_COLUMNS)
    + " FROM (SELECT e ->> 0 AS id, "
    + ", ".join(f"CAST(e ->> {i} AS {MIRROR_COLUMNS[c]}) AS {c}" for i, c in enumerate(_ROW) if i)
    + " FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS e) AS v WHERE m.id = v.id"
)
_MIRROR_SQLITE = text(
    "UPDATE meters SET "
    + ", ".join(f"{c} = v.{c}" for c in MIRROR_COLUMNS)
    + " FROM (SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]') AS {c}" for i, c in enumerate(_ROW))
    + " FROM json_each(:rows)) AS v WHERE meters.id = v.id"
)
_MIRROR_EACH = text(
    "UPDATE meters SET " + ", ".join(f"{c} = :{c}" for c in MIRROR_COLUMNS) + " WHERE id = :id"
)
# Ids per IN list: SQLite allows 32,766 bound values in a statement, PostgreSQL 65,535.
CHUNK = 1000


class UnknownGatewayError(LookupError):
    """``apply_*`` was handed a gateway id the database does not know (a bridge bug)."""


class MeterMirror:
    """A meter row as a reading sees it: the mirror columns and what a reading compares, as
    plain attributes (no ORM instrumentation: building thousands of ``Meter`` objects a batch,
    and tracking every attribute set, was a third of the bridge's time). The loader makes one
    for a meter only readings name in the batch, under the row's lock; whatever else a batch
    does to a meter (a state, an event, a result) goes through the ``Meter`` row instead. Its
    changes are written by :meth:`Loader.write_meters`."""

    __slots__ = (*_MIRROR_READ, *MIRROR_COLUMNS, "_loaded")

    id: str
    gateway_id: str
    credits_micro_yuan: int
    refunds_micro_yuan: int
    money_result_id: int | None
    charges_micro_yuan: int
    balance_micro_yuan: int
    last_seen_ts: int | None
    lost_contact: bool | None
    last_reading_id: int | None
    last_reading_ts: int | None
    energy_wh: int | None
    power_w: int | None
    relay: str | None
    edge_balance_micro_yuan: int | None
    edge_credits_micro_yuan: int | None
    edge_refunds_micro_yuan: int | None
    edge_charges_micro_yuan: int | None

    COLUMNS = (*_MIRROR_READ, *MIRROR_COLUMNS)

    def __init__(self, row: Any) -> None:
        for name, value in zip(self.COLUMNS, row, strict=True):
            setattr(self, name, value)
        self._loaded = tuple(row)

    def changed(self) -> bool:
        return _GET_COLUMNS(self) != self._loaded

    def values(self) -> tuple[Any, ...]:
        """What :meth:`Loader.write_meters` writes, in ``_ROW`` order."""
        return _GET_ROW(self)

    def row(self) -> dict[str, Any]:
        return dict(zip(_ROW, _GET_ROW(self), strict=True))


# Read in one C call each (a batch asks every mirror).
_GET_COLUMNS = attrgetter(*MeterMirror.COLUMNS)
_GET_ROW = attrgetter(*_ROW)
_ITEMS_ROW = itemgetter(*_ROW)


@dataclass
class Uplink:
    """One opened envelope: its collector, sequence number and messages (``body["m"]``)."""

    gateway_id: str
    seq: int
    messages: list[Any]


@dataclass
class ApplyResult:
    """What ``apply_*`` did. ``acks`` lists, per gateway, every sequence to acknowledge (applied
    now or already before). ``notices`` are plain dicts for the north topics, in order:
    ``{"type": "reading"|"state"|"event"|"alarm"|"sale"|"refund"|"reversal"|"transfer_in"|
    "settlement"|"gateway", ...}``."""

    applied: list[tuple[str, int]] = field(default_factory=list)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    quarantined: int = 0
    readings: int = 0
    notices: list[dict[str, Any]] = field(default_factory=list)
    # Per gateway, what its envelopes did (the same figures, kept apart for the north topics).
    parts: dict[str, ApplyResult] = field(default_factory=dict)

    def add(self, part: ApplyResult) -> None:
        """Count one gateway's part into the whole."""
        self.applied.extend(part.applied)
        self.duplicates.extend(part.duplicates)
        self.quarantined += part.quarantined
        self.readings += part.readings
        self.notices.extend(part.notices)

    @property
    def acks(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for gw, seq in self.applied + self.duplicates:
            out[gw].append(seq)
        return dict(out)


class Batch:
    """What the handlers of one gateway's messages share within a batch. Its ``result`` is the
    gateway's own (``ApplyResult.parts`` keeps them apart, for the north topics); the rows and
    sets are filled by :class:`Loader` for every gateway of the batch at once."""

    def __init__(self, session: Session, gateway: Gateway, now: int, result: ApplyResult) -> None:
        self.s = session
        self.now = now
        self.result = result
        self.gw = gateway
        self.meters: dict[str, Meter] = {}
        self.mirrors: dict[str, MeterMirror] = {}  # the meters only readings name (Loader)
        self.reading_rows: list[list[Any]] = []  # cloud/uplink/rows.py
        self.seen_readings: set[int] = set()
        self.seen_events: set[int] = set()
        self.active: dict[tuple[str, str], Alarm] = {}
        self.checks: dict[str, dict[str, Any | None]] = {}
        self.unverified: dict[str, list[Command]] = defaultdict(list)
        # For a hello (Loader.preload, only when the batch holds one from this gateway): its
        # meters in the cloud, its active gateway alarms by kind, whether a time command waits.
        self.meter_ids: set[str] = set()
        self.gateway_alarms: dict[str, Alarm] = {}
        self.time_waiting = False
        self.new_commands: list[dict[str, Any]] = []  # enqueued at the end, in one INSERT

    def quarantine(self, seq: int, msg: Any, reason: str) -> None:
        self.result.quarantined += 1
        self.s.add(
            Quarantine(
                gateway_id=self.gw.id,
                seq=seq,
                message=msg if isinstance(msg, dict) else {"raw": repr(msg)[:2000]},
                reason=reason[:500],
                received_ts=self.now,
            )
        )

    def meter(self, msg: dict[str, Any]) -> Meter:
        """The message's meter, one of this gateway's; ``QuarantineError`` otherwise."""
        meter = self.meters.get(msg["meter"])
        if meter is None:
            raise QuarantineError(f"unknown meter {msg['meter']!r}")
        self._ours(meter)
        return meter

    def reading_meter(self, msg: dict[str, Any]) -> Meter | MeterMirror:
        """A reading's meter: its mirror row when only readings name it, else its ``Meter``."""
        meter = self.mirrors.get(msg["meter"]) or self.meters.get(msg["meter"])
        if meter is None:
            raise QuarantineError(f"unknown meter {msg['meter']!r}")
        self._ours(meter)
        return meter

    def _ours(self, meter: Meter | MeterMirror) -> None:
        if meter.gateway_id != self.gw.id:
            raise QuarantineError(
                f"meter {meter.id} belongs to collector {meter.gateway_id}, not {self.gw.id}"
            )


def _ints(values: Any) -> set[int]:
    return {v for v in values if isinstance(v, int) and not isinstance(v, bool)}


def _json(values: list[Any]) -> Any:
    """``values`` as one JSON text parameter, cast to ``json``."""
    return cast(bindparam(None, encode_json(values), type_=Text()), JSON)


def _is_text(col: Any) -> bool:
    return isinstance(col.type, String)


def _text_or(col: Any) -> Any:
    # A string compares as text: a cast to VARCHAR(64) would cut a longer id down to one
    # that may exist (the array parameter did that; nothing matched such an id all the same).
    return Text() if _is_text(col) else col.type


def _chunks(items: list[Any], size: int = CHUNK) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class Loader:
    """The queries of one ingest batch, made once for all its gateways (a handful per batch,
    not per envelope: with thousands of collectors each envelope is another gateway). On
    PostgreSQL an id list is one parameter (a statement with a thousand placeholders costs the
    driver more to prepare than the server to run), a JSON text: ``= ANY (ARRAY(SELECT
    json_array_elements_text(…)))`` keeps the index scan in key order of an array parameter,
    pairs come from ``json_to_recordset`` (their unique index, nested loop). ``json.dumps`` is C;
    psycopg dumped an array parameter in a Python loop over its values."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.pg = session.get_bind().dialect.name == "postgresql"

    def _in(self, col: Any, values: list[Any]) -> list[Any]:
        """WHERE conditions selecting ``col`` in ``values``, one per statement to run."""
        if self.pg:
            value = func.json_array_elements_text(_json(values)).table_valued("value").c.value
            ids = select(value if _is_text(col) else cast(value, col.type)).scalar_subquery()
            return [col == any_(func.array(ids))]
        return [col.in_(chunk) for chunk in _chunks(values)]

    def _pairs_in(self, a: Any, b: Any, pairs: list[tuple[Any, Any]]) -> list[Any]:
        """WHERE conditions selecting ``(a, b)`` in ``pairs``, one per statement to run."""
        if self.pg:
            rows = (
                func.json_to_recordset(_json([{"a": x, "b": y} for x, y in pairs]))
                .table_valued(column("a", _text_or(a)), column("b", _text_or(b)))
                .render_derived(name="v", with_types=True)
            )
            return [tuple_(a, b).in_(select(rows.c.a, rows.c.b))]
        return [tuple_(a, b).in_(chunk) for chunk in _chunks(pairs)]

    def gateways(self, ids: list[str]) -> dict[str, Gateway]:
        """The gateways' rows, locked in id order (two writers queue instead of deadlocking)."""
        rows = {
            g.id: g
            for where in self._in(Gateway.id, sorted(ids))
            for g in self.s.scalars(
                select(Gateway).where(where).order_by(Gateway.id).with_for_update(**GATEWAY_LOCK)
            )
        }
        for gw in ids:
            if gw not in rows:
                raise UnknownGatewayError(f"collector {gw!r} is not in the database")
        return rows

    def fresh(self, batches: list[tuple[Batch, list[Uplink]]]) -> list[list[Uplink]]:
        """Per batch, its envelopes not in the inbox yet, now entered there (one query and one
        insert for all); the others are its duplicates."""
        pairs = [(b.gw.id, u.seq) for b, ups in batches for u in ups]
        known: set[tuple[str, int]] = set()
        for where in self._pairs_in(InboxEntry.gateway_id, InboxEntry.seq, pairs):
            known.update(
                (gw, seq)
                for gw, seq in self.s.execute(
                    select(InboxEntry.gateway_id, InboxEntry.seq).where(where)
                )
            )
        out: list[list[Uplink]] = []
        rows: list[dict[str, Any]] = []
        for b, ups in batches:
            fresh: list[Uplink] = []
            for up in ups:
                if (b.gw.id, up.seq) in known:
                    b.result.duplicates.append((b.gw.id, up.seq))
                    continue
                known.add((b.gw.id, up.seq))
                fresh.append(up)
                rows.append(
                    {
                        "gateway_id": b.gw.id,
                        "seq": up.seq,
                        "received_ts": b.now,
                        "messages": len(up.messages) if isinstance(up.messages, list) else 0,
                    }
                )
            out.append(fresh)
        if rows:
            self.s.execute(insert(InboxEntry), rows)
        return out

    def preload(self, batches: list[tuple[Batch, list[dict[str, Any]]]]) -> None:
        """Each batch's meters (locked), their active check alarms and applied commands, and
        which of its readings and events are already stored."""
        wanted: dict[str, set[str]] = {}  # meter id -> gateways whose messages name it
        whole: set[str] = set()  # meters a message other than a reading names
        readings: list[tuple[str, int]] = []
        events: list[tuple[str, int]] = []
        for b, msgs in batches:
            for m in msgs:
                if isinstance(m.get("meter"), str):
                    wanted.setdefault(m["meter"], set()).add(b.gw.id)
                    if m.get("t") != "reading":
                        whole.add(m["meter"])
                if m.get("t") == "reading":
                    readings.append((b.gw.id, m["id"]))
                elif m.get("t") == "event":
                    events.append((b.gw.id, m["id"]))
        by_gw = {b.gw.id: b for b, _ in batches}
        self._meter_state(by_gw, wanted, whole)
        self._hello_state(
            {b.gw.id: b for b, msgs in batches if any(m.get("t") == "hello" for m in msgs)}
        )
        # The commands the results answer, into the session at once (results.py gets each).
        answered = sorted(
            _ints(m.get("cmd") for _, msgs in batches for m in msgs if m.get("t") == "result")
        )
        self._each(Command.id, answered, lambda where: select(Command).where(where))
        for gw, rid in self._pairs(Reading.gateway_id, Reading.reading_id, readings):
            by_gw[gw].seen_readings.add(rid)
        for gw, eid in self._pairs(Event.gateway_id, Event.event_id, events):
            by_gw[gw].seen_events.add(eid)

    def _meter_state(
        self, by_gw: dict[str, Batch], wanted: dict[str, set[str]], whole: set[str]
    ) -> None:
        """The meters, locked in id order by one statement: as mirror rows those only readings
        name (and not already in the session), the others as ``Meter`` rows."""
        ids = sorted(wanted)
        # On the connection: plain rows, without the ORM's result processing; flushed first as
        # an ORM query would (a meter added to the session and not yet flushed is found, and
        # is in the identity map below).
        if self.s.autoflush:
            self.s.flush()
        conn = self.s.connection()
        rows = {
            row[0]: row
            for where in self._in(Meter.id, ids)
            for row in conn.execute(
                select(*(getattr(Meter, c) for c in MeterMirror.COLUMNS))
                .where(where)
                .order_by(Meter.id)
                .with_for_update(of=Meter)
            )
        }
        in_session = {
            state.identity[0]
            for state in self.s.identity_map.all_states()
            if state.class_ is Meter and state.identity
        }
        whole_ids = [mid for mid in ids if mid in whole or mid in in_session]
        meters = self._meters(whole_ids) if whole_ids else {}
        for mid, row in rows.items():
            meter = meters.get(mid)
            if meter is not None:
                for gw in wanted[mid]:
                    by_gw[gw].meters[mid] = meter
            else:
                mirror = MeterMirror(row)
                for gw in wanted[mid]:
                    by_gw[gw].mirrors[mid] = mirror
        for alarm in self._each(
            Alarm.meter_id,
            sorted(rows),
            lambda where: select(Alarm).where(
                Alarm.active.is_(True), where, Alarm.kind.in_(CHECK_KINDS)
            ),
        ):
            for gw in wanted.get(alarm.meter_id or "", ()):
                by_gw[gw].active[(alarm.meter_id or "", alarm.kind)] = alarm
        for command in self._each(
            Command.meter_id,
            sorted(rows),
            lambda where: select(Command).where(where, Command.status == lifecycle.APPLIED),
        ):
            for gw in wanted.get(command.meter_id or "", ()):
                by_gw[gw].unverified[command.meter_id or ""].append(command)

    def _hello_state(self, by_gw: dict[str, Batch]) -> None:
        """What a hello compares and checks (cloud/uplink/gateway.py), for every gateway of the
        batch that says hello, in three queries (10,000 say it after a broker restart)."""
        ids = sorted(by_gw)
        for gw, mid in self._each_row(
            ids, lambda where: select(Meter.gateway_id, Meter.id).where(where), Meter.gateway_id
        ):
            by_gw[gw].meter_ids.add(mid)
        for alarm in self._each(
            Alarm.gateway_id,
            ids,
            lambda where: select(Alarm).where(
                Alarm.active.is_(True), Alarm.meter_id.is_(None), where
            ),
        ):
            by_gw[alarm.gateway_id or ""].gateway_alarms.setdefault(alarm.kind, alarm)
        for (gw,) in self._each_row(
            ids,
            lambda where: select(Command.gateway_id).where(
                where, Command.op == "time", Command.status.in_(lifecycle.OPEN_STATUSES)
            ),
            Command.gateway_id,
        ):
            by_gw[gw].time_waiting = True

    def _each_row(self, ids: list[str], query: Any, col: Any) -> list[Any]:
        if not ids:
            return []
        return [tuple(row) for where in self._in(col, ids) for row in self.s.execute(query(where))]

    def _meters(self, ids: list[str]) -> dict[str, Meter]:
        return {
            m.id: m
            for where in self._in(Meter.id, ids)
            for m in self.s.scalars(
                select(Meter)
                .where(where)
                .order_by(Meter.id)
                .with_for_update()
                # Only a settings result reads these (loaded then); JSON costs per row.
                .options(defer(Meter.settings), defer(Meter.applied_settings))
            )
        }

    def write_meters(self, meters: Iterable[Meter], mirrors: Iterable[MeterMirror] = ()) -> int:
        """Write the changed ``mirrors``, and the meters of ``meters`` whose pending changes are
        all mirror columns (what readings change), in one ``UPDATE … FROM`` the rows as JSON;
        mark those meters clean so the session's flush does not write them again (SQLAlchemy's
        own step after a flush; the version is pinned). A meter with any other change, or a
        mirror column not loaded, is left to the flush. Returns how many rows were written.
        Under the batch's row locks, so the values written are the batch's."""
        states: list[tuple[InstanceState[Any], dict[str, Any]]] = []
        for meter in meters:
            state: InstanceState[Any] = meter._sa_instance_state  # type: ignore[attr-defined]
            changed = state.committed_state
            if (
                state.modified
                and changed
                and _MIRROR.issuperset(changed)
                and _MIRROR.issubset(state.dict)
            ):
                states.append((state, state.dict))
        dirty = [mirror for mirror in mirrors if mirror.changed()]
        if not self.pg and sqlite3.sqlite_version_info < (3, 33):
            # An SQLite without UPDATE … FROM: the flush writes the meters, as before, and
            # the mirrors go one UPDATE each.
            if dirty:
                self.s.connection().execute(_MIRROR_EACH, [mirror.row() for mirror in dirty])
            return len(dirty)
        rows = [mirror.values() for mirror in dirty]
        rows.extend(_ITEMS_ROW(d) for _, d in states)
        if not rows:
            return 0
        # Not through the session's autoflush: that would write these meters first, one
        # UPDATE each; what else is pending is flushed at the commit, as before.
        written = self.s.connection().execute(
            _MIRROR_PG if self.pg else _MIRROR_SQLITE, {"rows": encode_json(rows)}
        )
        if written.rowcount != len(rows):  # as the flush's StaleDataError: a row went missing
            raise RuntimeError(f"meter mirror wrote {written.rowcount} of {len(rows)} rows")
        # What a flush does after its UPDATE: the values written are now the committed ones,
        # and the transaction knows these rows changed (a rollback, even of a savepoint,
        # expires them).
        if states:
            InstanceState._commit_all_states(states, self.s.identity_map)
            self.s._register_altered(state for state, _ in states)
        return len(rows)

    def _each(self, col: Any, ids: list[Any], query: Any) -> list[Any]:
        if not ids:
            return []
        return [row for where in self._in(col, ids) for row in self.s.scalars(query(where))]

    def _pairs(self, gw_col: Any, id_col: Any, pairs: list[tuple[str, int]]) -> set[Any]:
        found: set[Any] = set()
        if not pairs:
            return found
        for where in self._pairs_in(gw_col, id_col, pairs):
            found.update((gw, n) for gw, n in self.s.execute(select(gw_col, id_col).where(where)))
        return found
