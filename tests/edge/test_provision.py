"""`gridvend provision gateway`: key file, edge.toml that loads, cloud record, ACL; CSV meters
with errors by row; nothing written on bad input; key rotation."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from edge.config import load, load_keyring
from provisioning.broker import BrokerDir, check_password
from provisioning.cli import main

BUS = "name=bus1,url=tcp://127.0.0.1:5020,model=acrel-ddsy1352,baud=9600"


def test_gateway_is_provisioned_with_a_key_a_loading_config_and_a_cloud_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "meters.csv"
    csv.write_text(
        "id,bus,address,ct,tariff_id,alarm1_micro_yuan\nm1,bus1,1,1,flat,30_000_000\nm2,bus1,2,,,\n"
    )
    out = tmp_path / "out"
    rc = main(
        [
            "gateway",
            "--site",
            "s1",
            "--gateway",
            "gw-07",
            "--bus",
            BUS,
            "--meters",
            str(csv),
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    cfg = load(out / "edge.toml")
    assert cfg.gateway == "gw-07"
    assert [m.id for m in cfg.meters] == ["m1", "m2"]
    assert cfg.meters[0].settings == {"tariff_id": "flat", "alarm1_micro_yuan": 30_000_000}
    ring = load_keyring(cfg.key_file)
    record = json.loads((out / "gw-07.cloud.json").read_text())
    assert record["key_hex"] == ring.key(1).hex()
    assert len(record["key_hex"]) == 64
    assert record["id"] == "gw-07"
    assert record["site"] == "s1"
    assert record["key_id"] == 1
    assert record["mqtt_username"] == "gw-07"
    assert record["mqtt_password"] == cfg.broker.password
    assert stat.S_IMODE((out / "gw-07.key").stat().st_mode) == 0o600
    assert not (out / "gw-07.acl").exists()  # the broker folder holds ACLs (--broker-dir)


def test_gateway_joins_the_broker_folder_with_only_its_own_topics(tmp_path: Path) -> None:
    bd = BrokerDir.create(tmp_path / "broker", port=18839)
    args = ["gateway", "--site", "s1", "--gateway", "gw-08", "--bus", BUS]
    assert main([*args, "--out", str(tmp_path / "out"), "--broker-dir", str(bd.folder)]) == 0
    cfg = load(tmp_path / "out" / "edge.toml")
    again = BrokerDir.open(bd.folder)
    assert check_password(cfg.broker.password or "", again.hashes["gw-08"])
    acl = again.acl_text()
    assert "user gw-08\ntopic write gridvend/v1/s1/gw-08/up\n" in acl
    assert "readwrite" not in acl
    assert cfg.broker.url == "mqtt://127.0.0.1:18839"


def test_existing_identity_is_not_overwritten_without_force(tmp_path: Path) -> None:
    args = ["gateway", "--site", "s1", "--gateway", "g", "--bus", BUS, "--out", str(tmp_path)]
    assert main(args) == 0
    key = (tmp_path / "g.key").read_text()
    assert main(args) == 2
    assert (tmp_path / "g.key").read_text() == key
    assert main([*args, "--force"]) == 0
    assert (tmp_path / "g.key").read_text() != key


@pytest.mark.parametrize(
    ("csv", "needle"),
    [
        ("id,bus,address\nm1,bus9,1\n", "row 2: bus 'bus9'"),
        ("id,bus,address,ct\nm1,bus1,1,x\n", "row 2: ct 'x' is not an integer"),
        ("id,bus,address,colour\n", "column 'colour' is unknown"),
        ("id,bus\nm1,bus1\n", "lacks the column 'address'"),
        ("id,bus,address\nm1,bus1,1\nm1,bus1,2\n", "used twice"),
    ],
)
def test_bad_meter_csv_is_refused_by_row_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], csv: str, needle: str
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(csv)
    out = tmp_path / "out"
    rc = main(
        [
            "gateway",
            "--site",
            "s1",
            "--gateway",
            "g",
            "--bus",
            BUS,
            "--meters",
            str(path),
            "--out",
            str(out),
        ]
    )
    assert rc == 2
    assert needle in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_bad_bus_spec_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "gateway",
            "--site",
            "s1",
            "--gateway",
            "g",
            "--bus",
            "name=b,url=tcp://x:1",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 2
    assert "lacks model=" in capsys.readouterr().err


def test_key_rotation_keeps_the_previous_key_for_the_changeover(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["gateway", "--site", "s1", "--gateway", "g", "--bus", BUS, "--out", str(tmp_path)])
        == 0
    )
    capsys.readouterr()
    old = load_keyring(tmp_path / "g.key")
    assert main(["rotate-key", "--key-file", str(tmp_path / "g.key")]) == 0
    info = json.loads(capsys.readouterr().out)
    ring = load_keyring(tmp_path / "g.key")
    assert ring.current == info["key_id"] == 2
    assert ring.ids == [1, 2]
    assert ring.key(1) == old.key(1)
    assert ring.key(2).hex() == info["key_hex"]
