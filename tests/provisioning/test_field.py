"""A site as a field engineer does it, with real parts: a workbook of 32 meters → ``provision
site`` → a real Mosquitto running the generated password file, ACL and TLS listener (CA made in
the test) → ``gridvend provision selftest`` against the simulator on a socat pty pair (passes;
fails with the right message for a dead meter, a wrong key, a refused password) → the agent
started → all 32 meters report to the cloud through the bridge, both over TLS."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.db import Database
from cloud.models import Meter
from demo.park import Children, gridvend_argv
from edge.sim import ControlClient
from provisioning import tls
from provisioning.broker import BrokerDir
from provisioning.site import provision_site
from tests.provisioning.client import Client
from tests.provisioning.workbook import BusSpec, CollectorSpec, SiteSpec, write
from tests.support.services import Mosquitto, PtyPair, free_port

GW = "gw-f"
METERS = 32


@dataclass
class Field:
    folder: Path
    db: Database
    broker_dir: BrokerDir
    bundle: Path
    control: str
    children: Children
    started: float

    def selftest(self, bundle: Path | None = None, *extra: str) -> tuple[int, str]:
        config = (bundle or self.bundle) / "edge.toml"
        proc = subprocess.run(
            [*gridvend_argv(), "provision", "selftest", "--config", str(config), *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def field(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Field]:
    folder = tmp_path_factory.mktemp("field")
    bd = BrokerDir.create(folder / "broker", port=free_port(), tls_port=free_port(),
                          tls_host="127.0.0.1", names=["127.0.0.1"])  # fmt: skip
    broker = Mosquitto(port=bd.port, config_file=bd.conf_file).start()
    db = Database(f"sqlite:///{folder / 'cloud.db'}")
    db.upgrade()
    children = Children(folder / "logs")
    pair = PtyPair().start()
    try:
        sim = children.start(
            "sim",
            ["sim", "--model", "acrel-ddsy1352", "--count", str(METERS), "--serial", pair.b,
             "--baud", "9600", "--control", "tcp://127.0.0.1:0"],
            ready_line=True,
        )  # fmt: skip
        started = time.monotonic()
        spec = SiteSpec("field-site", [CollectorSpec(GW, [BusSpec("f1", pair.a, count=METERS,
                                                                  baud=9600)])])  # fmt: skip
        sheet = write(folder / "field-site.xlsx", spec)
        provision_site(sheet, database=db, broker_dir=bd, out=folder / "bundles")
        creds = bd.bridge_credentials()
        assert bd.ca_file is not None
        children.start(
            "bridge",
            ["cloud", "bridge", "--database", db.url, "--broker", bd.client_url(tls=True),
             "--ca-file", str(bd.ca_file), "--username", creds["GRIDVEND_BROKER_USERNAME"],
             "--command-poll", "0.2"],
            env={"GRIDVEND_BROKER_PASSWORD": creds["GRIDVEND_BROKER_PASSWORD"]},
        )  # fmt: skip
        bridge = children.items[-1]
        deadline = time.monotonic() + 30
        while "broker_connected" not in bridge.tail(50):
            assert bridge.alive(), bridge.tail()
            assert time.monotonic() < deadline, bridge.tail()
            time.sleep(0.1)
        yield Field(folder, db, bd, folder / "bundles" / GW, str(sim.info["control"]), children,
                    started)  # fmt: skip
    finally:
        children.stop_all()
        pair.close()
        broker.close()
        db.dispose()


def _copy(field: Field, name: str) -> Path:
    copy = field.folder / name
    shutil.copytree(field.bundle, copy)
    for store in copy.glob("*.sqlite*"):
        store.unlink()
    return copy


def _lines(output: str, verdict: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(verdict + " ")]


def test_selftest_passes_on_the_simulator_over_a_pty_and_a_tls_broker(field: Field) -> None:
    rc, out = field.selftest()
    assert rc == 0, out
    passed = _lines(out, "PASS")
    assert _lines(out, "FAIL") == []
    assert "PASS bus f1 opens" in out
    assert sum(" answers: energy " in line for line in passed) == METERS
    assert sum(" clock: clock " in line for line in passed) == METERS
    assert f"PASS broker accepts {GW}: mqtts://127.0.0.1:" in out
    assert re.search(r"PASS cloud acknowledges a sealed ping: sequence \d+ acked", out), out


def test_selftest_names_a_dead_meter(field: Field) -> None:
    with ControlClient(field.control) as ctl:
        ctl.call("fault", address=7, dead=True)
        try:
            rc, out = field.selftest(None, "--skip-cloud")
        finally:
            ctl.call("clear_faults", address=7)
    assert rc == 1
    failed = _lines(out, "FAIL")
    assert len(failed) == 1, out
    assert failed[0].startswith(f"FAIL meter {GW}-f1-07 (bus f1, address 7) answers: ")
    assert "did not answer" in failed[0]


def test_selftest_names_a_wrong_key(field: Field) -> None:
    copy = _copy(field, "wrong-key")
    key = copy / f"{GW}.key"
    key.write_text(re.sub(r'"[0-9a-f]{64}"', '"' + os.urandom(32).hex() + '"', key.read_text()))
    rc, out = field.selftest(copy, "--timeout-s", "3")
    assert rc == 1
    failed = _lines(out, "FAIL")
    assert len(failed) == 1, out
    assert failed[0].startswith("FAIL cloud acknowledges a sealed ping: no ack within 3 s")
    assert "holds another key for this collector" in failed[0]
    assert f"PASS broker accepts {GW}" in out


def test_selftest_names_a_refused_password(field: Field) -> None:
    copy = _copy(field, "wrong-password")
    config = copy / "edge.toml"
    config.write_text(re.sub(r'password = ".*"', 'password = "not-the-password"',
                             config.read_text()))  # fmt: skip
    rc, out = field.selftest(copy, "--timeout-s", "3")
    assert rc == 1
    failed = _lines(out, "FAIL")
    assert failed[0].startswith(f"FAIL broker accepts {GW}: mqtts://127.0.0.1:")
    assert "CONNACK 5" in failed[0]
    assert "password file" in failed[0]
    assert failed[1] == "FAIL cloud acknowledges a sealed ping: skipped: no broker"
    assert len(failed) == 2, out


def test_the_collectors_link_refuses_a_broker_signed_by_another_ca(field: Field) -> None:
    """The agent's own connection (edge.mqtt, what selftest uses) checks the broker's
    certificate against the bundle's CA: a CA that did not sign it is refused."""
    copy = _copy(field, "other-ca")
    (copy / "ca.crt").unlink()
    tls.make_ca(field.folder / "other-ca-material")
    shutil.copy(field.folder / "other-ca-material" / "ca.crt", copy / "ca.crt")
    rc, out = field.selftest(copy, "--timeout-s", "3")
    assert rc == 1
    failed = _lines(out, "FAIL")
    assert failed[0].startswith(f"FAIL broker accepts {GW}: mqtts://127.0.0.1:"), out
    assert "certificate verify failed" in failed[0]
    assert len(failed) == 2, out  # and the ping, which needs the broker, is skipped


