"""`gridvend provision site SHEET`: a real .xlsx workbook to every collector's bundle, the cloud's
records (through the cloud's importer) and the broker's password file and ACL, in one step;
every bad row reported by sheet, row and column with nothing written anywhere."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from cloud.db import Database
from cloud.models import Gateway, Meter
from edge.config import load, load_keyring
from provisioning import bundle
from provisioning.broker import BrokerDir, check_password
from provisioning.cli import main
from provisioning.site import SiteRejected, provision_site
from tests.provisioning.workbook import BusSpec, CollectorSpec, SiteSpec, write


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'cloud.db'}")
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def broker_dir(tmp_path: Path) -> BrokerDir:
    return BrokerDir.create(tmp_path / "broker", port=18830, tls_port=18831, names=["127.0.0.1"])


def two_collectors() -> SiteSpec:
    return SiteSpec(
        "park-1",
        [
            CollectorSpec("gw-a", [BusSpec("a1", "tcp://127.0.0.1:5020", count=4),
                                   BusSpec("a2", "tcp://127.0.0.1:5021", "dlt645", 2)]),
            CollectorSpec("gw-b", [BusSpec("b1", "/dev/ttyUSB0", count=3, baud=9600)]),
        ],
    )  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_workbook_makes_every_bundle_imports_the_cloud_and_fills_the_broker(
    tmp_path: Path, db: Database, broker_dir: BrokerDir
) -> None:
    spec = two_collectors()
    sheet = write(tmp_path / "site.xlsx", spec)
    result = provision_site(sheet, database=db, broker_dir=broker_dir, out=tmp_path / "out")
    assert sorted(result.bundles) == ["gw-a", "gw-b"]
    assert result.meters == 9
    again = BrokerDir.open(broker_dir.folder)
    acl = again.acl_text()
    with db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Meter)) == 9
        keys = {g.id: g.key_hex for g in s.scalars(select(Gateway))}
    for gw in ("gw-a", "gw-b"):
        folder = tmp_path / "out" / gw
        assert bundle.verify(folder) == []
        cfg = load(folder / "edge.toml")
        assert cfg.gateway == gw
        assert cfg.site == "park-1"
        assert cfg.broker.url == "mqtts://127.0.0.1:18831"
        assert cfg.broker.ca_file is not None
        assert Path(cfg.broker.ca_file).read_bytes() == (broker_dir.tls_dir / "ca.crt").read_bytes()
        # The key the collector seals with is the key the cloud opens with.
        assert load_keyring(cfg.key_file).key(1).hex() == keys[gw]
        # The broker knows its password (hash only) and gives it only its own topics.
        assert check_password(cfg.broker.password or "", again.hashes[gw])
        assert f"user {gw}\ntopic write gridvend/v1/park-1/{gw}/up\n" in acl
        archive = tmp_path / "out" / f"{gw}.tar.gz"
        digest = (tmp_path / "out" / f"{gw}.tar.gz.sha256").read_text().split()[0]
        assert hashlib.sha256(archive.read_bytes()).hexdigest() == digest
        with tarfile.open(archive) as tar:
            assert f"{gw}/edge.toml" in tar.getnames()
    a = load(tmp_path / "out" / "gw-a" / "edge.toml")
    assert [(m.id, m.bus, m.address) for m in a.meters][-2:] == [
        ("gw-a-a2-01", "a2", "000000000001"),
        ("gw-a-a2-02", "a2", "000000000002"),
    ]
    assert [b.baud for b in load(tmp_path / "out" / "gw-b" / "edge.toml").buses] == [9600]
    assert "key_hex" not in str(snapshot(tmp_path / "out"))  # no cloud record copies the key


def test_every_bad_row_is_named_and_nothing_is_written_anywhere(
    tmp_path: Path, db: Database, broker_dir: BrokerDir
) -> None:
    spec = two_collectors()
    spec.extra_meters = [
        ["m-x1", "gw-a", "a9", 5, "acrel-ddsy1352", "U-gw-a", "yes"],  # row 11: no such bus
        ["m-x2", "gw-a", "a1", 300, "acrel-ddsy1352", "U-gw-a", "yes"],  # 12: address
        ["m-x3", "gw-a", "a1", 6, "dlt645", "U-gw-a", "yes"],  # 13: model of another bus
        ["m-x4", "gw-a", "a1", 2, "acrel-ddsy1352", "U-gw-a", "yes"],  # 14: address taken
        ["m-x5", "gw-z", "a1", 7, "acrel-ddsy1352", "U-gw-a", "yes"],  # 15: no collector
        ["m-x6", "gw-b", "b1", 9, "acrel-ddsy1352", "NO-SUCH-UNIT", "yes"],  # 16: cloud's unit
    ]
    spec.extra_buses = [["gw-b", "b2", "tcp://127.0.0.1:1", "no-such-model", None, None]]
    sheet = write(tmp_path / "site.xlsx", spec)
    before = snapshot(broker_dir.folder)
    with pytest.raises(SiteRejected) as caught:
        provision_site(sheet, database=db, broker_dir=broker_dir, out=tmp_path / "out")
    found = {(e.source, e.row, e.column) for e in caught.value.errors}
    assert ("site.xlsx:meters", 11, "bus") in found
    assert ("site.xlsx:meters", 12, "address") in found
    assert ("site.xlsx:meters", 13, "model") in found
    assert ("site.xlsx:meters", 14, "address") in found
    assert ("site.xlsx:meters", 15, "gateway_id") in found
    assert ("site.xlsx:buses", 5, "model") in found
    assert any(e.row == 16 and e.source == "site.xlsx:meters" for e in caught.value.errors), (
        "the cloud importer's own check of the unit is reported too"
    )
    assert "row 14, column address: address 2 on bus a1 is also on row 3" in str(caught.value)
    # Nothing half-done: no bundle, no cloud row, the broker's files as they were.
    assert not any((tmp_path / "out").iterdir())
    with db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Gateway)) == 0
        assert s.scalar(select(func.count()).select_from(Meter)) == 0
    assert snapshot(broker_dir.folder) == before


def test_a_collector_keeps_its_identity_unless_forced(
    tmp_path: Path, db: Database, broker_dir: BrokerDir
) -> None:
    sheet = write(tmp_path / "site.xlsx", two_collectors())
    out = tmp_path / "out"
    provision_site(sheet, database=db, broker_dir=broker_dir, out=out)
    key = (out / "gw-a" / "gw-a.key").read_bytes()
    with pytest.raises(SiteRejected, match="a collector's key is its identity"):
        provision_site(sheet, database=db, broker_dir=broker_dir, out=out)
    assert (out / "gw-a" / "gw-a.key").read_bytes() == key
    with pytest.raises(SiteRejected, match="already in the cloud"):
        provision_site(sheet, database=db, broker_dir=broker_dir, out=tmp_path / "elsewhere")
    provision_site(sheet, database=db, broker_dir=broker_dir, out=out, force=True)
    ring = load_keyring(out / "gw-a" / "gw-a.key")
    new_key = ring.key(ring.current).hex()
    assert (out / "gw-a" / "gw-a.key").read_bytes() != key
    with db.session(readonly=True) as s:
        gw = s.get(Gateway, "gw-a")
        assert gw is not None
        assert gw.key_hex == new_key


def test_provisioning_columns_in_the_collectors_sheet_are_refused(
    tmp_path: Path, db: Database, broker_dir: BrokerDir
) -> None:
    sheet = write(tmp_path / "site.xlsx", two_collectors())
    book = openpyxl.load_workbook(sheet)
    book["collectors"].cell(row=1, column=6, value="key_hex")
    book.save(sheet)
    with pytest.raises(SiteRejected) as caught:
        provision_site(sheet, database=db, broker_dir=broker_dir, out=tmp_path / "out")
    assert [(e.source, e.row, e.column) for e in caught.value.errors] == [
        ("site.xlsx:collectors", 1, "key_hex")
    ]


def test_the_command_line_prints_the_bundles_or_every_bad_row(
    tmp_path: Path, db: Database, broker_dir: BrokerDir, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = two_collectors()
    sheet = write(tmp_path / "site.xlsx", spec)
    common = ["--broker-dir", str(broker_dir.folder), "--database", db.url]
    assert main(["site", str(sheet), *common, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "bundle gw-a:" in printed
    assert "2 collector(s), 9 meters" in printed
    spec.collectors = [CollectorSpec("gw-c", [BusSpec("c1", "tcp://127.0.0.1:5030", count=2)])]
    spec.extra_meters = [["m-y", "gw-c", "c1", 0, "acrel-ddsy1352", "U-gw-c", "yes"]]
    bad = write(tmp_path / "bad.xlsx", spec)
    assert main(["site", str(bad), *common, "--out", str(tmp_path / "out2")]) == 1
    err = capsys.readouterr().err
    assert "bad.xlsx:meters row 4, column address: Modbus address must be 1..247" in err
    assert "nothing was provisioned" in err


@pytest.mark.parametrize("gateway", ["../evil", "a/../../x", "..", "gw a", "$SYS"])
def test_a_collector_id_that_is_no_plain_id_is_a_row_error_and_nothing_is_written(
    tmp_path: Path, db: Database, broker_dir: BrokerDir, gateway: str
) -> None:
    """The id names the bundle's folder, the archive, the broker user and a topic level: a path
    or a space in it must be refused by row and column before any file is made (it was a
    KeyError from the import's cross-row checks)."""
    spec = SiteSpec("park-1", [CollectorSpec(gateway, [BusSpec("a1", "tcp://127.0.0.1:5020")])])
    sheet = write(tmp_path / "site.xlsx", spec)
    before = snapshot(broker_dir.folder)
    outside = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SiteRejected) as caught:
        provision_site(sheet, database=db, broker_dir=broker_dir, out=tmp_path / "out")
    found = {(e.source, e.row, e.column) for e in caught.value.errors}
    assert ("site.xlsx:collectors", 2, "gateway_id") in found
    assert not any((tmp_path / "out").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*outside, "out"])
    assert snapshot(broker_dir.folder) == before
