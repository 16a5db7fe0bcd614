"""After a scale run: did every reading arrive exactly once, does every meter's ledger hold, and
is nothing left in flight? Compared against what the virtual collectors generated."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from cloud.control import lifecycle
from cloud.db import Database
from cloud.models import Command, Meter, Reading


def verify(db: Database, totals: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of what is wrong (all zero when the run was right), with the first examples."""
    expected = {t["gateway"]: t for t in totals}
    problems: dict[str, list[str]] = {
        "readings_missing_or_extra": [],
        "readings_duplicated": [],
        "meter_totals_differ": [],
        "ledger_identity_broken": [],
        "collectors_in_flight": [],
        "commands_open": [],
    }
    with db.session(readonly=True) as s:
        rows = s.execute(
            select(
                Reading.gateway_id,
                func.count(),
                func.count(func.distinct(Reading.reading_id)),
            ).group_by(Reading.gateway_id)
        ).all()
        counted = {gw: (n, distinct) for gw, n, distinct in rows}
        for gw, t in expected.items():
            n, distinct = counted.get(gw, (0, 0))
            if n != distinct:
                problems["readings_duplicated"].append(f"{gw}: {n} rows, {distinct} ids")
            if n != t["readings"]:
                problems["readings_missing_or_extra"].append(f"{gw}: {n} of {t['readings']}")
            if t["inflight"] or t["queued"]:
                problems["collectors_in_flight"].append(
                    f"{gw}: {t['inflight']} envelopes in flight, {t['queued']} queued"
                )
        meters = s.execute(
            select(
                Meter.id,
                Meter.gateway_id,
                Meter.balance_micro_yuan,
                Meter.credits_micro_yuan,
                Meter.refunds_micro_yuan,
                Meter.charges_micro_yuan,
            )
        ).all()
        for mid, gw, balance, credits, refunds, charges in meters:
            if balance != credits - refunds - charges:
                problems["ledger_identity_broken"].append(
                    f"{mid}: {balance} != {credits} - {refunds} - {charges}"
                )
            edge = expected.get(gw, {}).get("meters", {}).get(mid)
            if edge is not None and [credits, refunds, charges] != edge:
                problems["meter_totals_differ"].append(
                    f"{mid}: cloud {[credits, refunds, charges]} collector {edge}"
                )
        open_commands = s.execute(
            select(Command.id, Command.gateway_id, Command.op, Command.status).where(
                Command.status.in_(lifecycle.OPEN_STATUSES)
            )
        ).all()
        problems["commands_open"] = [
            f"{c.id} {c.gateway_id} {c.op} {c.status}" for c in open_commands
        ]
    return {
        "counts": {k: len(v) for k, v in problems.items()},
        "examples": {k: v[:5] for k, v in problems.items() if v},
        "readings_in_database": sum(n for n, _ in counted.values()),
        "readings_generated": sum(t["readings"] for t in totals),
    }