def test_from_the_sheet_to_32_meters_reporting_through_the_secured_broker(field: Field) -> None:
    # Last in this module: from here on the agent owns the bus.
    field.children.start("agent", ["edge", "run", "--config", str(field.bundle / "edge.toml")])

    def reporting() -> int:
        with field.db.session(readonly=True) as s:
            return int(s.scalar(select(func.count()).select_from(Meter).where(
                Meter.last_seen_ts.is_not(None))) or 0)  # fmt: skip

    deadline = time.monotonic() + 120
    while reporting() < METERS and time.monotonic() < deadline:
        dead = [c.name for c in field.children.items if not c.alive()]
        assert not dead, f"{dead} exited: " + "\n".join(c.tail() for c in field.children.items)
        time.sleep(0.5)
    assert reporting() == METERS
    elapsed = time.monotonic() - field.started
    print(f"sheet to {METERS} meters reporting: {elapsed:.1f} s (the selftests included)")
    # What a third party sees: its site's retained meter states, read with its own user.
    password = field.broker_dir.add_integrator("field-site", "viewer")
    field.broker_dir.save()
    assert field.broker_dir.reload()
    time.sleep(0.3)
    with Client(field.broker_dir.port, "viewer", password) as viewer:
        viewer.subscribe("gridvend/v1/field-site/north/#")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = {t for t in viewer.topics() if t.endswith("/state")}
            if len(states) == METERS:
                break
            time.sleep(0.1)
        assert len(states) == METERS
