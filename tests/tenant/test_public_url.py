"""The address providers and the tenant's browser are sent back to: behind the deployment's TLS
proxy the request's own host is the proxy's upstream (``http://127.0.0.1:8000``), which no
provider can reach and WeChat Pay refuses (its notify URL must be https). ``gridvend cloud
serve`` takes the public address from ``GRIDVEND_PUBLIC_URL`` (cloud.env), whatever Host the
request names. A real ``gridvend cloud serve`` on a SQLite file, a tenant signed in with the
logged code, an Alipay top-up: the signed redirect's notify and return URLs are the public
ones."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from tests.payments.players import alipay_settings
from tests.support.services import free_port, wait_port
from tests.tenant.support import TENANT_A, seed_tenants
from tests.web.support import make_database

GRIDVEND = str(Path(sys.executable).with_name("gridvend"))
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PUBLIC = "https://pay.example.com"


def _token(page: requests.Response) -> str:
    found = _TOKEN.search(page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def test_serve_sends_providers_and_tenants_to_the_public_url(tmp_path: Path) -> None:
    db, _park = make_database(tmp_path)
    seed_tenants(db)
    db.dispose()
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "payments.json").write_text(json.dumps({"alipay": alipay_settings()}))
    port = free_port()
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "GRIDVEND_PUBLIC_URL": PUBLIC,
        "GRIDVEND_OFFICE_COOKIE_SECURE": "0",
    }  # fmt: skip (plain HTTP to 127.0.0.1)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [GRIDVEND, "cloud", "serve", "--port", str(port), "--database", db.url,
             "--instance", str(instance)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
    try:
        wait_port(port, timeout_s=60)
        base = f"http://127.0.0.1:{port}"
        web = requests.Session()
        who = {"unit": TENANT_A["unit"], "phone": TENANT_A["phone"]}
        token = _token(web.get(f"{base}/t/login", timeout=30))
        web.post(f"{base}/t/login", data={"csrf_token": token, **who, "action": "send"},
                 timeout=30)  # fmt: skip
        code = None
        deadline = time.monotonic() + 15
        while code is None and time.monotonic() < deadline:
            found = re.search(r"DEMO ONLY.*: (\d{6})", log.read_text())
            code = found.group(1) if found else None
            time.sleep(0.1)
        assert code is not None, log.read_text()
        done = web.post(f"{base}/t/login", allow_redirects=False, timeout=30,
                        data={"csrf_token": token, **who, "action": "verify", "code": code})  # fmt: skip
        assert done.status_code == 302, done.text[:500]
        topup = f"{base}/t/m/{TENANT_A['meters'][0]}/topup"
        token = _token(web.get(topup, timeout=30))
        sent = web.post(topup, allow_redirects=False, timeout=30,
                        data={"csrf_token": token, "preset": "20", "provider": "alipay"})  # fmt: skip
        assert sent.status_code == 303, sent.text[:500]
        params = {k: v[0] for k, v in parse_qs(urlsplit(sent.headers["Location"]).query).items()}
        assert params["notify_url"] == f"{PUBLIC}/pay/notify/alipay"
        assert params["return_url"].startswith(f"{PUBLIC}/t/orders/GV")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
