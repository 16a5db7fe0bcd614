"""The collector's status is believed only from the topic the ACL reserves for it: on a real
Mosquitto running the generated ACL, with the real bridge, a retained ``offline`` forged on
collector A's status topic by collector B or by an integrator never reaches the bridge, so the
cloud and every later north subscriber keep seeing A online; A's own ``offline`` does change
it (the control that proves the path works)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud.bridge.worker import Bridge, BridgeSettings
from cloud.db import Database
from cloud.models import Gateway
from cloud.park import inventory
from provisioning.broker import BrokerDir
from shared.broker import Broker
from tests.provisioning.client import Client
from tests.support.services import Mosquitto, free_port

SITE = "s-trust"
NORTH_A = f"gridvend/v1/{SITE}/north/gateways/gw-a/status"
NORTH_B = f"gridvend/v1/{SITE}/north/gateways/gw-b/status"
STATUS_A = f"gridvend/v1/{SITE}/gw-a/status"
STATUS_B = f"gridvend/v1/{SITE}/gw-b/status"


@dataclass
class Env:
    db: Database
    bridge: Bridge
    port: int
    passwords: dict[str, str]

    def client(self, user: str) -> Client:
        return Client(self.port, user, self.passwords[user])

    def online(self, gw: str) -> bool:
        with self.db.session(readonly=True) as s:
            row = s.get(Gateway, gw)
            assert row is not None
            return bool(row.online)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    bd = BrokerDir.create(tmp_path / "broker", port=free_port())
    passwords = {"gw-a": "pw-a-0123456789", "gw-b": "pw-b-0123456789"}
    for gw, pw in passwords.items():
        bd.add_collector(SITE, gw, pw)
    passwords["viewer"] = bd.add_integrator(SITE, "viewer")
    bd.save()
    db = Database(f"sqlite:///{tmp_path / 'cloud.db'}")
    db.upgrade()
    with db.session() as s:
        inventory.upsert_site(s, SITE, "Trust")
        for gw in ("gw-a", "gw-b"):
            inventory.upsert_gateway(s, gw, SITE, secrets.token_hex(32))
    creds = bd.bridge_credentials()
    with Mosquitto(port=bd.port, config_file=bd.conf_file):
        broker = Broker(f"mqtt://127.0.0.1:{bd.port}", creds["GRIDVEND_BROKER_USERNAME"],
                        creds["GRIDVEND_BROKER_PASSWORD"])  # fmt: skip
        settings = BridgeSettings(
            broker=broker, client_id="bridge-trust", lost_contact_every_s=3600
        )
        bridge = Bridge(db, settings)
        thread = threading.Thread(target=bridge.run, daemon=True)
        thread.start()
        assert bridge.ready.wait(15), "the bridge did not connect with its own credentials"
        try:
            yield Env(db, bridge, bd.port, passwords)
        finally:
            bridge.stop()
            thread.join(30)
            db.dispose()


def _last(viewer: Client, topic: str) -> dict[str, object] | None:
    payloads = [p for t, p, _ in viewer.messages() if t == topic]
    return json.loads(payloads[-1]) if payloads else None


def _wait(what: str, check: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_forged_retained_offline_never_reaches_the_bridge_or_the_north(env: Env) -> None:
    with env.client("viewer") as viewer:
        viewer.subscribe(f"gridvend/v1/{SITE}/north/#")
        with env.client("gw-a") as a:
            a.publish(STATUS_A, b"online", retain=True)
            _wait("A online in the north", lambda: (_last(viewer, NORTH_A) or {}).get("online"))
            assert env.online("gw-a")
            # B and the integrator forge A's retained offline; then B says something true, on
            # the same path, so its arrival proves the forgery had every chance to arrive first.
            with env.client("gw-b") as b:
                b.publish(STATUS_A, b"offline", retain=True)
                viewer.publish(STATUS_A, b"offline", retain=True)
                b.publish(STATUS_B, b"online", retain=True)
                _wait("B online in the north", lambda: (_last(viewer, NORTH_B) or {}).get("online"))
            assert env.online("gw-a")
            assert all(json.loads(p)["online"] for t, p, _ in viewer.messages() if t == NORTH_A)
            # A later subscriber gets the retained truth, not the forgery.
            with env.client("viewer") as later:
                later.subscribe(f"gridvend/v1/{SITE}/north/#", STATUS_A)
                later.wait_for(NORTH_A)
                assert (_last(later, NORTH_A) or {}).get("online") is True
            # The control: A's own offline does go through, to the cloud and the north.
            a.publish(STATUS_A, b"offline", retain=True)
            _wait("A offline in the north",
                  lambda: (_last(viewer, NORTH_A) or {}).get("online") is False)  # fmt: skip
            _wait("A offline in the cloud", lambda: not env.online("gw-a"))
