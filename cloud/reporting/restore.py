"""The archive, seen from the office (F03): the archival runs (when, up to which cut-off, how
many readings and how much of the charges moved out, where the file is, whether it is still
there and intact), and an archived month read back from the files for a report.

Reading back never writes to the database: the readings of the month are streamed from the
run's gzip file (CSV or JSON Lines, as ``archive._write`` wrote it; the SHA-256 is checked
first, so a damaged or replaced file is refused), and each meter's days are recomputed with the
rollups' own arithmetic (``archive.day_figures``) and set beside the rollups the database kept,
so the office sees that the figures a report shows for an archived month are the readings'.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.access.scope import EVERYTHING, Scope
from cloud.errors import ConflictError, NotFoundError
from cloud.localtime import day_bounds, local_day, site_zone
from cloud.models import ArchiveRun, DailyRollup, Meter
from cloud.reporting import archive, bands, filters

_NAME = re.compile(
    r"readings-(?P<site>.+)-(?P<first>\d{4}-\d{2}-\d{2})-(?P<last>\d{4}-\d{2}-\d{2})-\d+\.(csv|jsonl)\.gz$"
)
_INTS = ("id", "reading_id", "ts", "energy_wh", "power_w", "charge_micro_yuan",
         "balance_micro_yuan", "credits_micro_yuan", "refunds_micro_yuan", "charges_micro_yuan",
         "received_ts")  # fmt: skip
_JSON = ("band_energy_wh", "voltages_dv", "currents_ma")


def span(run: ArchiveRun) -> tuple[str, dt.date, dt.date] | None:
    """(site, first day, last day) of a run, from its file name."""
    found = _NAME.search(os.path.basename(run.path))
    if found is None:
        return None
    return (
        found.group("site"),
        dt.date.fromisoformat(found.group("first")),
        dt.date.fromisoformat(found.group("last")),
    )


def sha256_of(path: str) -> str | None:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None


def runs(session: Session, *, check: bool = False) -> list[dict[str, Any]]:
    """Every archival run, newest first; ``check`` re-reads each file's SHA-256."""
    out = []
    for run in session.scalars(
        select(ArchiveRun).order_by(ArchiveRun.created_ts.desc(), ArchiveRun.id.desc())
    ):
        found = span(run)
        present = os.path.exists(run.path)
        out.append(
            {
                "id": run.id,
                "created_ts": run.created_ts,
                "cutoff_ts": run.cutoff_ts,
                "path": run.path,
                "format": run.format,
                "rows": run.rows,
                "charges_micro_yuan": run.charges_micro_yuan,
                "sha256": run.sha256,
                "site": found[0] if found else "",
                "first_day": found[1].isoformat() if found else "",
                "last_day": found[2].isoformat() if found else "",
                "present": present,
                "size": os.path.getsize(run.path) if present else None,
                "intact": (sha256_of(run.path) == run.sha256) if check and present else None,
            }
        )
    return out


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in _INTS:
        value = out.get(name)
        out[name] = int(value) if value not in (None, "") else None
    for name in _JSON:
        value = out.get(name)
        out[name] = json.loads(value) if isinstance(value, str) and value else (value or None)
    out["relay"] = out.get("relay") or None
    return out


