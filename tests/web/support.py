"""A real office for the web tests: a migrated SQLite file, the seeded park of the cloud tests,
one operator per built-in role (username = role name, password = ``PASSWORDS[role]``), and the
Flask app served on loopback (``LiveServer``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.access import auth
from cloud.audit import Actor
from cloud.db import Database
from cloud.web import create_app
from tests.cloud.support import Park, seed_park
from tests.support.browser import LiveServer

PASSWORDS = {role: f"{role}-secret-1" for role in auth.ROLES}


@dataclass
class Office:
    db: Database
    park: Park
    url: str = ""
    server: LiveServer | None = None
    app: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def login(self, page: Any, role: str, password: str | None = None) -> None:
        """Sign in through the login form as the operator of ``role``."""
        page.goto(self.url + "/office/login")
        page.fill("#f-username", role)
        page.fill("#f-password", password or PASSWORDS[role])
        page.click("#login-submit")
        page.wait_for_url(self.url + "/office/")


def make_database(tmp: Path) -> tuple[Database, Park]:
    db = Database(f"sqlite:///{tmp / 'office.db'}")
    db.upgrade()
    with db.session() as s:
        park = seed_park(s)
        auth.ensure_roles(s)
        for role in auth.ROLES:
            auth.create_operator(s, role, PASSWORDS[role], role, Actor("test"))
    return db, park


def make_app(db: Database, tmp: Path) -> Any:
    return create_app(
        {"TESTING": False, "DATABASE": db, "SECRET_KEY": "test-secret-key-0123456789"}
    )


def start_office(tmp: Path) -> Office:
    db, park = make_database(tmp)
    app = make_app(db, tmp)
    server = LiveServer(app).start()
    return Office(db=db, park=park, url=server.url, server=server, app=app)
