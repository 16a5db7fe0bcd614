"""Daily rollups and archival of raw readings (F03).

``rollup_day`` sums one local day per meter (energy, charges, readings, peak power) into
``daily_rollups``; ``rollup_recent`` does the last complete days of every site (the bridge runs
it periodically). ``archive_readings`` moves raw readings older than N days (``SiteDefaults.
archive_after_days``, or the argument) out of the database: their days are rolled up first,
the rows are written to a gzip CSV or JSON Lines file (fsynced, then renamed into place), the
meters' ``archived_charges_micro_yuan`` take their charges so the ledger identity still adds up
(``cloud.money.ledger.recompute``), and exactly the exported rows are deleted, in one transaction.

Energy of a day = the counter's last value that day − its last value before the day (or − the
first value of the day when there is none before, or when the counter went backwards); charges
are the exact sum the edge reported.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import zoneinfo
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cloud.errors import InvalidError
from cloud.localtime import day_bounds, local_day
from cloud.models import (
    ArchiveRun,
    DailyRollup,
    Floor,
    Gateway,
    Meter,
    PlaceRollup,
    Reading,
    Site,
    SiteDefaults,
    Unit,
    now_ts,
)
from cloud.reporting import bands
from shared.codec import readings

FORMATS = ("csv", "jsonl")
# A reading's fields are shared/codec/readings.py's; the archive adds where it came from.
COLUMNS = (
    "id",
    "gateway_id",
    "reading_id",
    "meter_id",
    *readings.REPORTED,
    *readings.MONEY,
    "received_ts",
)
_DELETE_CHUNK = 500


def compute_day(
    session: Session,
    meter_ids: list[str],
    day: dt.date,
    zone: dt.tzinfo,
    rater: bands.Rater | None = None,
) -> dict[str, dict[str, Any]]:
    """One local day's figures per meter, from the raw readings (meters without readings that
    day are absent); see ``day_figures``. ``rater`` holds the meters' rating timelines (built
    here when not given)."""
    if not meter_ids:
        return {}
    t0, t1 = day_bounds(day, zone)
    series: dict[str, list[tuple[int, int | None, int, int | None]]] = {}
    for meter_id, ts, energy, charge, power in session.execute(
        select(
            Reading.meter_id,
            Reading.ts,
            Reading.energy_wh,
            Reading.charge_micro_yuan,
            Reading.power_w,
        )
        .where(Reading.meter_id.in_(meter_ids), Reading.ts >= t0, Reading.ts < t1)
        .order_by(Reading.meter_id, Reading.ts, Reading.id)
    ):
        series.setdefault(meter_id, []).append((ts, energy, charge, power))
    if not series:
        return {}
    present = list(series)
    before = _before(session, present, day, t0)
    if rater is None:
        rater = bands.Rater(
            session, session.scalars(select(Meter).where(Meter.id.in_(present))), zone, (t0, t1)
        )
    return {m: day_figures(before.get(m), rows, rater.timeline(m)) for m, rows in series.items()}


def day_figures(
    previous: tuple[int, int] | None,
    readings: list[tuple[int, int | None, int, int | None]],
    timeline: Any,
) -> dict[str, Any]:
    """One meter's day from its readings in time order, ``(ts, energy_wh, charge, power_w)``,
    and ``previous`` = (ts, counter) at the end of the day before (or None). The same
    arithmetic for the database's readings and for readings read back from an archive file.

    Energy = the last counter − the counter before the day (− the day's first counter when
    there is none before, or when the counter went back); charges = the exact sum the edge
    reported; by band as ``bands.split_readings``."""
    counters = [r[1] for r in readings if r[1] is not None]
    powers = [r[3] for r in readings if r[3] is not None]
    first = min(counters) if counters else None
    last = max(counters) if counters else None
    energy = 0
    if last is not None:
        prev_e = previous[1] if previous is not None else None
        base = prev_e if prev_e is not None and prev_e <= (first or 0) else first
        energy = max(0, last - (base if base is not None else last))
    split = bands.split_readings(timeline, previous, [(r[0], r[1], r[2]) for r in readings])
    return {
        "energy_wh": energy,
        "charge_micro_yuan": sum(int(r[2]) for r in readings),
        "readings": len(readings),
        "max_power_w": max(powers) if powers else None,
        "first_energy_wh": first,
        "last_energy_wh": last,
        "last_reading_ts": readings[-1][0] if readings else None,
        **bands.columns(split),
    }


def _before(
    session: Session, meter_ids: list[str], day: dt.date, t0: int
) -> dict[str, tuple[int, int]]:
    """(ts, counter) at the end of the day before, per meter: that day's rollup, else the last
    reading before (one indexed lookup per meter, newest first). A rollup written before its
    last reading's time was kept (migration 0011) dates the counter at midnight."""
    out: dict[str, tuple[int, int]] = {}
    for r in session.scalars(
        select(DailyRollup).where(
            DailyRollup.meter_id.in_(meter_ids), DailyRollup.day == day - dt.timedelta(days=1)
        )
    ):
        if r.last_energy_wh is not None:
            out[r.meter_id] = (r.last_reading_ts or t0, r.last_energy_wh)
    for meter_id in meter_ids:
        if meter_id not in out:
            found = session.execute(
                select(Reading.ts, Reading.energy_wh)
                .where(Reading.meter_id == meter_id, Reading.ts < t0)
                .order_by(Reading.ts.desc(), Reading.id.desc())
                .limit(1)
            ).first()
            if found is not None and found[1] is not None:
                out[meter_id] = (int(found[0]), int(found[1]))
    return out


