"""Import the park from spreadsheets (F11, F43): sites, collectors, units, meters.

Files: CSV (one kind per file), XLSX (one kind per sheet, any number of sheets), or the JSON
record ``gridvend provision gateway`` writes for the cloud (``<gateway>.cloud.json``: the
collector, its buses and meters). The kind of a table is told by its key column: ``meter_id``
→ meters, ``unit_no`` → units, ``gateway_id`` → collectors, ``site_id`` → sites. Tables are
applied in the order sites, collectors, units, meters, whatever order the files come in; an
existing id is updated.

All or nothing, in two passes. First every row is checked — each cell on its own
(``cloud.park.imports.rows``), then against the other rows and the database
(``cloud.park.imports.checks``: the same id twice naming both rows, an unknown collector, site,
unit, tariff or model, a bus the collector does not have, an address its model cannot have or
another meter has, thresholds a collector would refuse) — and every problem is listed by file,
row number (the header is row 1) and column, up to ``MAX_ERRORS``; while any remains nothing is
written (``ImportRejected``). Then the rows are written in bulk (``cloud.park.imports.writer``)
inside the caller's transaction. Money columns are in yuan (``alarm1_yuan``,
``price_yuan_per_kwh``, …), parsed exactly (decimal, at most 6 places). ``progress(phase, done,
total)`` is called as it goes (``gridvend cloud import`` shows it on the terminal).

Columns (``*`` required):

=========== ===================================================================================
sites       site_id*, name*, timezone (default Asia/Shanghai), and the site's defaults (F13)
            for meters without their own: price_yuan_per_kwh, alarm1_yuan, alarm2_yuan,
            hoarding_cap_yuan, overload_power_w
collectors  gateway_id*, site_id*, key_hex* (64 hex digits), key_id (default 1), name,
            mqtt_username, building, floor
units       site_id*, building*, floor*, unit_no*, name
meters      meter_id*, gateway_id*, bus*, address*, model*, name, unit_no, ct_ratio, pt_ratio,
            prepaid (yes/no), tariff_id, price_yuan_per_kwh, alarm1_yuan, alarm2_yuan,
            hoarding_cap_yuan, overload_power_w
=========== ===================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.errors import ServiceError
from cloud.park.imports import checks, rows, writer
from cloud.park.imports.checks import Item, Known
from cloud.park.imports.schema import COLUMNS, KINDS, RowError, Table
from cloud.park.imports.sheets import BUSES, IF_MISSING, read_tables

# The most problems one import lists (checking stops there): enough to fix a sheet in one go.
MAX_ERRORS = 500
SHOWN_IN_MESSAGE = 50
Progress = Callable[[str, int, int], None]


class ImportRejected(ServiceError):
    """The import had bad rows; nothing was imported (the caller rolls back)."""

    status = 422
    code = "import_rejected"

    def __init__(self, errors: list[RowError], stopped: bool = False) -> None:
        self.errors = errors
        self.stopped = stopped
        shown = "\n".join(f"  {e}" for e in errors[:SHOWN_IN_MESSAGE])
        more = ""
        if len(errors) > SHOWN_IN_MESSAGE:
            more = f"\n  … and {len(errors) - SHOWN_IN_MESSAGE} more"
        if stopped:
            more += (
                f"\n  (checking stopped after {MAX_ERRORS} problems; fix these and import again)"
            )
        super().__init__(
            f"{len(errors)} problem(s); nothing was imported:\n{shown}{more}", errors[0].column
        )


@dataclass
class Summary:
    """What an import did: rows applied per kind."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def __str__(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in self.counts.items())


def _quiet(phase: str, done: int, total: int) -> None:
    """No progress shown."""


def _items(tables: list[Table], kind: str, progress: Progress) -> list[Item]:
    """Every row of ``kind`` parsed on its own (all of a row's cell problems kept)."""
    out: list[Item] = []
    parse = rows.PARSERS[kind]
    total = sum(len(t.rows) for t in tables if t.kind == kind)
    if total:
        progress(f"checking {kind}", 0, total)
    for table in (t for t in tables if t.kind == kind):
        for number, values in table.rows:
            parsed, errors = parse(values)
            item = Item(kind, table.source, number, parsed, list(errors))
            item.if_missing = bool(values.get(IF_MISSING))
            item.buses = dict(values.get(BUSES) or {})
            out.append(item)
            if len(out) % 1000 == 0:
                progress(f"checking {kind}", len(out), total)
    return out


def _row_errors(items: list[Item]) -> list[RowError]:
    found = []
    for item in items:
        order = {c: i for i, c in enumerate([*COLUMNS[item.kind][0], *COLUMNS[item.kind][1]])}
        for e in sorted(item.errors, key=lambda e: order.get(e.column or "", -1)):
            found.append(RowError(item.source, item.row, e.column, e.message))
    return found


def check(
    session: Session, paths: list[str | Path], progress: Progress = _quiet
) -> tuple[dict[str, list[Item]], Known]:
    """Read and check every row (nothing written); ``ImportRejected`` lists the problems."""
    errors: list[RowError] = []
    tables = read_tables([Path(p) for p in paths], errors)
    known = Known.load(session)
    by_kind = {kind: _items(tables, kind, progress) for kind in KINDS}
    for kind in KINDS:
        checks.duplicates(by_kind[kind], kind)
    new_sites = {i.record["site_id"] for i in by_kind["sites"] if "site_id" in i.record}
    checks.sites(by_kind["sites"], known)
    checks.collectors(by_kind["collectors"], known, new_sites)
    checks.units(by_kind["units"], known, new_sites)
    new_units = {
        (i.record["site_id"], i.record["unit_no"])
        for i in by_kind["units"]
        if "site_id" in i.record and "unit_no" in i.record
    }
    new_defaults = {i.record["site_id"]: i.record["defaults"] for i in by_kind["sites"] if i.ok}
    checks.meters(by_kind["meters"], known, by_kind["collectors"], new_units, new_defaults)
    for kind in KINDS:
        errors.extend(_row_errors(by_kind[kind]))
    if errors:
        errors.sort(key=lambda e: (e.source, e.row))
        raise ImportRejected(errors[:MAX_ERRORS], stopped=len(errors) > MAX_ERRORS)
    return by_kind, known


def import_files(
    session: Session,
    paths: list[str | Path],
    actor: Actor,
    *,
    progress: Progress = _quiet,
) -> Summary:
    """Check every row of ``paths``, then apply them all in the caller's transaction. Raises
    ``ImportRejected`` listing the problems (nothing written; the caller rolls back)."""
    by_kind, known = check(session, paths, progress)
    summary = Summary()
    try:
        summary.counts["sites"] = writer.sites(session, by_kind["sites"], known)
        summary.counts["collectors"] = writer.collectors(session, by_kind["collectors"], known)
        progress("writing units", 0, len(by_kind["units"]))
        summary.counts["units"] = writer.units(session, by_kind["units"], known, progress)
        progress("writing meters", 0, len(by_kind["meters"]))
        summary.counts["meters"] = writer.meters(session, by_kind["meters"], known, progress)
    except ServiceError as exc:  # a rule the checks missed: still nothing is kept
        raise ImportRejected([RowError("import", 0, exc.field, exc.message)]) from None
    session.flush()
    session.expire_all()  # the bulk writes bypassed the ORM's copies
    record(
        session,
        actor,
        "import",
        "files",
        ",".join(Path(p).name for p in paths)[:64],
        after=dict(summary.counts),
    )
    progress("done", sum(summary.counts.values()), sum(summary.counts.values()))
    return summary
