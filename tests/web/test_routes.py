"""Every office route × every built-in role answers as the permission table says: 200 for a
page the role may open, 403 for one it may not, 302 to the login page for nobody signed in;
POSTs are refused (403) for a role without the permission before anything is read from the
form. The table is ``security.ROUTES``, filled by the ``page`` decorator; a view not declared
through it is refused, and every menu entry and permission has its label."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cloud.access import auth, operators
from cloud.audit import Actor
from cloud.control import commands
from cloud.models import Account, AuditEntry, Building, Operator, Role, Unit
from cloud.money import accounts, sales, swap
from cloud.monitoring import alarms
from cloud.park import inventory
from cloud.reporting import export_jobs
from cloud.reporting.exports import Column, write_workbook
from cloud.web.office import menu, security
from cloud.web.office.access.roles import LABELS
from tests.web.support import PASSWORDS, make_app, make_database

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("routes")
    db, park = make_database(tmp)
    with db.session() as s:
        role = operators.create_role(
            s, Actor("test"), name="reader", description="", permissions=["meters.read"]
        )
        inventory.add_tariff_version(
            s,
            "flat-1",
            {"version": 1, "effective_from": 1_767_225_600, "price_micro_yuan_per_kwh": 600_000},
            Actor("test"),
        )
        ids = {
            "operator_id": s.scalars(select(Operator.id).where(Operator.username == "admin")).one(),
            "role_id": role.id,
            "entry_id": s.scalars(select(AuditEntry.id)).first(),
            "building_id": s.scalars(select(Building.id)).first(),
            "unit_id": s.scalars(select(Unit.id)).first(),
            "gateway_id": park.gateways[0],
            "meter_id": park.meters[0],
            "tariff_id": "flat-1",
        }
    with db.session() as s:  # a money document for the sales screens' routes
        accounts.open_account(s, {"name": "Route tenant"}, [park.meters[0]], Actor("test"))
        sale, _created = sales.sell(
            s, park.meters[0], 1_000_000, "cash", Actor("test"), idempotency_key="routes-sale"
        )
        ids.update({"kind": "sale", "record_id": sale.id, "sale_id": sale.id})
    with db.session() as s:  # the customer screens' account, batch and meter swap
        account = s.scalars(select(Account)).one()
        group, _cmds = commands.batch(s, "read_now", {}, {"meters": [park.meters[1]]}, Actor("t"))
        other = accounts.open_account(s, {"name": "Swap tenant"}, [park.meters[2]], Actor("t"))
        item = swap.start(s, other.id, park.meters[2], park.meters[1], Actor("test"))
        ids.update({"account_id": account.id, "batch_id": group.id, "swap_id": item.id})
    with db.session() as s:  # the report centre's alarm to handle
        alarm, _new = alarms.raise_alarm(
            s, "lost_contact", meter_id=park.meters[3], gateway_id="gw-2"
        )
        s.flush()
        ids["alarm_id"] = alarm.id
    app = make_app(db, tmp)
    app.config["PROPAGATE_EXCEPTIONS"] = True  # a view that fails shows its traceback
    app.config["EXPORTS_DIR"] = str(tmp / "exports")
    ids["job_id"] = _finished_export(tmp / "exports")
    yield {"app": app, "ids": ids}
    db.dispose()


def _finished_export(folder: Path) -> str:
    """A background export of the whole park that every built-in role may open (they all hold
    reports.read), finished before the walk."""
    jobs = export_jobs.ExportJobs(folder)
    viewer = export_jobs.Viewer(0, frozenset({"reports.read"}), None)

    def work(out: Any, progress: Any) -> int:
        return write_workbook(
            out, "routes", [Column("n", "n", "int")], [{"n": 1}], progress=progress
        )

    job = jobs.start(owner=viewer, permission="reports.read", title="routes", filename="r.xlsx",
                     total=1, work=work)  # fmt: skip
    for _ in range(200):
        if jobs.status(job, viewer)["state"] == "done":
            return job
        time.sleep(0.05)
    raise AssertionError("the sample export did not finish")


def _client(app: Any, role: str | None) -> Any:
    client = app.test_client()
    if role is not None:
        page = client.get("/office/login").get_data(as_text=True)
        token = _TOKEN.search(page).group(1)  # type: ignore[union-attr]
        resp = client.post(
            "/office/login",
            data={"username": role, "password": PASSWORDS[role], "csrf_token": token},
        )
        assert resp.status_code == 302, role
    return client


def _office_rules(app: Any) -> list[Any]:
    return [r for r in app.url_map.iter_rules() if r.endpoint.startswith("office_")]


def _url(rule: Any, ids: dict[str, Any], missing: bool = False) -> str:
    values = {}
    for arg in rule.arguments:
        if missing:
            values[arg] = (
                999_999
                if rule._converters[arg].__class__.__name__ == "IntegerConverter"
                else "nope-none"
            )
        else:
            values[arg] = ids[arg]
    return rule.build(values, append_unknown=False)[1]


def test_every_office_view_is_declared_with_a_permission(site: dict[str, Any]) -> None:
    rules = _office_rules(site["app"])
    assert len(rules) > 25
    undeclared = [r.endpoint for r in rules if r.endpoint not in security.ROUTES]
    assert undeclared == []
    named = set(auth.PERMISSIONS) | {None, security.PUBLIC}
    assert set(security.ROUTES.values()) <= named


def test_every_permission_and_menu_entry_has_a_label() -> None:
    assert set(LABELS) == set(auth.PERMISSIONS)
    for module in menu.MENU:
        assert str(module.label)
        for entry in module.entries:
            assert entry.permission in set(auth.PERMISSIONS) | {None}


@pytest.mark.parametrize("role", [None, *auth.ROLES])
def test_every_get_route_answers_as_the_permission_table_says(
    site: dict[str, Any], role: str | None
) -> None:
    app, ids = site["app"], site["ids"]
    client = _client(app, role)
    granted = frozenset(auth.ROLES[role]) if role else frozenset()
    wrong = []
    for rule in _office_rules(app):
        if "GET" not in rule.methods:
            continue
        permission = security.ROUTES[rule.endpoint]
        if permission == security.PUBLIC:
            expected = 200
        elif role is None:
            expected = 302
        else:
            expected = 200 if permission is None or permission in granted else 403
        url = _url(rule, ids)
        resp = client.get(url)
        resp.close()  # a download streams from a spooled file: close it
        if resp.status_code != expected:
            wrong.append(f"{role} GET {url}: {resp.status_code}, expected {expected}")
        elif expected == 302:
            assert "/office/login" in resp.headers["Location"]
    assert wrong == []


@pytest.mark.parametrize("role", list(auth.ROLES))
def test_every_post_route_refuses_a_role_without_its_permission(
    site: dict[str, Any], role: str
) -> None:
    app, ids = site["app"], site["ids"]
    client = _client(app, role)
    token = _TOKEN.search(client.get("/office/password").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    granted = frozenset(auth.ROLES[role])
    wrong = []
    for rule in _office_rules(app):
        if "POST" not in rule.methods:
            continue
        permission = security.ROUTES[rule.endpoint]
        if permission in (None, security.PUBLIC) or rule.endpoint == "office_auth.logout":
            continue
        # ids that do not exist: a permitted role's POST changes nothing
        url = _url(rule, ids, missing=True)
        resp = client.post(url, data={"csrf_token": token})
        allowed = permission in granted
        if (resp.status_code == 403) == allowed:
            wrong.append(f"{role} POST {url}: {resp.status_code} (permitted: {allowed})")
    assert wrong == []


def test_a_custom_role_grants_exactly_its_permissions(site: dict[str, Any]) -> None:
    app, ids = site["app"], site["ids"]
    db = app.extensions["gridvend.db"]
    with db.session() as s:
        role = s.get(Role, ids["role_id"])
        assert role is not None
        auth.create_operator(s, "reader-1", "reader-pass-1", role.name, Actor("test"))
    PASSWORDS["reader-1"] = "reader-pass-1"
    try:
        client = _client(app, "reader-1")
        assert client.get("/office/settings/meters").status_code == 200
        assert client.get("/office/access/operators").status_code == 403
        assert client.get("/office/settings/defaults").status_code == 403
    finally:
        del PASSWORDS["reader-1"]


def test_a_building_scoped_operator_sees_and_opens_only_their_buildings(
    site: dict[str, Any],
) -> None:
    app = site["app"]
    db = app.extensions["gridvend.db"]
    with db.session() as s:
        b = s.scalars(select(Building).where(Building.name == "B")).one()
        operators.create(
            s,
            Actor("test"),
            username="only-b",
            password="only-b-pass",
            role="operator",
            buildings=[b.id],
        )
    PASSWORDS["only-b"] = "only-b-pass"
    try:
        client = _client(app, "only-b")
        page = client.get("/office/settings/meters").get_data(as_text=True)
        assert 'data-meter="m-201"' in page
        assert 'data-meter="m-101"' not in page
        assert 'data-meter="m-202"' not in page  # in no unit: outside every building scope
        assert client.get("/office/settings/meters/m-101").status_code == 404
        assert client.get("/office/settings/meters/m-201").status_code == 200
        collectors = client.get("/office/settings/collectors").get_data(as_text=True)
        assert "gw-2" in collectors
        assert "gw-1" not in collectors  # serves no meter of building B
        assert client.get("/office/settings/collectors/gw-1").status_code == 404
        tree = client.get("/office/settings/places").get_data(as_text=True)
        assert 'data-building="B"' in tree
        assert 'data-building="A"' not in tree
    finally:
        del PASSWORDS["only-b"]
