"""The collector store's schema, as numbered migrations (``PRAGMA user_version`` = the last one
applied). Append a migration for every change; never edit one that has shipped.

Tables (one SQLite file, so money and the outbox commit together: protocols.md §7):

- ``kv``: small named values: the uplink sequence reservation, the downlink replay window.
- ``meters``: per meter its config, the engine state (opaque JSON to the store), the latest
  reading, a few denormalised columns for ``gridvend edge status``, and the agent's own
  bookkeeping (``agent_json``: what the last report said, energy charged so far).
- ``history``: a reading row every ``history_interval_s`` per meter.
- ``ledger``: money rows one by one (credit, refund, reversal, transfer_in, settlement_*) and
  consumption ``charge`` rows booked per history interval and before every money row.
- ``ledger_rollup``: charge rows pruned by retention, summed per meter (the identity survives).
- ``outbox``: plain uplink messages in order; ``id`` is the message id the cloud dedupes by.
- ``inflight``: sealed uplink envelopes, resent byte for byte until acked.
- ``inbox``: applied command ids with their stored result (a duplicate gets the same answer) and
  the outbox id of that result (the row outlives retention until the result is acked).
- ``held``: credits held for a missing purchase number.
- ``tariffs``: tariff versions pushed by the cloud.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE kv (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE meters (
            id                  TEXT PRIMARY KEY,
            bus                 TEXT NOT NULL,
            address             TEXT NOT NULL,
            model               TEXT NOT NULL,
            config_json         TEXT NOT NULL DEFAULT '{}',
            state_json          TEXT,
            balance_micro_yuan  INTEGER,
            display_state       TEXT,
            relay               TEXT,
            mode                TEXT,
            last_reading_json   TEXT,
            last_reading_ts     INTEGER,
            reported_ts         INTEGER NOT NULL DEFAULT 0,
            reported_charges    INTEGER NOT NULL DEFAULT 0,
            agent_json          TEXT NOT NULL DEFAULT '{}',
            booked_charges      INTEGER NOT NULL DEFAULT 0,
            booked_energy_wh    INTEGER NOT NULL DEFAULT 0,
            history_slot        INTEGER NOT NULL DEFAULT -1,
            updated_ts          INTEGER
        );
        CREATE TABLE history (
            meter               TEXT NOT NULL,
            ts                  INTEGER NOT NULL,
            energy_wh           INTEGER NOT NULL,
            power_w             INTEGER,
            relay               TEXT,
            balance_micro_yuan  INTEGER,
            charges_micro_yuan  INTEGER,
            reading_json        TEXT NOT NULL,
            PRIMARY KEY (meter, ts)
        ) WITHOUT ROWID;
        CREATE TABLE ledger (
            id                  INTEGER PRIMARY KEY AUTOINCREMENT,
            meter               TEXT NOT NULL,
            ts                  INTEGER NOT NULL,
            kind                TEXT NOT NULL,
            amount_micro_yuan   INTEGER NOT NULL,
            energy_wh           INTEGER,
            purchase_no         INTEGER,
            cmd                 TEXT
        );
        CREATE INDEX ledger_meter ON ledger (meter, id);
        CREATE UNIQUE INDEX ledger_purchase ON ledger (meter, purchase_no)
            WHERE kind = 'credit';
        CREATE TABLE ledger_rollup (
            meter               TEXT PRIMARY KEY,
            charges_micro_yuan  INTEGER NOT NULL,
            energy_wh           INTEGER NOT NULL,
            rows                INTEGER NOT NULL
        );
        CREATE TABLE outbox (
            id      INTEGER PRIMARY KEY AUTOINCREMENT,
            kind    TEXT NOT NULL,
            body    TEXT NOT NULL,
            ts      INTEGER NOT NULL
        );
        CREATE TABLE inflight (
            seq         INTEGER PRIMARY KEY,
            envelope    BLOB NOT NULL,
            first_id    INTEGER,
            last_id     INTEGER,
            count       INTEGER NOT NULL,
            created_ts  INTEGER NOT NULL
        );
        CREATE TABLE inbox (
            cmd         TEXT PRIMARY KEY,
            meter       TEXT,
            op          TEXT NOT NULL,
            status      TEXT NOT NULL,
            result_json TEXT NOT NULL,
            ts          INTEGER NOT NULL
        );
        CREATE INDEX inbox_ts ON inbox (ts);
        CREATE TABLE held (
            meter       TEXT NOT NULL,
            purchase_no INTEGER NOT NULL,
            cmd_json    TEXT NOT NULL,
            ts          INTEGER NOT NULL,
            PRIMARY KEY (meter, purchase_no)
        );
        CREATE TABLE tariffs (
            tariff_id       TEXT NOT NULL,
            version         INTEGER NOT NULL,
            effective_from  INTEGER NOT NULL,
            version_json    TEXT NOT NULL,
            PRIMARY KEY (tariff_id, version)
        );
        """,
    ),
    (
        2,
        # The outbox id of the result an inbox row answered with: the row is kept while that
        # result is not acked (a command resent after a long outage is then answered from the
        # inbox, not applied again), however old it is.
        "ALTER TABLE inbox ADD COLUMN result_id INTEGER;",
    ),
]

LATEST = MIGRATIONS[-1][0]
