"""A live park for the cashier's screens, run as the user runs it: a private Mosquitto,
``gridvend sim`` → ``gridvend edge run`` (the simulated collector ``gw1``), ``gridvend cloud
bridge`` and ``gridvend cloud serve`` (the office UI and the API) on one SQLite file
(``tests.e2e.park.start_park``), with accounts open on meters A, B and C and one office login
per role. Used by ``tests/web/test_cashier.py`` (one park per module) and by
``tests/web/screenshots.py``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.access import auth
from cloud.audit import Actor
from cloud.models import Meter
from demo.park import Park
from tests.e2e.park import A, Api, B, C, start_park, wait_for
from tests.support.services import Mosquitto

PASSWORDS = {role: f"{role}-cashier-1" for role in auth.ROLES}
TENANTS = {A: "张三", B: "李四", C: "王五"}


@dataclass
class CashierPark:
    park: Park
    api: Api
    broker: Mosquitto
    url: str

    def login(self, page: Any, role: str) -> None:
        page.goto(self.url + "/office/login")
        page.fill("#f-username", f"web-{role}")
        page.fill("#f-password", PASSWORDS[role])
        page.click("#login-submit")
        page.wait_for_url(self.url + "/office/")

    def meter(self, meter_id: str) -> dict[str, Any]:
        """The meter as the API shows it, after checking the ledger identity on it."""
        m: dict[str, Any] = self.api.get(f"/meters/{meter_id}")
        assert m["balance_micro_yuan"] == (
            m["credits_micro_yuan"] - m["refunds_micro_yuan"] - m["charges_micro_yuan"]
        ), m
        return m

    def mirror(self, meter_id: str) -> Meter:
        with self.park.db.session() as s:
            meter = s.get(Meter, meter_id)
            assert meter is not None
            s.expunge(meter)
            return meter


@contextmanager
def running(folder: Path) -> Iterator[CashierPark]:
    """Start the park with open accounts and the office's logins; stop it all afterwards."""
    broker = Mosquitto().start()
    try:
        park, api = start_park(folder, f"sqlite:///{folder / 'cloud.db'}", broker.url)
        try:
            with park.db.session() as s:
                for role in auth.ROLES:
                    auth.create_operator(
                        s, f"web-{role}", PASSWORDS[role], role, Actor("test"),
                    )  # fmt: skip
            for meter, name in TENANTS.items():
                api.post("/accounts", {"customer": {"name": name}, "meters": [{"meter": meter}]})
            for meter in TENANTS:
                wait_for(
                    f"{meter}'s account to open on the collector",
                    lambda meter=meter: api.get(f"/meters/{meter}")["state"] != "not_opened",
                    60,
                    park,
                )
            assert park.api_url is not None
            yield CashierPark(park, api, broker, park.api_url)
        finally:
            park.stop()
    finally:
        broker.close()
