"""``gridvend cloud bridge``: run the MQTT bridge until SIGINT/SIGTERM (see ``cloud.bridge``).

The database comes from ``--database``, else ``$GRIDVEND_DATABASE_URL``, else the SQLite file
in the instance folder (as ``gridvend cloud serve`` uses); the broker from ``--broker``, else
``$GRIDVEND_BROKER_URL``, else ``mqtt://127.0.0.1:1883``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import signal
import socket
import sys
import threading
from typing import Any

from shared.broker import DEFAULT_URL, Broker, BrokerError

CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,100}")
ENV_BROKER = "GRIDVEND_BROKER_URL"
ENV_BROKER_PASSWORD = "GRIDVEND_BROKER_PASSWORD"
# The broker folder's bridge.env (`gridvend provision broker`) sets these for a systemd unit.
ENV_BROKER_USERNAME = "GRIDVEND_BROKER_USERNAME"
ENV_BROKER_CA_FILE = "GRIDVEND_BROKER_CA_FILE"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bridge's options (also used by ``gridvend cloud bridge``)."""
    parser.add_argument(
        "--broker",
        default=None,
        help="mqtt://HOST:PORT or mqtts://HOST:PORT; a comma-separated list for a cluster "
        "(the first, then the others in turn when the link drops)",
    )
    parser.add_argument("--database", default=None, help="SQLAlchemy URL of the cloud database")
    parser.add_argument("--instance", default=None, help="instance folder (default ./instance)")
    parser.add_argument(
        "--client-id",
        default=None,
        help="MQTT client id, fixed across restarts (the broker keeps its session); default "
        "gridvend-bridge-HOST-XXXXXX from this host and the database, so two installations on "
        "one broker never share one. Several bridges of one installation need one each",
    )
    parser.add_argument(
        "--share",
        default=None,
        metavar="GROUP",
        help="subscribe as $share/GROUP/… (EMQX with shared_subscription_strategy = "
        "hash_clientid); by default every bridge receives every uplink",
    )
    parser.add_argument(
        "--member-timeout",
        type=float,
        default=6.0,
        metavar="S",
        help="a bridge silent this long is dead: the others take its collectors",
    )
    parser.add_argument(
        "--username", default=None, help=f"broker user name (or ${ENV_BROKER_USERNAME})"
    )
    parser.add_argument(
        "--password", default=None, help=f"broker password (or ${ENV_BROKER_PASSWORD})"
    )
    parser.add_argument(
        "--ca-file", default=None, help=f"CA certificate for mqtts:// (or ${ENV_BROKER_CA_FILE})"
    )
    parser.add_argument(
        "--retry-after", type=int, default=30, metavar="S", help="resend a command after S s"
    )
    parser.add_argument(
        "--command-poll", type=float, default=0.1, metavar="S", help="look for new commands"
    )
    parser.add_argument(
        "--lost-contact-every", type=float, default=30.0, metavar="S", help="lost-contact checks"
    )
    parser.add_argument(
        "--archive-every", type=float, default=3600.0, metavar="S", help="archival runs"
    )
    parser.add_argument(
        "--archive-dir", default=None, help="archive files (default INSTANCE/archive)"
    )
    parser.add_argument("--no-north", action="store_true", help="do not publish north topics")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])


def default_client_id(database_url: str) -> str:
    """``gridvend-bridge-HOST-XXXXXX``: this host and a digest of the database URL (without its
    password), so it is the same at every restart of this installation (the broker keeps its
    session) and differs between installations sharing a broker."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:40] or "host"
    safe = re.sub(r"://([^:/@]*):[^@]*@", r"://\1@", database_url)
    digest = hashlib.sha256(safe.encode()).hexdigest()[:6]
    return f"gridvend-bridge-{host}-{digest}"


def settings_from(args: argparse.Namespace, database_url: str = "") -> Any:
    from cloud.bridge.worker import BridgeSettings

    for name in (
        "retry_after",
        "command_poll",
        "lost_contact_every",
        "archive_every",
        "member_timeout",
    ):
        if getattr(args, name) <= 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be more than 0")
    urls = [
        u.strip() for u in (args.broker or os.environ.get(ENV_BROKER) or DEFAULT_URL).split(",")
    ]
    urls = [u for u in urls if u]
    client_id = args.client_id or default_client_id(database_url)
    if not CLIENT_ID.fullmatch(client_id):
        raise SystemExit(
            f"--client-id {client_id!r}: use 1-100 of A-Z a-z 0-9 . _ - (it is a topic level)"
        )
    broker = Broker(
        url=urls[0],
        username=args.username or os.environ.get(ENV_BROKER_USERNAME),
        password=args.password or os.environ.get(ENV_BROKER_PASSWORD),
        ca_file=args.ca_file or os.environ.get(ENV_BROKER_CA_FILE),
    )
    for url in urls[1:]:
        Broker(url=url).endpoint()  # a bad failover URL is refused at start-up, named
    return BridgeSettings(
        broker=broker,
        client_id=client_id,
        failover_urls=urls[1:],
        share_group=args.share,
        member_timeout_s=args.member_timeout,
        retry_after_s=args.retry_after,
        command_poll_s=args.command_poll,
        lost_contact_every_s=args.lost_contact_every,
        archive_every_s=args.archive_every,
        publish_north=not args.no_north,
    )


def run(args: argparse.Namespace) -> int:
    """Run the bridge with parsed options until a signal; 0 on a clean stop."""
    from cloud import db as cloud_db
    from cloud.bridge.worker import Bridge
    from shared import logs

    logs.setup(args.log_level)
    try:
        url = cloud_db.resolve_url(args.database, args.instance)
        settings = settings_from(args, url)
        database = cloud_db.Database(url)
    except (BrokerError, cloud_db.DatabaseConfigError) as exc:
        print(f"gridvend cloud bridge: {exc}", file=sys.stderr)
        return 2
    if cloud_db.current_revision(database.engine) is None:
        print(
            f"gridvend cloud bridge: the database {url} has no schema; "
            "run `gridvend cloud init-db` first",
            file=sys.stderr,
        )
        return 2
    try:
        bridge = Bridge(database, settings, archiver=_archiver(args))
    except BrokerError as exc:
        print(f"gridvend cloud bridge: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum: int, frame: Any) -> None:
        bridge.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    try:
        twin = bridge.membership.twin(settings.member_timeout_s * 2)
        if twin is not None:
            print(
                f"gridvend cloud bridge: another bridge ({twin}) is running with client id "
                f"{settings.client_id!r}; the broker would cut one off for the other. Give "
                "each bridge its own --client-id",
                file=sys.stderr,
            )
            return 2
        if threading.current_thread() is threading.main_thread():
            # What start-up loaded lives as long as the process: out of the collector's reach,
            # as ``gridvend cloud serve`` does (a full collection walking it took ~100 ms).
            import gc

            gc.freeze()
        bridge.run()
    finally:
        database.dispose()
    return 0


def _archiver(args: argparse.Namespace) -> Any:
    """The cloud-core archival job (F03): daily rollups, then old raw readings exported."""
    from cloud.reporting import archive

    out_dir = args.archive_dir
    if out_dir is None and args.instance is not None:
        out_dir = os.path.join(args.instance, "archive")

    def job(database: Any, now: int) -> Any:
        return archive.job(database, now, out_dir=out_dir)

    return job


def main(argv: list[str], prog: str = "gridvend cloud bridge") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