def read_back(run: ArchiveRun) -> Iterator[dict[str, Any]]:
    """The readings of a run's file, typed as the database held them (the file's SHA-256 is
    checked first: ``ConflictError`` when it was damaged, ``NotFoundError`` when gone)."""
    actual = sha256_of(run.path)
    if actual is None:
        raise NotFoundError(f"archive file {run.path} is not there", "run")
    if actual != run.sha256:
        raise ConflictError(
            f"archive file {run.path} is damaged or was replaced: its SHA-256 is {actual}, "
            f"the run recorded {run.sha256}",
            "run",
        )
    with gzip.open(run.path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        if run.format == "csv":
            for row in csv.DictReader(text):
                yield _typed(row)
        else:
            for line in text:
                if line.strip():
                    yield _typed(json.loads(line))


def covering(
    session: Session, site_id: str | None, first: dt.date, last: dt.date
) -> list[ArchiveRun]:
    """The runs whose files hold readings of local days ``first..last`` (of the site)."""
    out = []
    for run in session.scalars(select(ArchiveRun).order_by(ArchiveRun.id)):
        found = span(run)
        if found is None or (site_id is not None and found[0] != site_id):
            continue
        if found[1] <= last and found[2] >= first:
            out.append(run)
    return out


def month_readings(
    session: Session, month: dt.date, *, site_id: str | None = None, scope: Scope = EVERYTHING
) -> Iterator[dict[str, Any]]:
    """The archived readings of a local month, read back from the files, of meters in scope."""
    site, tz = site_zone(session, site_id)
    first, last = month.replace(day=1), filters.month_end(month.replace(day=1))
    t0, _ = day_bounds(first, tz)
    _, t1 = day_bounds(last, tz)
    allowed = set(session.scalars(filters.meter_ids(scope, site)))
    for run in covering(session, site, first, last):
        for row in read_back(run):
            if t0 <= (row["ts"] or 0) < t1 and row["meter_id"] in allowed:
                yield row


def month(
    session: Session, month_first: dt.date, *, site_id: str | None = None, scope: Scope = EVERYTHING
) -> dict[str, Any]:
    """An archived month restored for a report: per meter and day the figures recomputed from
    the archive files beside the rollups kept, and whether they agree."""
    site, tz = site_zone(session, site_id)
    first, last = month_first.replace(day=1), filters.month_end(month_first.replace(day=1))
    found_runs = covering(session, site, first, last)
    series: dict[str, dict[dt.date, list[tuple[int, int | None, int, int | None]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    count = 0
    for row in month_readings(session, first, site_id=site, scope=scope):
        day = local_day(row["ts"], tz)
        series[row["meter_id"]][day].append(
            (row["ts"], row["energy_wh"], row["charge_micro_yuan"] or 0, row["power_w"])
        )
        count += 1
    meters = list(session.scalars(select(Meter).where(Meter.id.in_(list(series)))))
    t0, _ = day_bounds(first, tz)
    _, t1 = day_bounds(last, tz)
    rater = bands.Rater(session, meters, tz, (t0, t1))
    rolled = {
        (r.meter_id, r.day): r
        for r in session.scalars(
            select(DailyRollup).where(
                DailyRollup.meter_id.in_(list(series)),
                DailyRollup.day >= first,
                DailyRollup.day <= last,
            )
        )
    }
    rows = []
    for meter_id in sorted(series):
        previous: tuple[int, int] | None = None
        for day in sorted(series[meter_id]):
            readings = sorted(series[meter_id][day])
            if previous is None:  # the counter before: the rollup of the day before
                prior = session.scalars(
                    select(DailyRollup).where(
                        DailyRollup.meter_id == meter_id,
                        DailyRollup.day == day - dt.timedelta(days=1),
                    )
                ).first()
                if prior is not None and prior.last_energy_wh is not None:
                    when = prior.last_reading_ts or day_bounds(day, tz)[0]
                    previous = (when, prior.last_energy_wh)
            figures = archive.day_figures(previous, readings, rater.timeline(meter_id))
            kept = rolled.get((meter_id, day))
            rows.append(
                {
                    "meter": meter_id,
                    "day": day,
                    "readings": figures["readings"],
                    "energy_wh": figures["energy_wh"],
                    "charge_micro_yuan": figures["charge_micro_yuan"],
                    "rollup_energy_wh": kept.energy_wh if kept is not None else None,
                    "rollup_charge_micro_yuan": kept.charge_micro_yuan
                    if kept is not None
                    else None,
                    "agrees": kept is not None
                    and kept.energy_wh == figures["energy_wh"]
                    and kept.charge_micro_yuan == figures["charge_micro_yuan"],
                }
            )
            last_counter = figures["last_energy_wh"]
            if last_counter is not None:
                previous = (figures["last_reading_ts"], last_counter)
    return {
        "site": site,
        "month": f"{first.year:04d}-{first.month:02d}",
        "runs": [{"id": r.id, "path": r.path, "rows": r.rows} for r in found_runs],
        "readings": count,
        "rows": rows,
        "energy_wh": sum(r["energy_wh"] for r in rows),
        "charge_micro_yuan": sum(r["charge_micro_yuan"] for r in rows),
        "agrees": all(r["agrees"] for r in rows),
    }
