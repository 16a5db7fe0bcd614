"""Fixtures of the end-to-end tests: a seeded cloud database (SQLite, or PostgreSQL with a
database of its own), a private Mosquitto (``mosquitto`` from tests/conftest.py), and the
bridge running in a thread of the test process."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud.audit import Actor
from cloud.bridge.worker import Bridge, BridgeSettings
from cloud.db import Database
from cloud.money import accounts
from cloud.park import inventory
from shared.broker import Broker
from shared.codec import envelope
from tests.e2e.collector import ScriptedCollector
from tests.support.services import Mosquitto

TEST_ACTOR = Actor("e2e-test")


@dataclass
class BridgeEnv:
    db: Database
    broker: Mosquitto
    bridge: Bridge
    thread: threading.Thread
    key: bytes
    site: str = "park"
    gateway: str = "gw1"

    def keyring(self) -> envelope.Keyring:
        return envelope.Keyring({1: self.key}, current=1)

    def collector(self) -> ScriptedCollector:
        return ScriptedCollector(self.broker.port, self.site, self.gateway, self.keyring())

    def restart_bridge(self, **overrides: object) -> None:
        self.bridge.stop()
        self.thread.join(30)
        settings = BridgeSettings(**{**self.bridge.settings.__dict__, **overrides})
        self.bridge = Bridge(self.db, settings)
        self.thread = threading.Thread(target=self.bridge.run, daemon=True)
        self.thread.start()
        assert self.bridge.ready.wait(15), "the bridge did not connect"


def seed_small_site(db: Database, key: bytes, meters: int = 3) -> None:
    """Site ``park``, collector ``gw1``, meters ``m1..mN`` on ``bus1``; an account on ``m1``."""

    with db.session() as s:
        inventory.upsert_site(s, "park", "Park")
        inventory.upsert_place(s, "park", "B1", "F1")
        inventory.upsert_unit(s, "park", "B1", "F1", "U1")
        inventory.upsert_gateway(s, "gw1", "park", key.hex())
        for i in range(1, meters + 1):
            inventory.upsert_meter(
                s, f"m{i}", "gw1", "bus1", str(i), "acrel-ddsy1352", unit_no="U1"
            )
    with db.session() as s:
        accounts.open_account(s, {"name": "Tenant One"}, [{"meter": "m1"}], TEST_ACTOR)


@pytest.fixture
def bridge_env(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[BridgeEnv]:
    db = Database(f"sqlite:///{tmp_path / 'cloud.db'}")
    db.upgrade()
    key = secrets.token_bytes(32)
    seed_small_site(db, key)
    settings = BridgeSettings(
        broker=Broker(mosquitto.url),
        client_id=f"bridge-{secrets.token_hex(4)}",
        command_poll_s=0.1,
        retry_after_s=2,
        lost_contact_every_s=3600,
    )
    bridge = Bridge(db, settings)
    thread = threading.Thread(target=bridge.run, daemon=True)
    thread.start()
    assert bridge.ready.wait(15), "the bridge did not connect"
    env = BridgeEnv(db, mosquitto, bridge, thread, key)
    try:
        yield env
    finally:
        env.bridge.stop()
        env.thread.join(30)
        db.dispose()
