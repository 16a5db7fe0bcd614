"""A real tenant site for the tests: a migrated SQLite file, the seeded park of the cloud tests
(and the office's operators), two tenants with phones on file, the sandbox provider in the test's
folder, and the collectors played by ``FakeEdge`` (the protocol contract, as data).

Tenant A (unit ``A-101``, phone 138 0000 0001) holds meters m-101 and m-102 on one account;
tenant B (unit ``B-201``, phone 139 0000 0002) holds m-201. The app's ``TENANT_CODE_SENDER``
(the SMS notifier's seam) is ``Outbox.send``: the test reads the codes as a phone would."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from cloud.audit import Actor
from cloud.db import Database
from cloud.money import accounts
from cloud.web import create_app
from tests.cloud.support import FakeEdge, Park, sync
from tests.web.support import make_database

TENANT_A = {"unit": "A-101", "phone": "13800000001", "meters": ("m-101", "m-102")}
TENANT_B = {"unit": "B-201", "phone": "13900000002", "meters": ("m-201",)}
# A phone as the tenants' (an iPhone-sized screen, touch, a mobile Chrome's user agent).
PHONE: dict[str, Any] = {
    "viewport": {"width": 375, "height": 740},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
}
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Outbox:
    """The login codes "sent" (what the tenants' phones received), newest last."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)

    def send(self, session: Session, phone: str, code: str, unit: str) -> None:
        self.sent.append((phone, code, unit))

    def last_code(self, phone: str) -> str:
        codes = [c for p, c, _u in self.sent if p == phone]
        assert codes, f"no code was sent to {phone}"
        return codes[-1]


@dataclass
class Site:
    db: Database
    park: Park
    app: Any
    outbox: Outbox
    edges: dict[str, FakeEdge]
    folder: Path
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, tenant: dict[str, Any]) -> Any:
        """A test client signed in as ``tenant`` (once per site: codes are rate limited)."""
        if tenant["unit"] not in self.clients:
            self.clients[tenant["unit"]] = sign_in(self, tenant)
        return self.clients[tenant["unit"]]

    def sync(self, now: int | None = None) -> int:
        """The collectors take their commands and answer (credits applied)."""
        return sync(self.db, self.edges, now=now) if now is not None else sync(self.db, self.edges)


def seed_tenants(db: Database, opened_ts: int | None = None) -> None:
    """Open the two tenants' accounts (at ``opened_ts``, default now)."""
    with db.session() as s:
        accounts.open_account(
            s,
            {"name": "Studio A productions", "phone": "+86 138 0000 0001"},
            [{"meter": m} for m in TENANT_A["meters"]],
            Actor("test"),
            number="ACC-A",
            now=opened_ts,
        )
        accounts.open_account(
            s,
            {"name": "Studio B productions", "phone": TENANT_B["phone"]},
            [{"meter": m} for m in TENANT_B["meters"]],
            Actor("test"),
            number="ACC-B",
            now=opened_ts,
        )


def make_site(tmp: Path, *, opened_ts: int | None = None, **config: Any) -> Site:
    """The site in ``tmp`` with the tenants' accounts opened at ``opened_ts`` (default now);
    ``config`` is added to the app's."""
    db, park = make_database(tmp)
    seed_tenants(db, opened_ts)
    edges = {gw: FakeEdge(gw) for gw in park.gateways}
    sync(db, edges)  # the accounts open on the collectors
    outbox = Outbox()
    app = create_app(
        {
            "TESTING": False,
            "DATABASE": db,
            "SECRET_KEY": "tenant-test-secret-0123456789",
            "PAYMENTS": {"sandbox": {"directory": str(tmp / "sandbox")}},
            "TENANT_CODE_SENDER": outbox.send,
            **config,
        }
    )
    return Site(db, park, app, outbox, edges, tmp)


def csrf(client: Any, path: str = "/t/login") -> str:
    page = client.get(path).get_data(as_text=True)
    found = _TOKEN.search(page)
    assert found is not None, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(site: Site, tenant: dict[str, Any], client: Any | None = None) -> Any:
    """A test client signed in as ``tenant`` through the login form."""
    client = client or site.app.test_client()
    token = csrf(client)
    sent = client.post(
        "/t/login",
        data={"csrf_token": token, "unit": tenant["unit"], "phone": tenant["phone"],
              "action": "send"},
    )  # fmt: skip
    assert sent.status_code == 200, sent.get_data(as_text=True)
    code = site.outbox.last_code(tenant["phone"])
    done = client.post(
        "/t/login",
        data={"csrf_token": token, "unit": tenant["unit"], "phone": tenant["phone"],
              "action": "verify", "code": code},
    )  # fmt: skip
    assert done.status_code == 302, done.get_data(as_text=True)
    return client
