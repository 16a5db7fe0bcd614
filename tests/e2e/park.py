"""A small simulated park for the end-to-end tests, run as the user runs it (``demo.park``):
``gridvend sim`` per bus, ``gridvend edge run``, ``gridvend cloud bridge``, ``gridvend cloud
serve``, against a private Mosquitto; plus an HTTP client for the API with a bearer token."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.access import auth
from cloud.audit import Actor
from demo.park import BusPlan, GatewayPlan, Park, Plan
from provisioning.broker import BrokerDir
from tests.support.services import free_port

# Meters of the test park: three prepaid Acrel meters and one DL/T 645 meter on collector gw1.
A, B, C = "gw1-m-01", "gw1-m-02", "gw1-m-03"
D = "gw1-d-01"
PRICE = 10_000_000  # 10 yuan per kWh: 30 kW at speed 4 costs about 0.33 yuan a second
SPEED = 4.0


def test_plan() -> Plan:
    return Plan(
        site="park",
        site_name="E2E park",
        gateways=[
            GatewayPlan(
                "gw1",
                "B1",
                "F1",
                [BusPlan("m", "acrel-ddsy1352", 3), BusPlan("d", "dlt645", 1)],
            )
        ],
        speed=SPEED,
        report_s=1,
        heartbeat_s=2,
        ack_timeout_s=3,
        price_micro_yuan_per_kwh=PRICE,
        units={A: "U1", B: "U2", C: "U3", D: "U4"},
        edge_defaults={
            "price_override_micro_yuan_per_kwh": PRICE,
            # Simulated time runs SPEED times faster, so energy jumps look SPEED times bigger.
            "rated_power_w": 2_000_000,
        },
    )


class ApiError(AssertionError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Api:
    base: str
    token: str

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base}/api/v1{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        if status != 200:
            raise ApiError(status, body)
        return body

    def post(self, path: str, body: Any = None, key: str | None = None, ok: int = 201) -> Any:
        headers = {"Idempotency-Key": key} if key else None
        status, out = self.call("POST", path, body if body is not None else {}, headers)
        if status != ok:
            raise ApiError(status, out)
        return out


def wait_for(
    what: str, check: Callable[[], Any], timeout_s: float = 60.0, park: Park | None = None
) -> Any:
    """Poll ``check`` until truthy; at the deadline fail naming ``what`` (and dead children)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            dead = park.check_alive() if park is not None else []
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; {dead}")
        time.sleep(0.2)


def start_park(
    folder: Path, database_url: str, broker_url: str, broker_dir: BrokerDir | None = None
) -> tuple[Park, Api]:
    """Provision and start the test park; returns it and an API client with an admin token.
    With ``broker_dir`` the collectors and the bridge get their own broker credentials."""

    park = Park(test_plan(), folder, database_url, broker_url, broker_dir)
    try:
        park.seed_inventory()
        token = "e2e-" + secrets.token_urlsafe(24)
        with park.db.session() as s:
            auth.create_operator(s, "e2e-admin", "e2e-password", "admin", Actor("e2e"))
            auth.create_token(s, "e2e-admin", Actor("e2e"), token=token)
        park.start_simulators()
        for meter in (A, B, C, D):
            park.set_load(meter, 0)
        park.provision()
        park.start_bridge("--command-poll", "0.2", "--retry-after", "5")
        api = Api(park.start_api(free_port()), token)
        park.start_agents()
    except BaseException:
        park.stop()
        raise
    return park, api
