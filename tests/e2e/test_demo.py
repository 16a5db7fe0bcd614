"""``gridvend demo`` as a newcomer runs it (its private Mosquitto with the generated password file
and ACL, free ports, fast time): meters report through the API, a trip happens by itself, a sale
applies and powers the meter again, anonymous clients are refused while the printed integrator
reads the site's north topics, and ``--duration`` ends it with every child process gone."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.park import Api, wait_for
from tests.provisioning.client import Client, Refused
from tests.support.services import free_port, wait_port

TOKEN = "e2e-demo-token-0123456789"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie of an exited child still answers signal 0: look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_demo_runs_the_park_a_meter_trips_a_sale_powers_it_and_duration_stops_everything(
    tmp_path: Path,
) -> None:
    port, mqtt_port = free_port(), free_port()
    folder = tmp_path / "demo"
    script = Path(sys.executable).with_name("gridvend")
    args = [str(script), "demo", "--data-dir", str(folder), "--port", str(port)]
    args += ["--mqtt-port", str(mqtt_port), "--speed", "240", "--duration", "40"]
    args += ["--api-token", TOKEN]
    log = open(tmp_path / "demo.out", "wb")  # noqa: SIM115
    demo = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, 60)
        api = Api(f"http://127.0.0.1:{port}", TOKEN)

        def reporting() -> list[dict[str, Any]]:
            meters = api.get("/meters")["meters"]
            return meters if sum(m["energy_wh"] is not None for m in meters) >= 36 else []

        meters = wait_for("the park's meters to report", reporting, 45)
        assert len(meters) == 40
        _check_broker(tmp_path / "demo.out", mqtt_port)
        _check_login_code_arrives_as_a_text(port, folder / "sms.jsonl")
        modbus = [m for m in meters if m["gateway"] == "gw-b" and "-b1-" in m["id"]]

        def tripped() -> str | None:
            for m in api.get("/meters?gateway=gw-b")["meters"]:
                if "-b1-" in m["id"] and m["relay"] == "open" and m["state"] == "arrears":
                    return str(m["id"])
            return None

        meter = wait_for("a meter to trip at zero credit", tripped, 45)
        assert modbus
        sale = api.post(f"/meters/{meter}/sales", {"amount_micro_yuan": 500_000_000}, key="demo-1")
        wait_for(
            "the sale to apply",
            lambda: api.get(f"/sales/{sale['id']}")["status"] == "applied",
            30,
        )
        wait_for("the meter to power up", lambda: api.get(f"/meters/{meter}")["relay"] == "closed")
        assert demo.wait(90) == 0
    finally:
        if demo.poll() is None:
            demo.terminate()
            demo.wait(30)
        log.close()
    output = (tmp_path / "demo.out").read_text()
    assert "API token    " + TOKEN in output
    assert "gridvend demo: stopped" in output
    pids = json.loads((folder / "pids.json").read_text())
    assert len(pids) == 11
    assert "mosquitto" in pids
    assert "payments" in pids  # the payment jobs (issue 12)
    assert "notify" in pids  # the notifier (issue 13); its texts go to sms.jsonl
    assert "SMS texts    " in output
    assert "tenant site  http://127.0.0.1:" in output
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(_gone(pid) for pid in pids.values()), pids


def _check_login_code_arrives_as_a_text(port: int, texts: Path) -> None:
    """The printed tenant asks for a sign-in code; the notifier writes it to the texts file."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login = f"http://127.0.0.1:{port}/t/login"
    with opener.open(login, timeout=30) as resp:
        page = resp.read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    for cookie in jar:  # Secure: browsers send it to 127.0.0.1 over http, urllib only over https
        cookie.secure = False
    form = {"csrf_token": token.group(1), "unit": "S10", "phone": "13800000009", "action": "send"}
    with opener.open(login, urllib.parse.urlencode(form).encode(), timeout=30) as resp:
        assert resp.status == 200

    def code_texted() -> str | None:
        if not texts.exists():
            return None
        for line in texts.read_text(encoding="utf-8").splitlines():
            text = json.loads(line)
            found = re.search(r"(?<!\d)(\d{6})(?!\d)", text["text"])
            if text["to"].endswith("13800000009") and text["kind"] == "login_code" and found:
                return found.group(1)
        return None

    wait_for("the sign-in code as a text in sms.jsonl", code_texted, 30)


def _check_broker(output: Path, port: int) -> None:
    """The demo's broker refuses anonymous clients; the printed integrator reads north."""
    line = next(x for x in output.read_text().splitlines() if x.strip().startswith("integrator"))
    user, _, password = line.split()[1:4]
    with pytest.raises(Refused):
        Client(port).connect()
    with Client(port, user, password) as viewer:
        viewer.subscribe("gridvend/v1/studio-park/north/#")
        wait_for(
            "a retained meter state on the north topics",
            lambda: any(t.endswith("/state") for t in viewer.topics()),
            20,
        )
