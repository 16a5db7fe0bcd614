"""edge.toml and the key file: defaults, unknown keys named with their table, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import ConfigError, key_file_text, load, load_keyring

MINIMAL = """
site = "s1"
gateway = "gw-01"
store = "gw.sqlite"
[keys]
file = "gw.key"
[[buses]]
name = "bus1"
url = "tcp://127.0.0.1:5020"
model = "acrel-ddsy1352"
[[meters]]
id = "m1"
bus = "bus1"
address = 1
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_minimal_config_gets_documented_defaults_and_resolves_paths(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, MINIMAL))
    assert cfg.broker.url == "mqtt://127.0.0.1:1883"
    assert (cfg.report_s, cfg.history_s, cfg.heartbeat_s) == (30, 1800, 30.0)
    assert cfg.store == tmp_path / "gw.sqlite"
    assert cfg.key_file == tmp_path / "gw.key"
    assert cfg.timezone == "Asia/Shanghai"
    assert cfg.fixed_offset_s() is None
    assert cfg.meters[0].ct == 1
    assert cfg.buses[0].model == "acrel-ddsy1352"
    assert cfg.retention["history_days"] == 90
    assert len(cfg.config_hash()) == 16


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("colour = 'red'\n", "unknown key 'colour' in the top level"),
        ("[broker]\nurl = 'mqtt://x'\nqos = 2\n", "unknown key 'qos' in [broker]"),
        ("[intervals]\nreport_every = 3\n", "unknown key 'report_every' in [intervals]"),
        ("[sync]\nwindow = 0\n", "'window' must be greater than 0"),
        ("[broker]\nurl = 'http://x'\n", "scheme must be mqtt"),
        ("[intervals]\nreport_s = '30'\n", "'report_s' must be an integer"),
    ],
)
def test_bad_keys_are_named_with_their_table(tmp_path: Path, extra: str, needle: str) -> None:
    head, rest = MINIMAL.split("[keys]", 1)
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load(write(tmp_path, head + extra + "[keys]" + rest))


def test_unknown_key_inside_a_meter_names_the_meter(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'adress' in \[\[meters\]\] #2"):
        load(write(tmp_path, MINIMAL + "[[meters]]\nid = 'm2'\nbus = 'bus1'\nadress = 2\n"))


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("[[meters]]\nid = 'm1'\nbus = 'bus1'\naddress = 2\n", "used twice"),
        ("[[meters]]\nid = 'm2'\nbus = 'bus1'\naddress = 1\n", "address 1 is used twice"),
        ("[[meters]]\nid = 'm2'\nbus = 'nowhere'\naddress = 2\n", "bus 'nowhere' is not one of"),
        ("[[meters]]\nid = 'm2'\nbus = 'bus1'\n", "lacks the required key 'address'"),
    ],
)
def test_meter_list_mistakes_are_refused(tmp_path: Path, extra: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load(write(tmp_path, MINIMAL + extra))


def test_missing_file_and_bad_toml_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="provision gateway"):
        load(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "site = \n"))
    with pytest.raises(ConfigError, match="gateway 'gw 01'"):
        load(write(tmp_path, MINIMAL.replace('"gw-01"', '"gw 01"')))


def test_fixed_offset_timezone(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, 'timezone = "+08:00"\n' + MINIMAL))
    assert cfg.fixed_offset_s() == 8 * 3600
    cfg = load(write(tmp_path, 'timezone = "UTC-05:30"\n' + MINIMAL))
    assert cfg.fixed_offset_s() == -(5 * 3600 + 30 * 60)


def test_key_file_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_text(key_file_text({1: bytes(32), 2: bytes(range(32))}, current=2))
    ring = load_keyring(path)
    assert ring.ids == [1, 2]
    assert ring.current == 2
    path.write_text('current = 1\n[keys]\n1 = "abcd"\n')
    with pytest.raises(ConfigError, match="64 hex digits"):
        load_keyring(path)
    path.write_text('current = 3\n[keys]\n1 = "' + "00" * 32 + '"\n')
    with pytest.raises(ConfigError, match="current key 3"):
        load_keyring(path)
    path.write_text('current = 1\nextra = 1\n[keys]\n1 = "' + "00" * 32 + '"\n')
    with pytest.raises(ConfigError, match="unknown key 'extra'"):
        load_keyring(path)
    with pytest.raises(ConfigError, match="no key file"):
        load_keyring(tmp_path / "missing.key")


def test_edge_run_refuses_a_bad_tariff_or_model_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "gw.key").write_text(key_file_text({1: bytes(32)}, 1))
    for text, needle in (
        (MINIMAL.replace("acrel-ddsy1352", "acme-9000"), "unknown meter model 'acme-9000'"),
        (MINIMAL + "[tariffs]\nflat = [{version = 1, effective_from = 0}]\n", "flat"),
        (MINIMAL + "[defaults]\nalarm1_micro_yuan = 'x'\n", "alarm1_micro_yuan"),
    ):
        cfg = write(tmp_path, text)
        run = subprocess.run(
            [sys.executable, "-m", "gridvend", "edge", "run", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 2, run.stderr
        assert needle in run.stderr
        assert "Traceback" not in run.stderr


def test_ct_pt_for_a_meter_that_reports_its_own_ratios_is_refused(tmp_path: Path) -> None:
    # Acrel meters hold PT/CT in registers and the driver returns primary-side values; a second
    # scaling from edge.toml would bill ct × pt times the energy.
    text = MINIMAL.replace("address = 1\n", "address = 1\nct = 40\n")
    with pytest.raises(ConfigError, match="reads its PT/CT ratios from the meter itself"):
        load(write(tmp_path, text))


def test_ct_pt_apply_to_a_model_without_ratio_registers(tmp_path: Path) -> None:
    text = MINIMAL.replace('model = "acrel-ddsy1352"', 'model = "dlt645"').replace(
        "address = 1\n", 'address = "000000000001"\nct = 40\npt = 1\n'
    )
    cfg = load(write(tmp_path, text))
    assert (cfg.meters[0].ct, cfg.meters[0].pt) == (40, 1)
