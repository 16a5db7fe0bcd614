"""``gridvend cloud …``: the cloud's command line.

::

    gridvend cloud init-db                      create / upgrade the schema, built-in roles
    gridvend cloud create-operator NAME --role admin   (password from a prompt or stdin)
    gridvend cloud create-token NAME [--name LABEL] [--token FIXED] [--expires 90d|DATE]
    gridvend cloud list-tokens [--operator NAME] [--state active|expired|revoked]
    gridvend cloud revoke-token ID|PREFIX       stops working at once (other processes: 30 s)
    gridvend cloud serve [--port 8000]          the REST API on 127.0.0.1 (waitress)
    gridvend cloud import FILE...               sites, collectors, units, meters (CSV/XLSX/JSON)
    gridvend cloud archive [--keep-days N]      roll up days, export and remove old readings
    gridvend cloud backup --out FILE            a consistent copy (SQLite or PostgreSQL) + manifest
    gridvend cloud restore FILE [--force]       put a backup back, upgrade it to this release
    gridvend cloud bridge …                     the MQTT bridge (cloud.bridge.cli)
    gridvend cloud payments run|reconcile|tick  the payment jobs (cloud.payments.cli)
    gridvend cloud notify --config FILE         SMS / webhook notifications (cloud.notify.cli)

Every command takes ``--database URL`` (else ``$GRIDVEND_DATABASE_URL``, else
``instance/gridvend.db``) and ``--instance DIR``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from cloud.audit import Actor

CLI = Actor("cli")

# Default request threads of ``serve`` (measured with `gridvend bench cloud`'s sale load, 20
# clients, 2 cores; see the --threads help): on SQLite writes run one at a time, so threads
# beyond the writer only add GIL contention; PostgreSQL runs writers in parallel.
SQLITE_THREADS = 2
POSTGRES_THREADS = 4


def _database(args: argparse.Namespace, need_schema: bool = True) -> Any:
    from cloud import db as cloud_db

    url = cloud_db.resolve_url(args.database, args.instance)
    database = cloud_db.Database(url)
    if need_schema and cloud_db.current_revision(database.engine) is None:
        database.dispose()
        raise SystemExit(
            f"the database {url} has no schema yet; run `gridvend cloud init-db` first"
        )
    return database


def _init_db(args: argparse.Namespace) -> int:
    from cloud.access import auth
    from cloud.db import current_revision

    database = _database(args, need_schema=False)
    try:
        database.upgrade()
        with database.session() as s:
            auth.ensure_roles(s)
        print(f"database {database.url} is at revision {current_revision(database.engine)}")
    finally:
        database.dispose()
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("the passwords differ; nothing was created")
    return first


def _create_operator(args: argparse.Namespace) -> int:
    from cloud.access import auth

    database = _database(args)
    try:
        with database.session() as s:
            op = auth.create_operator(
                s, args.username, _password(args), args.role, CLI, display_name=args.display_name
            )
            print(f"operator {op.username} (role {args.role}) created")
    finally:
        database.dispose()
    return 0


def _create_token(args: argparse.Namespace) -> int:
    from cloud.access import auth, tokens

    expires = tokens.parse_lifetime(args.expires) if args.expires else None
    database = _database(args)
    try:
        with database.session() as s:
            _, secret = auth.create_token(
                s, args.username, CLI, name=args.name, token=args.token, expires_ts=expires
            )
    finally:
        database.dispose()
    # The secret alone on stdout, so scripts can capture it; it is never shown again.
    print(secret)
    return 0


def _list_tokens(args: argparse.Namespace) -> int:
    import datetime as dt

    from cloud.access import tokens

    def when(ts: int | None) -> str:
        if ts is None:
            return "-"
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")

    database = _database(args)
    try:
        with database.session(readonly=True) as s:
            rows = [
                tokens.token_to_dict(r)
                for r in tokens.list_tokens(s, operator=args.operator, state=args.state)
            ]
    finally:
        database.dispose()
    print(f"{'id':>5}  {'prefix':<9} {'operator':<16} {'state':<8} {'expires':<17} "
          f"{'last used':<17} name")  # fmt: skip
    for t in rows:
        print(f"{t['id']:>5}  {t['prefix']:<9} {t['operator']:<16} {t['state']:<8} "
              f"{when(t['expires_ts']):<17} {when(t['last_used_ts']):<17} {t['name']}")  # fmt: skip
    return 0


def _revoke_token(args: argparse.Namespace) -> int:
    from cloud.access import auth, tokens

    database = _database(args)
    try:
        with database.session() as s:
            row = auth.revoke_token(s, tokens.find_token(s, args.token).id, CLI)
            print(f"token {row.id} ({row.prefix}…, {row.operator.username}) is revoked; "
                  "API processes stop accepting it within 30 s")  # fmt: skip
    finally:
        database.dispose()
    return 0


def _serve(args: argparse.Namespace) -> int:
    import waitress

    from cloud.web import create_app

    if args.threads is not None and args.threads < 1:
        raise SystemExit(f"--threads must be 1 or more, got {args.threads}")
    from cloud.notify import login_codes
    from cloud.payments import config as payment_config

    database = _database(args)
    threads = args.threads or (SQLITE_THREADS if database.is_sqlite else POSTGRES_THREADS)
    # The providers the payment jobs use too (<instance>/payments.json, else none).
    config: dict[str, object] = {
        "DATABASE": database,
        "PAYMENTS": payment_config.settings(args.instance),
    }
    if args.login_codes == "sms":
        # Through the notifier's outbox (gridvend cloud notify sends it, urgent).
        config["TENANT_CODE_SENDER"] = login_codes.sender()
    app = create_app(config)
    # Everything loaded at start-up (modules, catalogs, templates) lives as long as the
    # process: out of the collector's reach, a full collection no longer walks it in the middle
    # of a request (about 100 ms on a busy 2-core box; gridvend bench web board).
    import gc

    gc.freeze()
    print(
        f"gridvend cloud API on http://{args.host}:{args.port}/api/v1 "
        f"({threads} threads; Ctrl-C stops)"
    )
    try:
        waitress.serve(app, host=args.host, port=args.port, threads=threads, ident="gridvend")
    finally:
        database.dispose()
    return 0


def _import_progress(phase: str, done: int, total: int) -> None:
    """Progress on stderr: one line rewritten in place on a terminal, a line per phase else."""
    text = f"import: {phase} {done}/{total}" if total else f"import: {phase}"
    if sys.stderr.isatty():
        print(f"\r{text:<60}", end="" if phase != "done" else "\n", file=sys.stderr, flush=True)
    elif done == 0 or phase == "done":
        print(text, file=sys.stderr, flush=True)


def _import(args: argparse.Namespace) -> int:
    from cloud.park.imports import importer

    database = _database(args)
    try:
        with database.session() as s:
            summary = importer.import_files(
                s, args.files, Actor("cli:import"), progress=_import_progress
            )
        print(f"imported {summary}")
        return 0
    except importer.ImportRejected as exc:
        # Every problem found (up to the importer's limit), not only the message's first 50.
        print(exc.message.splitlines()[0], file=sys.stderr)
        for problem in exc.errors:
            print(f"  {problem}", file=sys.stderr)
        if exc.stopped:
            print(f"  (checking stopped after {importer.MAX_ERRORS} problems)", file=sys.stderr)
        return 1
    finally:
        database.dispose()


def _archive(args: argparse.Namespace) -> int:
    from cloud.reporting import archive

    database = _database(args)
    try:
        result = archive.job(database, out_dir=args.out, keep_days=args.keep_days, fmt=args.format)
    finally:
        database.dispose()
    for run in result["runs"]:
        print(f"archived {run['rows']} readings to {run['path']}")
    print(f"rolled up {result['rollups']} meter-days; {len(result['runs'])} archive file(s)")
    return 0


def _backup(args: argparse.Namespace) -> int:
    from cloud import backup

    database = _database(args)
    try:
        manifest = backup.backup(database, args.out)
    finally:
        database.dispose()
    rows = sum(manifest["rows"].values())
    print(f"backup {args.out} ({manifest['kind']}, revision {manifest['revision']}, {rows} rows, "
          f"sha256 {manifest['sha256'][:16]}…); manifest {args.out}.json")  # fmt: skip
    return 0


def _restore(args: argparse.Namespace) -> int:
    from cloud import backup

    database = _database(args, need_schema=False)
    try:
        result = backup.restore(database, args.file, force=args.force)
    finally:
        database.dispose()
    print(f"restored {args.file}: revision {result['from_revision']} → {result['revision']}, "
          f"{sum(result['rows'].values())} rows")  # fmt: skip
    return 0


def _bridge(argv: list[str], prog: str) -> int:
    """The hook for ``gridvend cloud bridge``: its options and loop live in cloud.bridge.cli."""
    from cloud.bridge import cli as bridge_cli

    return int(bridge_cli.main(argv, prog) or 0)


def _notify(argv: list[str], prog: str) -> int:
    """The hook for ``gridvend cloud notify``: its options and loop live in cloud.notify.cli."""
    from cloud.notify import cli as notify_cli

    return int(notify_cli.main(argv, prog) or 0)


def _payments(argv: list[str], prog: str) -> int:
    """The hook for ``gridvend cloud payments``: its commands live in cloud.payments.cli."""
    from cloud.payments import cli as payments_cli

    return int(payments_cli.main(argv, prog) or 0)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="the gridvend cloud")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", default=None, help="SQLAlchemy URL of the cloud database")
    common.add_argument("--instance", default=None, help="instance folder (default ./instance)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init-db", parents=[common], help="create or upgrade the schema")
    p.set_defaults(func=_init_db)

    p = sub.add_parser("create-operator", parents=[common], help="add an office operator")
    p.add_argument("username")
    from cloud.access.auth import ROLES

    p.add_argument("--role", default="admin", choices=list(ROLES))
    p.add_argument("--display-name", default="")
    p.add_argument(
        "--password", default=None, help="the password (default: prompt, or a line of stdin)"
    )
    p.set_defaults(func=_create_operator)

    p = sub.add_parser("create-token", parents=[common], help="make an API token (printed once)")
    p.add_argument("username")
    p.add_argument("--name", default="", help="a label for the token")
    p.add_argument("--token", default=None, help="use this secret (20+ characters)")
    p.add_argument(
        "--expires",
        default=None,
        help="when it stops working: a lifetime (90d, 12h, 30m) or a date/time "
        "(2027-01-31, 2027-01-31T08:00:00+08:00); default never",
    )
    p.set_defaults(func=_create_token)

    p = sub.add_parser("list-tokens", parents=[common], help="API tokens (never their secrets)")
    p.add_argument("--operator", default=None, help="only this operator's tokens")
    p.add_argument("--state", default=None, choices=["active", "expired", "revoked"])
    p.set_defaults(func=_list_tokens)

    p = sub.add_parser("revoke-token", parents=[common], help="revoke an API token at once")
    p.add_argument("token", help="the token's id or its prefix (see list-tokens)")
    p.set_defaults(func=_revoke_token)

    p = sub.add_parser("serve", parents=[common], help="serve the REST API (waitress)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"request threads (default: {SQLITE_THREADS} on SQLite, {POSTGRES_THREADS} on "
        "PostgreSQL). SQLite has one writer, so extra threads only queue and fight for the "
        "GIL: with 20 clients selling at once (2 cores) p99 was 62-64 ms with 1 thread, 71-76 "
        "with 2, 80-84 with 4, 90-96 with 8; 2 keeps one slow read (a report, an export) from "
        "stalling every sale. On PostgreSQL 4 sold about as fast as 8 (480-490 against "
        "490-510 sales/s) with a shorter tail (p99 145-155 against 175-190 ms)",
    )
    p.add_argument(
        "--login-codes",
        choices=("sms", "log"),
        default="log",
        help="how a tenant's one-time sign-in code leaves: 'sms' queues it as a text in the "
        "notifier's outbox (run gridvend cloud notify; deployments do), 'log' writes it to this "
        "server's log, marked DEMO ONLY (development and tests; the phone site says so)",
    )
    p.set_defaults(func=_serve)

    p = sub.add_parser("import", parents=[common], help="import sites/collectors/units/meters")
    p.add_argument("files", nargs="+", metavar="FILE", help=".csv, .xlsx or provisioning .json")
    p.set_defaults(func=_import)

    p = sub.add_parser("archive", parents=[common], help="roll up and archive old readings")
    p.add_argument("--keep-days", type=int, default=None, help="default: the site's setting")
    p.add_argument("--out", default=None, help="folder for the files (default instance/archive)")
    p.add_argument("--format", default="csv", choices=["csv", "jsonl"])
    p.set_defaults(func=_archive)

    p = sub.add_parser("backup", parents=[common], help="back the database up (+ manifest)")
    p.add_argument("--out", required=True, help="the backup file (never overwritten)")
    p.set_defaults(func=_backup)

    p = sub.add_parser("restore", parents=[common], help="restore a backup and upgrade it")
    p.add_argument("file", help="a file made by `gridvend cloud backup` (its .json beside it)")
    p.add_argument("--force", action="store_true", help="replace a database that has tables")
    p.set_defaults(func=_restore)

    sub.add_parser("bridge", help="the MQTT bridge (see `gridvend cloud bridge --help`)")
    sub.add_parser("payments", help="the payment jobs (see `gridvend cloud payments --help`)")
    sub.add_parser("notify", help="SMS/webhook notifications (`gridvend cloud notify --help`)")
    return parser


def main(argv: list[str], prog: str = "gridvend cloud") -> int:
    """Entry point of ``gridvend cloud``."""
    if argv and argv[0] == "bridge":
        return _bridge(argv[1:], f"{prog} bridge")
    if argv and argv[0] == "payments":
        return _payments(argv[1:], f"{prog} payments")
    if argv and argv[0] == "notify":
        return _notify(argv[1:], f"{prog} notify")
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    from cloud.errors import ServiceError

    try:
        return int(args.func(args))
    except ServiceError as exc:
        print(f"{prog} {args.command}: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], os.path.basename(sys.argv[0])))
