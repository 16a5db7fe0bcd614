"""The payment jobs, on a schedule (``gridvend cloud payments run``; ``make demo`` starts it):

* every ``every_s`` (60 s): ``Payments.advance`` follows crediting and failed orders to their
  sale's outcome (credited, retried, held), so an order is credited even when nobody watches
  its result page; ``Payments.query_stuck`` asks the provider about orders still ``created``
  after ``stuck_after_s`` (never guessing) and closes long-unpaid ones;
* once a day, from ``reconcile_at`` (Beijing time, 10:30 by default: both providers publish the
  previous day's bill by 10:00), the reconciliation of the previous Beijing day for every
  provider (``reconciliation.reconcile``). A day already reconciled is not run again (the
  office page can re-run one); a bill not published yet is tried again every
  ``bill_retry_s``. The sandbox plays its provider's part first: it publishes the day's bill
  file, as Alipay and WeChat do on their side.

Each round is independent: an error in one job is logged and the next round runs.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cloud.db import Database
from cloud.errors import ServiceError
from cloud.models.payments import ReconciliationRun
from cloud.payments import reconciliation
from cloud.payments.amounts import yuan_text
from cloud.payments.orders import Payments
from cloud.payments.sandbox import SandboxProvider

log = logging.getLogger("gridvend.payments.jobs")
BEIJING = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Schedule:
    every_s: float = 60.0
    stuck_after_s: int = 5 * 60
    close_after_s: int = 2 * 3600
    reconcile_at: dt.time = dt.time(10, 30)
    bill_retry_s: float = 30 * 60
    stale_after_s: float = 30 * 60  # paid, not credited for this long: a case


@dataclass
class Round:
    """What one round did (for the log and the tests)."""

    advanced: int = 0
    queried: int = 0
    reconciled: list[reconciliation.Summary] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def previous_day(now: float) -> dt.date:
    """Yesterday in Beijing (the providers' bill day)."""
    return dt.datetime.fromtimestamp(now, BEIJING).date() - dt.timedelta(days=1)


def reconcile_day(
    db: Database,
    payments: Payments,
    name: str,
    day: dt.date,
    stale_after_s: float = 30 * 60,
) -> reconciliation.Summary:
    """Reconcile provider ``name`` for ``day`` now (a re-run replaces the day's run). Orders are
    first followed to their sales' outcome (``advance``), so an order the meter credited is not
    reported as paid-but-not-credited; the sandbox then publishes its bill for the day, as a
    real provider does on its side."""
    provider = payments.provider(name)
    payments.advance()
    if isinstance(provider, SandboxProvider):
        provider.bank.write_bill(day)
    return reconciliation.reconcile(
        db, name, provider, day, clock=payments.clock, stale_after_s=stale_after_s
    )


class Jobs:
    """The schedule over one cloud's payments (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        payments: Payments,
        schedule: Schedule | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.db = db
        self.payments = payments
        self.schedule = schedule or Schedule()
        self.clock = clock or payments.clock
        self._bill_tried: dict[tuple[str, dt.date], float] = {}

    def _done(self, name: str, day: dt.date) -> bool:
        with self.db.session(readonly=True) as s:
            found = s.scalar(
                select(ReconciliationRun.id).where(
                    ReconciliationRun.provider == name,
                    ReconciliationRun.bill_date == day.isoformat(),
                )
            )
        return found is not None

    def due_reconciliations(self, now: float) -> list[tuple[str, dt.date]]:
        """(provider, day) pairs to reconcile now: the previous day, after ``reconcile_at``,
        not done yet, not tried within ``bill_retry_s``."""
        local = dt.datetime.fromtimestamp(now, BEIJING)
        if local.time() < self.schedule.reconcile_at:
            return []
        day = previous_day(now)
        due = []
        for name in self.payments.providers:
            tried = self._bill_tried.get((name, day))
            if tried is not None and now - tried < self.schedule.bill_retry_s:
                continue
            if not self._done(name, day):
                due.append((name, day))
        return due

    def tick(self) -> Round:
        """One round of every job."""
        out = Round()
        try:
            out.advanced = self.payments.advance()
        except Exception as exc:  # a round never stops the schedule
            log.exception("payments: advancing orders failed")
            out.errors.append(f"advance: {exc}")
        try:
            out.queried = self.payments.query_stuck(
                self.schedule.stuck_after_s, self.schedule.close_after_s
            )
        except Exception as exc:
            log.exception("payments: querying stuck orders failed")
            out.errors.append(f"query_stuck: {exc}")
        now = self.clock()
        for name, day in self.due_reconciliations(now):
            self._bill_tried[(name, day)] = now
            try:
                summary = reconcile_day(
                    self.db, self.payments, name, day, self.schedule.stale_after_s
                )
            except ServiceError as exc:
                log.warning("payments: reconciliation of %s %s not done: %s", name, day, exc)
                out.errors.append(f"reconcile {name} {day}: {exc.message}")
                continue
            except Exception as exc:
                log.exception("payments: reconciliation of %s %s failed", name, day)
                out.errors.append(f"reconcile {name} {day}: {exc}")
                continue
            log.info("payments: %s", summary_line(summary))
            out.reconciled.append(summary)
        return out

    def run(self, stop: threading.Event) -> None:
        """Rounds every ``every_s`` until ``stop`` is set."""
        while not stop.is_set():
            started = time.monotonic()
            self.tick()
            stop.wait(max(0.0, self.schedule.every_s - (time.monotonic() - started)))


def summary_line(s: reconciliation.Summary) -> str:
    """The daily summary in one line (the log, the command line)."""
    return (
        f"reconciled {s.provider} {s.bill_date}: bill {s.bill_rows} rows, paid "
        f"{yuan_text(s.bill_paid_fen)} yuan, refunded {yuan_text(s.bill_refunded_fen)} yuan; "
        f"{s.orders} orders; {s.cases} cases, {s.open_cases} open"
    )
