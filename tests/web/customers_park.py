"""A live park for the customer screens and the meter board, run as the user runs it: a private
Mosquitto, ``gridvend sim`` → ``gridvend edge run`` (the simulated collector ``gw1`` with eight
prepaid meters on one bus, units U1…U8), ``gridvend cloud bridge`` and ``gridvend cloud serve``
on one SQLite file, one office login per role (``web-<role>``). Meters M2, M3, M4, M5 and M7
have open accounts with credit; M1, M6 and M8 are free. ``GHOST`` (unit U9) is a meter the cloud
has and the collector does not (its edge.toml was provisioned before it was added): the
collector refuses every command to it, naming the meter. Used by
``tests/web/test_customers.py`` and ``tests/web/test_board.py`` (one park per module) and by
``tests/web/screenshots.py``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.access import auth
from cloud.audit import Actor
from cloud.models import Meter
from cloud.money import ledger
from cloud.park import inventory
from demo.park import BusPlan, GatewayPlan, Park, Plan
from tests.e2e.park import PRICE, SPEED, Api, wait_for
from tests.support.services import Mosquitto, free_port

Y = 1_000_000
M = {n: f"gw1-m-{n:02d}" for n in range(1, 9)}
GHOST = "gw1-m-99"
PASSWORDS = {role: f"{role}-board-1" for role in auth.ROLES}
# meter -> (tenant, opening credit in yuan) for the accounts open before the tests
OPENED = {M[2]: ("赵一", 100), M[3]: ("钱二", 100), M[4]: ("孙三", 60), M[5]: ("李四", 80),
          M[7]: ("周五", 100)}  # fmt: skip


def plan() -> Plan:
    return Plan(
        site="park",
        site_name="客户测试园区",
        gateways=[GatewayPlan("gw1", "B1", "F1", [BusPlan("m", "acrel-ddsy1352", 8)])],
        speed=SPEED,
        report_s=1,
        heartbeat_s=2,
        ack_timeout_s=3,
        price_micro_yuan_per_kwh=PRICE,
        units={M[n]: f"U{n}" for n in M},
        edge_defaults={"price_override_micro_yuan_per_kwh": PRICE, "rated_power_w": 2_000_000},
    )


@dataclass
class LivePark:
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
        """The meter as the API shows it, after checking the ledger identity on it (and the
        mirror against its own rows)."""
        m: dict[str, Any] = self.api.get(f"/meters/{meter_id}")
        assert m["balance_micro_yuan"] == (
            m["credits_micro_yuan"] - m["refunds_micro_yuan"] - m["charges_micro_yuan"]
        ), m
        with self.park.db.session() as s:
            ledger.verify(s, meter_id)
        return m

    def mirror(self, meter_id: str) -> Meter:
        with self.park.db.session() as s:
            meter = s.get(Meter, meter_id)
            assert meter is not None
            s.expunge(meter)
            return meter


def _start(folder: Path, broker_url: str) -> tuple[Park, Api]:
    park = Park(plan(), folder, f"sqlite:///{folder / 'cloud.db'}", broker_url)
    try:
        park.seed_inventory()
        token = "web-" + secrets.token_urlsafe(24)
        with park.db.session() as s:
            auth.create_operator(s, "e2e-admin", "e2e-password", "admin", Actor("e2e"))
            auth.create_token(s, "e2e-admin", Actor("e2e"), token=token)
            for role in auth.ROLES:
                auth.create_operator(s, f"web-{role}", PASSWORDS[role], role, Actor("test"))
        park.start_simulators()
        for meter in M.values():
            park.set_load(meter, 0)
        park.provision()
        with park.db.session() as s:
            inventory.upsert_unit(s, "park", "B1", "F1", "U9")
            inventory.upsert_meter(s, GHOST, "gw1", "m", "99", "acrel-ddsy1352", unit_no="U9")
        park.start_bridge("--command-poll", "0.2", "--retry-after", "5")
        api = Api(park.start_api(free_port()), token)
        park.start_agents()
    except BaseException:
        park.stop()
        raise
    return park, api


@contextmanager
def running(folder: Path) -> Iterator[LivePark]:
    """Start the park with its open accounts; stop it all afterwards."""
    broker = Mosquitto().start()
    try:
        park, api = _start(folder, broker.url)
        try:
            for meter, (name, credit) in OPENED.items():
                spec = {"meter": meter, "transfer_in_micro_yuan": credit * Y}
                api.post("/accounts", {"customer": {"name": name, "phone": "13800000000"},
                                       "meters": [spec]})  # fmt: skip
            for meter, (_name, credit) in OPENED.items():
                wait_for(
                    f"{meter}'s account to open with its credit",
                    lambda meter=meter, credit=credit: (
                        api.get(f"/meters/{meter}")["balance_micro_yuan"] == credit * Y
                    ),
                    90,
                    park,
                )
            assert park.api_url is not None
            yield LivePark(park, api, broker, park.api_url)
        finally:
            park.stop()
    finally:
        broker.close()
