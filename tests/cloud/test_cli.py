"""`gridvend cloud …`: init-db, create-operator, create-token, import, serve (a real waitress
process on a free loopback port), and the bridge hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cloud import cli
from cloud.db import Database, current_revision, head_revisions
from tests.support.services import free_port, wait_port

GRIDVEND = str(Path(sys.executable).with_name("gridvend"))
KEY = "cd" * 32


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv), "gridvend cloud")
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_init_db_creates_the_schema_and_is_repeatable(capsys, url):
    (head,) = head_revisions()
    code, out, _ = _run(capsys, "init-db", "--database", url)
    assert code == 0
    assert f"revision {head}" in out
    code, out, _ = _run(capsys, "init-db", "--database", url)
    assert code == 0
    db = Database(url)
    assert current_revision(db.engine) == head
    db.dispose()


def test_init_db_on_postgres_is_repeatable(capsys, pg_url):
    (head,) = head_revisions()
    code, out, _ = _run(capsys, "init-db", "--database", pg_url)
    assert code == 0
    assert f"revision {head}" in out


def test_commands_refuse_a_database_without_schema(url):
    with pytest.raises(SystemExit) as err:
        cli.main(["create-token", "x", "--database", url])
    assert "init-db" in str(err.value)


def test_operator_and_token(capsys, url):
    _run(capsys, "init-db", "--database", url)
    code, out, _ = _run(
        capsys,
        "create-operator",
        "alice",
        "--role",
        "cashier",
        "--password",
        "correct-horse",
        "--database",
        url,
    )
    assert code == 0
    assert "alice" in out
    code, _, err = _run(
        capsys, "create-operator", "alice", "--password", "correct-horse", "--database", url
    )
    assert code == 1
    assert "already exists" in err
    code, _, err = _run(capsys, "create-operator", "bob", "--password", "short", "--database", url)
    assert code == 1
    assert "8 characters" in err
    code, out, _ = _run(capsys, "create-token", "alice", "--database", url)
    token = out.strip()
    assert code == 0
    assert token.startswith("gv_")
    assert len(token) > 40
    code, _, err = _run(capsys, "create-token", "nobody", "--database", url)
    assert code == 1
    assert "does not exist" in err


def test_import_reports_bad_rows_and_imports_nothing(capsys, url, tmp_path):
    _run(capsys, "init-db", "--database", url)
    sites = tmp_path / "sites.csv"
    sites.write_text("site_id,name\npark,Park\n")
    gws = tmp_path / "collectors.csv"
    gws.write_text(f"gateway_id,site_id,key_hex\ngw-1,park,{KEY}\ngw-2,nowhere,{KEY}\n")
    code, _, err = _run(capsys, "import", str(sites), str(gws), "--database", url)
    assert code == 1
    assert "collectors.csv row 3, column site_id" in err
    assert "nothing was imported" in err
    code, out, _ = _run(capsys, "import", str(sites), "--database", url)
    assert code == 0
    assert "1 sites" in out


def test_serve_answers_with_a_token_and_refuses_without(capsys, url, tmp_path):
    _run(capsys, "init-db", "--database", url)
    _run(capsys, "create-operator", "ops", "--password", "password-1", "--database", url)
    _, out, _ = _run(capsys, "create-token", "ops", "--database", url)
    token = out.strip()
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "serve.log"
    with log.open("wb") as out_file:
        proc = subprocess.Popen(
            [GRIDVEND, "cloud", "serve", "--port", str(port), "--database", url],
            stdout=out_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        wait_port(port, timeout_s=60)
        base = f"http://127.0.0.1:{port}/api/v1"
        req = urllib.request.Request(f"{base}/meters", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
            assert json.load(resp) == {"meters": [], "count": 0}
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/meters", timeout=30)
        with err.value:
            assert err.value.code == 401
            assert json.load(err.value)["error"]["code"] == "unauthorized"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # SQLite's default: two request threads (see `gridvend cloud serve --help`).
    assert "(2 threads;" in log.read_text()


def test_serve_refuses_fewer_than_one_thread(url):
    with pytest.raises(SystemExit) as err:
        cli.main(["serve", "--threads", "0", "--database", url], "gridvend cloud")
    assert "--threads must be 1 or more" in str(err.value)


def test_bridge_is_dispatched_to_the_bridge_cli():
    deadline = time.monotonic() + 120
    proc = subprocess.run(
        [GRIDVEND, "cloud", "bridge", "--help"],
        capture_output=True,
        text=True,
        timeout=max(1, deadline - time.monotonic()),
    )
    assert proc.returncode == 0
    assert "gridvend cloud bridge" in proc.stdout
    assert "--broker" in proc.stdout