def _site_meters(session: Session, site_id: str) -> list[str]:
    return list(
        session.scalars(
            select(Meter.id)
            .join(Gateway, Meter.gateway_id == Gateway.id)
            .where(Gateway.site_id == site_id)
            .order_by(Meter.id)
        )
    )


def rollup_day(session: Session, site_id: str, day: dt.date, now: int | None = None) -> int:
    """Write (or rewrite) the rollups of one local day for every meter of a site."""
    site = session.get(Site, site_id)
    if site is None:
        raise InvalidError(f"site {site_id!r} does not exist", "site")
    zone = zoneinfo.ZoneInfo(site.timezone)
    figures = compute_day(session, _site_meters(session, site_id), day, zone)
    existing = {
        r.meter_id: r
        for r in session.scalars(
            select(DailyRollup).where(
                DailyRollup.meter_id.in_(list(figures)), DailyRollup.day == day
            )
        )
    }
    stamp = now if now is not None else now_ts()
    for meter_id, values in figures.items():
        row = existing.get(meter_id)
        if row is None:
            row = DailyRollup(meter_id=meter_id, day=day)
            session.add(row)
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_ts = stamp
    session.flush()
    rollup_places(session, site_id, day, stamp)
    return len(figures)


PLACE_SUMS = ("readings", "energy_wh", "charge_micro_yuan", *bands.columns(bands.empty()))


