"""The OpenAPI document is the contract (issue 9): schemathesis (pinned) runs every operation of a
live ``gridvend cloud serve`` on a fresh SQLite database, started here on a free loopback port,
with ``--checks all``, a fixed seed and a bounded number of examples: valid requests must be
accepted (2xx, or 404/409 for a record or state that refuses them), invalid ones refused with a
4xx, every status and response documented, no 500, 405 with ``Allow``. Afterwards every command
the run queued is delivered to a collector stand-in, and every meter's ledger must keep its
identity (balance == credits − refunds − charges) to the micro-yuan.

Reproduce a failure with the ``st replay`` line in the report, or run the same command against a
server of your own (``SCHEMATHESIS_EXAMPLES`` raises the number of examples)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.access import auth
from cloud.audit import Actor
from cloud.db import Database
from cloud.models import Gateway, Meter, Operator, Role
from cloud.money import ledger
from tests.cloud.support import FakeEdge, seed_park, sync
from tests.support.services import free_port, wait_port

SEED = 9
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Database]]:
    """A fresh migrated database with the test park and an admin token, and a live server."""
    folder = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{folder / 'cloud.db'}"
    database = Database(url)
    database.upgrade()
    with database.session() as s:
        auth.ensure_roles(s)
        seed_park(s)
        admin = s.query(Role).filter(Role.name == "admin").one()
        s.add(Operator(username="schemathesis", password_hash="!", role_id=admin.id))
        s.flush()
        token = auth.create_token(s, "schemathesis", Actor("test"))[1]
    port = free_port()
    log = (folder / "serve.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "gridvend"), "cloud", "serve", "--database", url, "--port", str(port),
         "--instance", str(folder)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
    )  # fmt: skip
    try:
        wait_port(port, timeout_s=30)
        yield f"http://127.0.0.1:{port}", token, database
    finally:
        server.terminate()
        server.wait(20)
        log.close()
        database.dispose()


def test_every_operation_keeps_the_contract_and_the_ledger_holds(served, tmp_path):
    base, token, database = served
    report = tmp_path / "report"
    run = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "--no-color",
            "run",
            f"{base}/api/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            "--seed",
            str(SEED),
            "--max-examples",
            str(EXAMPLES),
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--report",
            "junit",
            "--report-dir",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    (tmp_path / "schemathesis.txt").write_text(run.stdout + run.stderr, encoding="utf-8")
    # The failures' headings (operation, check) first, then the end of the report.
    headings = [
        ln for ln in run.stdout.splitlines() if ln.startswith(("___", "- ST", "[", "    curl"))
    ]
    summary = "\n".join(headings[:200]) + "\n...\n" + run.stdout[-3000:]
    assert run.returncode == 0, f"schemathesis found failures:\n{summary}\n{run.stderr[-2000:]}"
    assert "Tested:" in run.stdout, summary
    # Everything the run queued reaches a collector stand-in; then no meter's ledger is off.
    with database.session(readonly=True) as s:
        gateways = [g.id for g in s.query(Gateway)]
    sync(database, {g: FakeEdge(g) for g in gateways}, rounds=50)
    with database.session(readonly=True) as s:
        meters = [m.id for m in s.query(Meter)]
        assert meters
        for meter_id in meters:
            ledger.verify(s, meter_id)
