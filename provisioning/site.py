"""``gridvend provision site SHEET``: one workbook to a whole site, in one step.

From the workbook (``provisioning.sheet``: the cloud's import template plus a buses sheet) it
makes, for every collector, a 256-bit key, a broker password and a bundle (edge.toml, key file,
CA certificate, checksums: ``provisioning.bundle``); it imports the sites, collectors (with
their keys), units and meters into the cloud through the cloud's own importer
(``cloud.park.imports.importer``, every row checked there); it adds the collectors to the
broker's password file and ACL (``provisioning.broker``) and makes the running broker reread
them (SIGHUP, no restart).

Nothing half-done: every check runs first (the cloud's, in a transaction that is not committed
yet, and the collector's: buses, addresses, models, edge.toml loading) and every problem is
reported by sheet, row and column. Only with none are the files staged under temporary names,
the database transaction committed, and the files renamed into place. A collector that already
has a bundle in ``out`` or a record in the cloud keeps its identity unless ``force`` is given
(a new key then replaces it on both sides).
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud import db as cloud_db
from cloud.audit import Actor
from cloud.db import Database
from cloud.models import Gateway, Site
from cloud.park.imports import importer
from cloud.park.imports.schema import RowError
from edge.config import ConfigError, key_file_text, parse
from provisioning import bundle, sheet
from provisioning.broker import BrokerDir, BrokerSetupError, commit, discard, new_password
from provisioning.gateway import ProvisionError, edge_toml
from shared.codec import envelope

ACTOR = Actor("cli:provision-site")
DEFAULT_ZONE = "Asia/Shanghai"


class SiteRejected(ProvisionError):
    """The workbook cannot be provisioned; ``errors`` lists every bad row. Nothing was
    written: no bundle, no cloud row, no broker file."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.source, e.row, e.column or ""))
        shown = "\n".join(f"  {e}" for e in self.errors[:100])
        more = f"\n  … and {len(self.errors) - 100} more" if len(self.errors) > 100 else ""
        super().__init__(f"{len(self.errors)} problem(s); nothing was provisioned:\n{shown}{more}")


@dataclass
class SiteResult:
    """What one run made."""

    bundles: dict[str, Path] = field(default_factory=dict)  # gateway -> bundle folder
    meters: int = 0
    imported: str = ""
    broker_reloaded: bool = False
    seconds: float = 0.0


@dataclass
class _Run:
    """One provisioning run's state: where it stages, its open transaction, the keys it made."""

    staging: Path
    session: Any
    out: Path
    url: str
    tls: bool
    force: bool
    keys: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    def key_for(self, gateway: str) -> tuple[int, str]:
        if gateway not in self.keys:
            # A collector the cloud knows gets its new key under the next key id (the cloud
            # refuses another key under an id it has: that is how a forged record would look).
            known = self.session.get(Gateway, gateway)
            key_id = (int(known.key_id) + 1) % 256 if known is not None else 1
            self.keys[gateway] = (key_id, secrets.token_bytes(envelope.KEY_BYTES))
        key_id, key = self.keys[gateway]
        return key_id, key.hex()

    def key_file(self, gateway: str) -> bytes:
        key_id, key = self.keys[gateway]
        return key_file_text({key_id: key}, key_id).encode()


def provision_site(
    workbook: Path,
    *,
    database: Database,
    broker_dir: BrokerDir,
    out: Path,
    broker_url: str | None = None,
    force: bool = False,
) -> SiteResult:
    """See the module docstring. Raises ``SiteRejected`` (every bad row) or ``ProvisionError``."""
    started = time.monotonic()
    workbook, out = Path(workbook), Path(out)
    if not workbook.is_file():
        raise ProvisionError(f"no such workbook: {workbook}")
    url = broker_url or broker_dir.client_url()
    tls = url.startswith("mqtts://")
    if tls and broker_dir.ca_file is None:
        raise ProvisionError(f"{url} is TLS but the broker folder has no CA (make it --tls-port)")
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(Path(tempfile.mkdtemp(prefix=".provision-", dir=out)), database.new_session(),
               out, url, tls, force)  # fmt: skip
    staged_broker: list[tuple[Path, Path]] = []
    try:
        book, summary = _checked(workbook, run)
        result = _stage(book, run, broker_dir)
        result.imported = summary
        staged_broker = broker_dir.prepare()
        run.session.commit()  # the point of no return: the cloud knows the keys now
        commit(staged_broker)
        staged_broker = []
        bundle.publish(run.staging / "bundles", out, list(book.collectors), replace=force)
        result.broker_reloaded = broker_dir.reload()
        result.seconds = time.monotonic() - started
        return result
    except BaseException:
        run.session.rollback()
        discard(staged_broker)
        raise
    finally:
        run.session.close()
        shutil.rmtree(run.staging, ignore_errors=True)


