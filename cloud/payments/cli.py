"""``gridvend cloud payments …``: the payment jobs (``cloud.payments.jobs``).

::

    gridvend cloud payments run [--every S] [--stuck-after S] [--reconcile-at HH:MM]
        the schedule until SIGINT/SIGTERM: follow orders, query stuck ones, reconcile the
        previous Beijing day once it is past --reconcile-at (make demo starts this)
    gridvend cloud payments reconcile [--provider NAME] [--day YYYY-MM-DD]
        reconcile one day now (default: yesterday, every provider) and print the summary
    gridvend cloud payments tick
        one round of the schedule, printed (for scripts)
    gridvend cloud payments refund OUT_TRADE_NO
        give a held (or failed) order's money back through its provider (staff)
    gridvend cloud payments retry OUT_TRADE_NO
        credit a held order again through the sale path, once the cause is gone (staff)

Providers: ``<instance>/payments.json``, else none (``cloud.payments.config``: the same as
``gridvend cloud serve`` uses; the demo's file asks for the sandbox).
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import threading
from typing import Any

from cloud import db as cloud_db
from cloud.audit import Actor
from cloud.errors import ServiceError
from cloud.payments import config, jobs
from shared import logs


def _time(text: str) -> dt.time:
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HH:MM, got {text!r}") from None


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="the payment jobs")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", default=None, help="SQLAlchemy URL of the cloud database")
    common.add_argument("--instance", default=None, help="instance folder (default ./instance)")
    common.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("run", parents=[common], help="run the schedule until stopped")
    p.add_argument("--every", type=_positive, default=60.0, metavar="S", help="a round every S s")
    p.add_argument(
        "--stuck-after", type=_positive, default=300.0, metavar="S",
        help="query orders still unpaid after S s",
    )  # fmt: skip
    p.add_argument(
        "--reconcile-at", type=_time, default=dt.time(10, 30), metavar="HH:MM",
        help="reconcile the previous day from this Beijing time (bills are out by 10:00)",
    )  # fmt: skip
    p = sub.add_parser("reconcile", parents=[common], help="reconcile one day now")
    p.add_argument("--provider", default=None, help="one provider (default: every one)")
    p.add_argument("--day", type=_day, default=None, help="YYYY-MM-DD (default: yesterday)")
    sub.add_parser("tick", parents=[common], help="one round of the schedule")
    for name, what in (("refund", "give a held order's money back through its provider"),
                       ("retry", "credit a held order again through the sale path")):  # fmt: skip
        p = sub.add_parser(name, parents=[common], help=what)
        p.add_argument("out_trade_no", help="the order's number (GV…)")
    return parser


def _open(args: argparse.Namespace) -> tuple[cloud_db.Database, Any]:
    url = cloud_db.resolve_url(args.database, args.instance)
    database = cloud_db.Database(url)
    if cloud_db.current_revision(database.engine) is None:
        database.dispose()
        raise SystemExit(f"the database {url} has no schema yet; run `gridvend cloud init-db`")
    return database, config.payments(database, config.settings(args.instance))


def main(argv: list[str], prog: str = "gridvend cloud payments") -> int:
    args = build_parser(prog).parse_args(argv)
    logs.setup(args.log_level)
    try:
        database, payments = _open(args)
    except ServiceError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return 2
    try:
        if args.command == "reconcile":
            return _reconcile(args, database, payments, prog)
        if args.command in ("refund", "retry"):
            return _staff(args, payments, prog)
        schedule = jobs.Schedule(
            every_s=getattr(args, "every", 60.0),
            stuck_after_s=int(getattr(args, "stuck_after", 300)),
            reconcile_at=getattr(args, "reconcile_at", dt.time(10, 30)),
        )
        runner = jobs.Jobs(database, payments, schedule)
        if args.command == "tick":
            done = runner.tick()
            print(
                f"advanced {done.advanced}, queried {done.queried}, "
                f"reconciled {len(done.reconciled)}, errors {len(done.errors)}"
            )
            for summary in done.reconciled:
                print(jobs.summary_line(summary))
            return 1 if done.errors else 0
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print(
            f"gridvend payments jobs: every {schedule.every_s:g} s, providers "
            f"{', '.join(payments.providers)}; reconciling from {schedule.reconcile_at:%H:%M} "
            "Beijing time (Ctrl-C stops)",
            flush=True,
        )
        runner.run(stop)
        return 0
    finally:
        database.dispose()


def _staff(args: argparse.Namespace, payments: Any, prog: str) -> int:
    """``refund`` / ``retry`` of one order, audited as the command line's."""
    act = payments.refund if args.command == "refund" else payments.retry
    try:
        order = act(args.out_trade_no, Actor("cli:payments"))
    except ServiceError as exc:
        print(f"{prog} {args.command}: {exc.message}", file=sys.stderr)
        return 1
    print(f"order {order.out_trade_no}: {order.state} (attempts {order.attempts}, "
          f"refunded {order.refunded_fen} fen)")  # fmt: skip
    return 0


def _reconcile(args: argparse.Namespace, database: Any, payments: Any, prog: str) -> int:
    day = args.day or jobs.previous_day(payments.clock())
    names = [args.provider] if args.provider else list(payments.providers)
    status = 0
    for name in names:
        try:
            summary = jobs.reconcile_day(database, payments, name, day)
        except ServiceError as exc:
            print(f"{prog}: {name} {day}: {exc.message}", file=sys.stderr)
            status = 1
            continue
        print(jobs.summary_line(summary))
    return status
