"""The files in deploy/ work as written: every systemd unit passes ``systemd-analyze verify``,
every gridvend command line in them is one the CLI accepts, the cloud units start their service
from the environment files provisioning makes (the bridge reaches a broker that checks its
password) and stop cleanly on SIGTERM, the backup unit's command makes a backup, and the
logrotate file passes ``logrotate --debug``."""

from __future__ import annotations

import argparse
import configparser
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud.bridge import cli as bridge_cli
from cloud.cli import build_parser as cloud_parser
from cloud.db import Database
from cloud.notify.cli import build_parser as notify_parser
from cloud.payments import cli as payments_cli
from provisioning.broker import BrokerDir
from tests.support.services import Mosquitto, free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service")) + sorted(
    (ROOT / "deploy" / "systemd").glob("*.timer")
)
GRIDVEND = str(Path(sys.executable).with_name("gridvend"))


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def _localise(text: str, root: Path) -> str:
    """The unit with the install paths moved under ``root`` (and this checkout's gridvend)."""
    return (
        text.replace("/opt/gridvend/.venv/bin/gridvend", GRIDVEND)
        .replace("/var/lib/gridvend", str(root / "var-lib"))
        .replace("/etc/gridvend", str(root / "etc"))
        .replace("/var/log/gridvend", str(root / "log"))
        .replace("/var/backups/gridvend", str(root / "backups"))
    )


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_every_unit_passes_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    local = tmp_path / unit.name
    local.write_text(_localise(unit.read_text(), tmp_path))
    if unit.suffix == ".timer":  # a timer is verified with its service beside it
        service = unit.with_suffix(".service")
        (tmp_path / service.name).write_text(_localise(service.read_text(), tmp_path))
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(local)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    problems = [line for line in proc.stderr.splitlines() if unit.stem in line or "Failed" in line]
    assert proc.returncode == 0, proc.stderr
    assert problems == [], proc.stderr


def _argv(unit: Path) -> list[str]:
    line = _unit(unit)["Service"]["ExecStart"]
    argv = shlex.split(line)
    if argv[0] == "/bin/sh":  # the backup unit: sh -c 'exec gridvend …'
        argv = shlex.split(re.sub(r"\$\([^)]*\)", "STAMP", argv[2]).replace("exec ", "", 1))
    assert argv[0] == "/opt/gridvend/.venv/bin/gridvend", line
    return argv[1:]


@pytest.mark.parametrize("unit", [u for u in UNITS if u.suffix == ".service"], ids=lambda p: p.name)
def test_every_units_command_line_is_one_the_cli_accepts(unit: Path) -> None:
    argv = _argv(unit)
    area, command, rest = argv[0], argv[1], argv[2:]
    if area == "edge":
        assert command == "run"
        parser = argparse.ArgumentParser()
        parser.add_argument("--config", required=True)
        parser.parse_args(rest)
    elif command == "bridge":
        parser = argparse.ArgumentParser()
        bridge_cli.add_arguments(parser)
        parser.parse_args(rest)
    elif command == "notify":
        notify_parser("notify").parse_args(rest)
    elif command == "payments":
        payments_cli.build_parser("payments").parse_args(rest)
    else:
        args = cloud_parser("cloud").parse_args([command, *rest])
        assert args.command == command


def _env(unit: Path, root: Path) -> dict[str, str]:
    env = dict(os.environ)
    for line in _localise(unit.read_text(), root).splitlines():
        if line.startswith("EnvironmentFile="):
            for entry in Path(line.split("=", 1)[1]).read_text().splitlines():
                if "=" in entry and not entry.startswith("#"):
                    key, value = entry.split("=", 1)
                    env[key] = value
    return env