def rollup_places(session: Session, site_id: str, day: dt.date, now: int) -> None:
    """Rewrite a site's per-building totals of one day (``place_rollups``) from its meter
    rollups, by the building each meter is in (0: in no building)."""
    building = func.coalesce(Floor.building_id, 0)
    rows = session.execute(
        select(building, func.count(), *(func.sum(getattr(DailyRollup, n)) for n in PLACE_SUMS))
        .select_from(DailyRollup)
        .join(Meter, Meter.id == DailyRollup.meter_id)
        .join(Gateway, Gateway.id == Meter.gateway_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .outerjoin(Floor, Floor.id == Unit.floor_id)
        .where(Gateway.site_id == site_id, DailyRollup.day == day)
        .group_by(building)
    ).all()
    session.execute(
        delete(PlaceRollup).where(PlaceRollup.site_id == site_id, PlaceRollup.day == day)
    )
    for row in rows:
        values = dict(zip(PLACE_SUMS, (int(v or 0) for v in row[2:]), strict=True))
        session.add(
            PlaceRollup(
                site_id=site_id, day=day, building_id=int(row[0]), meters=int(row[1]),
                updated_ts=now, **values,
            )
        )  # fmt: skip
    session.flush()


def rollup_recent(session: Session, now: int | None = None, days: int = 2) -> int:
    """Roll up the last ``days`` complete local days of every site; returns rows written."""
    stamp = now if now is not None else now_ts()
    written = 0
    for site in session.scalars(select(Site)):
        today = local_day(stamp, zoneinfo.ZoneInfo(site.timezone))
        for back in range(days, 0, -1):
            written += rollup_day(session, site.id, today - dt.timedelta(days=back), stamp)
    return written


def _row(reading: Reading) -> dict[str, Any]:
    return {name: getattr(reading, name) for name in COLUMNS}


def _write(path: Path, fmt: str, rows: list[dict[str, Any]]) -> str:
    """Write rows to a gzip file (temp name, fsync, rename); returns the SHA-256 of the file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="")
            if fmt == "csv":
                writer = csv.writer(text)
                writer.writerow(COLUMNS)
                for row in rows:
                    writer.writerow(
                        json.dumps(row[c]) if isinstance(row[c], (dict, list)) else row[c]
                        for c in COLUMNS
                    )
            else:
                for row in rows:
                    text.write(json.dumps(row, separators=(",", ":")) + "\n")
            text.flush()
            text.detach()
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _batch_end(
    session: Session, meter_ids: list[str], cutoff: int, max_rows: int, zone: dt.tzinfo
) -> int | None:
    """Where this run stops: ``cutoff``, or earlier at a local midnight so that about
    ``max_rows`` readings go and no day is split between runs (its rollup is written from all
    its readings, before they leave). None when nothing is older than ``cutoff``."""
    stamps = list(
        session.scalars(
            select(Reading.ts)
            .where(Reading.meter_id.in_(meter_ids), Reading.ts < cutoff)
            .order_by(Reading.ts)
            .limit(max_rows + 1)
        )
    )
    if not stamps:
        return None
    if len(stamps) <= max_rows:
        return cutoff
    first_day = local_day(stamps[0], zone)
    last_day = local_day(stamps[max_rows - 1], zone)
    if last_day == first_day:  # one day holds more than max_rows: take that whole day
        return min(cutoff, day_bounds(first_day, zone)[1])
    return day_bounds(last_day, zone)[0]


def archive_readings(
    session: Session,
    out_dir: str | os.PathLike[str],
    *,
    now: int | None = None,
    keep_days: int | None = None,
    fmt: str = "csv",
    max_rows: int = 200_000,
) -> list[ArchiveRun]:
    """Export and remove raw readings older than ``keep_days`` local days (per site; default
    ``SiteDefaults.archive_after_days``), at most ``max_rows`` per site per call (the periodic
    job catches up over several runs). Returns the runs made (none when nothing is old)."""
    if fmt not in FORMATS:
        raise InvalidError(f"format must be csv or jsonl; got {fmt!r}", "format")
    if keep_days is not None and keep_days < 1:
        raise InvalidError("keep_days must be at least 1", "keep_days")
    stamp = now if now is not None else now_ts()
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    runs: list[ArchiveRun] = []
    for site in list(session.scalars(select(Site).order_by(Site.id))):
        zone = zoneinfo.ZoneInfo(site.timezone)
        defaults = session.get(SiteDefaults, site.id)
        keep = keep_days or (defaults.archive_after_days if defaults else 90)
        cutoff_day = local_day(stamp, zone) - dt.timedelta(days=keep)
        cutoff, _ = day_bounds(cutoff_day, zone)
        meter_ids = _site_meters(session, site.id)
        if not meter_ids:
            continue
        upto = _batch_end(session, meter_ids, cutoff, max_rows, zone)
        if upto is None:
            continue
        old = list(
            session.scalars(
                select(Reading)
                .where(Reading.meter_id.in_(meter_ids), Reading.ts < upto)
                .order_by(Reading.id)
            )
        )
        # Roll up every day that loses its raw readings, before they go.
        first_day = local_day(min(r.ts for r in old), zone)
        last_day = local_day(max(r.ts for r in old), zone)
        day = first_day
        while day <= last_day:
            rollup_day(session, site.id, day, stamp)
            day += dt.timedelta(days=1)
        rows = [_row(r) for r in old]
        name = f"readings-{site.id}-{first_day.isoformat()}-{last_day.isoformat()}-{stamp}"
        path = folder / f"{name}.{'csv' if fmt == 'csv' else 'jsonl'}.gz"
        digest = _write(path, fmt, rows)
        charges: dict[str, int] = {}
        for r in rows:
            charges[r["meter_id"]] = charges.get(r["meter_id"], 0) + r["charge_micro_yuan"]
        # Locked in id order, as ingest locks them (cloud/uplink/batch.py): no deadlock.
        for meter in session.scalars(
            select(Meter).where(Meter.id.in_(sorted(charges))).order_by(Meter.id).with_for_update()
        ):
            meter.archived_charges_micro_yuan += charges[meter.id]
        ids = [r["id"] for r in rows]
        for i in range(0, len(ids), _DELETE_CHUNK):
            session.execute(
                delete(Reading)
                .where(Reading.id.in_(ids[i : i + _DELETE_CHUNK]))
                .execution_options(synchronize_session=False)
            )
        run = ArchiveRun(
            created_ts=stamp,
            cutoff_ts=cutoff,
            path=str(path),
            format=fmt,
            rows=len(rows),
            charges_micro_yuan=sum(charges.values()),
            sha256=digest,
        )
        session.add(run)
        session.flush()
        runs.append(run)
    return runs


ENV_ARCHIVE_DIR = "GRIDVEND_ARCHIVE_DIR"


def job(
    db: Any,
    now: int | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    keep_days: int | None = None,
    fmt: str = "csv",
) -> dict[str, Any]:
    """The periodic archival job (the bridge calls ``job(db, now)``): roll up the last
    complete days, then archive old readings, in one transaction. Files go to ``out_dir``,
    else ``$GRIDVEND_ARCHIVE_DIR``, else ``instance/archive``."""
    stamp = now if now is not None else now_ts()
    folder = out_dir or os.environ.get(ENV_ARCHIVE_DIR) or os.path.join("instance", "archive")
    with db.session() as s:
        rollups = rollup_recent(s, stamp)
        runs = archive_readings(s, folder, now=stamp, keep_days=keep_days, fmt=fmt)
        done = [
            {
                "path": r.path,
                "rows": r.rows,
                "charges_micro_yuan": r.charges_micro_yuan,
                "sha256": r.sha256,
            }
            for r in runs
        ]
    return {"rollups": rollups, "runs": done}
