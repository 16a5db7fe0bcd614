"""``gridvend cloud notify``: run the notifier until SIGINT/SIGTERM (``cloud.notify.service``).

::

    gridvend cloud notify --config notify.toml [--database URL] [--instance DIR]
    gridvend cloud notify --check --config notify.toml      # read the settings, say what is wrong

The database comes from ``--database``, else ``$GRIDVEND_DATABASE_URL``, else the SQLite file in
the instance folder (as the bridge and ``serve`` use). The settings file is described in
``cloud.notify.config``. One notifier per database (it owns the modem's port, and its start
resends what it finds in flight): it takes ``cloud.notify.single``'s lock first, and a second one
exits with status 2 naming the lock and its holder.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from cloud import db as cloud_db
from cloud.notify import config, single
from cloud.notify.errors import AlreadyRunning, ConfigError
from cloud.notify.service import Notifier
from shared import logs


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="SMS and webhook notifications")
    p.add_argument("--config", required=True, help="the notifier's settings (TOML)")
    p.add_argument("--database", default=None, help="SQLAlchemy URL of the cloud database")
    p.add_argument("--instance", default=None, help="instance folder (default ./instance)")
    p.add_argument("--check", action="store_true", help="check the settings and exit")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    return p


async def _serve(notifier: Notifier) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await notifier.run(stop)


def main(argv: list[str], prog: str = "gridvend cloud notify") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        settings = config.load(args.config)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: ok; route {' → '.join(settings.policy.route)}")
        return 0
    logs.setup(args.log_level)
    url = cloud_db.resolve_url(args.database, args.instance)
    database = cloud_db.Database(url)
    if cloud_db.current_revision(database.engine) is None:
        database.dispose()
        print(
            f"the database {url} has no schema yet; run `gridvend cloud init-db`", file=sys.stderr
        )
        return 2
    try:
        # Before the notifier exists: its channels must not touch the modem, nor its start
        # (outbox.recover) the messages of another notifier on this database.
        with single.hold(database):
            asyncio.run(_serve(Notifier(database, settings)))
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 2
    except AlreadyRunning as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        database.dispose()
    return 0