def _start(unit: Path, root: Path, extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    argv = shlex.split(_localise(_unit(unit)["Service"]["ExecStart"], root))
    (root / "log").mkdir(exist_ok=True)
    log = open(root / "log" / f"{unit.stem}.log", "ab")  # noqa: SIM115 (closed below)
    try:
        return subprocess.Popen([*argv, *(extra or [])], env=_env(unit, root), stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip
    finally:
        log.close()


def test_the_cloud_units_start_from_the_provisioned_files_and_stop_on_sigterm(
    tmp_path: Path,
) -> None:
    etc, lib = tmp_path / "etc", tmp_path / "var-lib" / "cloud"
    lib.mkdir(parents=True)
    etc.mkdir()
    bd = BrokerDir.create(etc / "broker", port=free_port())
    db_url = f"sqlite:///{lib / 'gridvend.db'}"
    Database(db_url).upgrade()
    (etc / "cloud.env").write_text(f"GRIDVEND_DATABASE_URL={db_url}\n")
    port = free_port()
    web_unit = ROOT / "deploy" / "systemd" / "gridvend-web.service"
    bridge_unit = ROOT / "deploy" / "systemd" / "gridvend-bridge.service"
    web_text = web_unit.read_text().replace("--port 8000", f"--port {port}")
    (tmp_path / web_unit.name).write_text(web_text)
    with Mosquitto(port=bd.port, config_file=bd.conf_file):
        web = _start(tmp_path / web_unit.name, tmp_path)
        bridge = _start(bridge_unit, tmp_path)
        try:
            wait_port(port, 30)
            deadline = time.monotonic() + 30
            log = tmp_path / "log" / "gridvend-bridge.log"
            while "broker_connected" not in (log.read_text() if log.exists() else ""):
                assert bridge.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            for proc in (bridge, web):
                proc.send_signal(signal.SIGTERM)
            assert bridge.wait(30) == 0
            assert web.wait(30) in (0, -signal.SIGTERM)
        finally:
            for proc in (bridge, web):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def test_the_payment_jobs_have_a_unit_on_the_web_apps_instance_and_stop_on_sigterm(
    tmp_path: Path,
) -> None:
    """Without ``gridvend cloud payments run`` nothing retries a credit that failed, asks a
    provider about an order whose notification was lost, closes unpaid orders or reconciles a
    day: a site deployed from deploy/ must run it, on the web app's instance folder (the one
    payments.json both read)."""
    unit = ROOT / "deploy" / "systemd" / "gridvend-payments.service"
    assert unit.exists(), "no systemd unit runs the payment jobs"
    argv = _argv(unit)
    assert argv[:3] == ["cloud", "payments", "run"]
    web = _argv(ROOT / "deploy" / "systemd" / "gridvend-web.service")
    instance = web[web.index("--instance") + 1]
    assert argv[argv.index("--instance") + 1] == instance
    etc, lib = tmp_path / "etc", tmp_path / "var-lib" / "cloud"
    lib.mkdir(parents=True)
    etc.mkdir()
    db_url = f"sqlite:///{lib / 'gridvend.db'}"
    Database(db_url).upgrade()
    (etc / "cloud.env").write_text(f"GRIDVEND_DATABASE_URL={db_url}\n")
    jobs = _start(unit, tmp_path)
    log = tmp_path / "log" / f"{unit.stem}.log"
    try:
        deadline = time.monotonic() + 30
        while "gridvend payments jobs" not in (log.read_text() if log.exists() else ""):
            assert jobs.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        jobs.send_signal(signal.SIGTERM)
        assert jobs.wait(30) == 0, log.read_text()
    finally:
        if jobs.poll() is None:
            jobs.kill()
            jobs.wait()


def test_the_backup_units_command_makes_a_backup(tmp_path: Path) -> None:
    etc, lib = tmp_path / "etc", tmp_path / "var-lib" / "cloud"
    lib.mkdir(parents=True)
    etc.mkdir()
    (tmp_path / "backups").mkdir()
    db_url = f"sqlite:///{lib / 'gridvend.db'}"
    Database(db_url).upgrade()
    (etc / "cloud.env").write_text(f"GRIDVEND_DATABASE_URL={db_url}\n")
    unit = ROOT / "deploy" / "systemd" / "gridvend-backup.service"
    text = _localise(unit.read_text(), tmp_path).replace("%%", "%")
    (tmp_path / unit.name).write_text(text)
    proc = _start(tmp_path / unit.name, tmp_path)
    assert proc.wait(60) == 0, (tmp_path / "log" / "gridvend-backup.log").read_text()
    made = list((tmp_path / "backups").glob("cloud-*.backup"))
    assert len(made) == 1
    assert Path(f"{made[0]}.json").exists()


def test_the_logrotate_file_is_valid(tmp_path: Path) -> None:
    if shutil.which("logrotate") is None and not Path("/usr/sbin/logrotate").exists():
        pytest.fail("logrotate is missing (Debian package logrotate)")
    text = _localise((ROOT / "deploy" / "logrotate" / "gridvend").read_text(), tmp_path)
    text = text.replace("    su gridvend gridvend\n", "").replace(
        "create 0640 gridvend gridvend", "create 0640"
    )  # no gridvend user on a test machine
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "bridge.log").write_text('{"event": "x"}\n' * 10)
    conf = tmp_path / "gridvend.logrotate"
    conf.write_text(text)
    proc = subprocess.run(
        [shutil.which("logrotate") or "/usr/sbin/logrotate", "--debug", "--state",
         str(tmp_path / "state"), str(conf)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "error" not in proc.stderr.lower(), proc.stderr
    assert "bridge.log" in proc.stderr