def _checked(workbook: Path, run: _Run) -> tuple[sheet.Workbook, str]:
    """Read the workbook and run every check, the cloud's import included (not committed)."""
    try:
        book = sheet.read(workbook, run.staging / "import", run.key_for)
    except ValueError as exc:
        raise ProvisionError(str(exc)) from None
    if any(e.row == 1 for e in book.errors):  # a sheet's columns are wrong: rows mean nothing
        raise SiteRejected(book.errors)
    sheet.check_meters(book)
    _check_identity(book, run.session, run.out, run.force)
    summary = ""
    try:
        summary = str(importer.import_files(run.session, [book.import_copy], ACTOR))
    except importer.ImportRejected as exc:
        book.errors.extend(exc.errors)
    if book.errors:
        raise SiteRejected(book.errors)
    return book, summary


def _stage(book: sheet.Workbook, run: _Run, broker_dir: BrokerDir) -> SiteResult:
    """Every collector's bundle into the staging folder, its password into ``broker_dir``."""
    result = SiteResult()
    for gw, collector in book.collectors.items():
        password = new_password()
        text = _edge_toml(book, collector, run.session, run.url, password, run.tls)
        files = {"edge.toml": (text.encode(), 0o600), f"{gw}.key": (run.key_file(gw), 0o600)}
        if run.tls and broker_dir.ca_file is not None:
            files["ca.crt"] = (broker_dir.ca_file.read_bytes(), 0o644)
        result.bundles[gw] = run.out / gw
        result.meters += len(collector.meters)
        bundle.stage(run.staging / "bundles", gw, files)
        try:
            broker_dir.add_collector(collector.site, gw, password)
        except BrokerSetupError as exc:
            book.errors.append(RowError(collector.source, collector.row, "gateway_id", str(exc)))
    if book.errors:
        raise SiteRejected(book.errors)
    return result


def _check_identity(book: sheet.Workbook, session: Any, out: Path, force: bool) -> None:
    """A collector that exists keeps its key unless ``force``."""
    if force:
        return
    for gw, collector in book.collectors.items():
        where = (collector.source, collector.row, "gateway_id")
        if (out / gw).exists():
            book.errors.append(RowError(*where, f"{out / gw} exists: a collector's key is its "
                                        "identity; use another --out or --force for new keys"))  # fmt: skip
        elif session.get(Gateway, gw) is not None:
            book.errors.append(RowError(*where, f"collector {gw} is already in the cloud with its "
                                        "key; --force gives it a new key (its bundle must then "
                                        "be installed again)"))  # fmt: skip


def _zone(book: sheet.Workbook, site: str, session: Any) -> str:
    if book.timezones.get(site):
        return book.timezones[site]
    row = session.get(Site, site)
    return str(row.timezone) if row is not None and row.timezone else DEFAULT_ZONE


def _edge_toml(
    book: sheet.Workbook,
    collector: sheet.CollectorRow,
    session: Any,
    url: str,
    password: str,
    tls: bool,
) -> str:
    buses = [b.spec for b in collector.buses]
    meters = [m.spec for m in collector.meters]
    text = edge_toml(
        collector.site, collector.gateway, url, password, f"{collector.gateway}.key", buses,
        meters, _zone(book, collector.site, session), ca_file="ca.crt" if tls else None,
    )  # fmt: skip
    try:  # the agent's own checks of the whole file
        parse(tomllib.loads(text), Path("edge.toml"))
    except ConfigError as exc:
        book.errors.append(RowError(collector.source, collector.row, "gateway_id",
                                    f"its edge.toml would not load: {exc}"))  # fmt: skip
    return text


def run(args: Any) -> int:
    """``gridvend provision site`` (parsed by ``provisioning.cli``)."""
    url = cloud_db.resolve_url(args.database, args.instance)
    database = Database(url)
    try:
        if cloud_db.current_revision(database.engine) is None:
            raise ProvisionError(
                f"the database {url} has no schema; run `gridvend cloud init-db` first"
            )
        broker_dir = BrokerDir.open(args.broker_dir)
        result = provision_site(
            args.sheet, database=database, broker_dir=broker_dir, out=args.out,
            broker_url=args.broker_url, force=args.force,
        )  # fmt: skip
    except SiteRejected as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        database.dispose()
    for gw, folder in sorted(result.bundles.items()):
        print(f"bundle {gw}: {folder} (+ {folder.name}.tar.gz, sha256 beside it)")
    print(f"cloud: imported {result.imported}")
    state = "reread by the running broker" if result.broker_reloaded else "written (no broker ran)"
    print(f"broker: {len(result.bundles)} collector(s) in the password file and ACL, {state}")
    print(f"{len(result.bundles)} collector(s), {result.meters} meters in {result.seconds:.1f} s")
    print("next, on each collector: copy its bundle, `sha256sum -c SHA256SUMS`, "
          "`gridvend provision selftest --config edge.toml`, then start the agent")  # fmt: skip
    return 0
