"""The REST API's operators, roles, buildings and units: the same services as the office pages
(an operator made over the API signs in on the login page's service; a built-in role cannot be
changed; a building with meters is not deleted), permissions enforced, errors naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cloud.access import auth, operators
from cloud.audit import Actor
from cloud.models import Building, Floor, Operator
from tests.web.support import make_app, make_database


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("api")
    db, _park = make_database(tmp)
    with db.session() as s:
        admin = auth.create_token(s, "admin", Actor("test"))[1]
        cashier = auth.create_token(s, "cashier", Actor("test"))[1]
    app = make_app(db, tmp)
    yield {"client": app.test_client(), "db": db, "admin": admin, "cashier": cashier}
    db.dispose()


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_operator_made_over_the_api_can_sign_in_and_is_edited_and_disabled(
    api: dict[str, Any],
) -> None:
    c, h = api["client"], _h(api["admin"])
    with api["db"].session() as s:
        building = s.scalars(select(Building.id)).first()
    resp = c.post("/api/v1/operators", headers=h, json={
        "username": "li", "password": "li-password-1", "role": "viewer", "buildings": [building],
    })  # fmt: skip
    assert resp.status_code == 201, resp.json
    op = resp.json
    assert op["buildings"] == [building]
    assert "password" not in op
    with api["db"].session() as s:
        assert operators.attempt_login(s, "li", "li-password-1").username == "li"
    # A role or building the park does not have: 409 naming the field, nothing changed (a 404
    # would say the operator is missing).
    for body, field in (({"role": "nobody"}, "role"), ({"buildings": [10**9]}, "buildings")):
        resp = c.patch(f"/api/v1/operators/{op['id']}", headers=h, json=body)
        assert resp.status_code == 409, resp.json
        assert resp.json["error"]["field"] == field
    with api["db"].session() as s:
        assert operators.attempt_login(s, "li", "li-password-1").role.name == "viewer"
    resp = c.patch(
        f"/api/v1/operators/{op['id']}", headers=h, json={"role": "cashier", "active": False}
    )
    assert resp.status_code == 200
    assert resp.json["role"] == "cashier"
    assert resp.json["active"] is False
    resp = c.post(f"/api/v1/operators/{op['id']}/password", headers=h, json={"password": "short"})
    assert resp.status_code == 422
    assert resp.json["error"]["field"] == "password"


def test_operators_need_operators_manage(api: dict[str, Any]) -> None:
    resp = api["client"].get("/api/v1/operators", headers=_h(api["cashier"]))
    assert resp.status_code == 403


def test_custom_roles_are_edited_and_built_ins_stay(api: dict[str, Any]) -> None:
    c, h = api["client"], _h(api["admin"])
    resp = c.post(
        "/api/v1/roles", headers=h, json={"name": "auditor", "permissions": ["audit.read"]}
    )
    assert resp.status_code == 201
    role = resp.json
    assert role["builtin"] is False
    resp = c.patch(f"/api/v1/roles/{role['id']}", headers=h, json={"permissions": ["nope.x"]})
    assert resp.status_code == 422
    assert resp.json["error"]["field"] == "permissions[0]"  # the item the document refuses
    roles = {r["name"]: r for r in c.get("/api/v1/roles", headers=h).json["roles"]}
    resp = c.patch(f"/api/v1/roles/{roles['admin']['id']}", headers=h, json={"description": "x"})
    assert resp.status_code == 409
    assert c.delete(f"/api/v1/roles/{role['id']}", headers=h).json == {"deleted": role["id"]}


def test_buildings_floors_and_units_and_a_building_with_meters_stays(
    api: dict[str, Any],
) -> None:
    c, h = api["client"], _h(api["admin"])
    resp = c.post("/api/v1/buildings", headers=h, json={"site": "studio", "name": "C"})
    assert resp.status_code == 201
    building = resp.json["id"]
    floor = c.post(f"/api/v1/buildings/{building}/floors", headers=h, json={"name": "3"}).json
    unit = c.post("/api/v1/units", headers=h, json={"floor_id": floor["id"], "number": "C-301"})
    assert unit.status_code == 201
    assert unit.json["building"] == "C"
    dup = c.post("/api/v1/units", headers=h, json={"floor_id": floor["id"], "number": "C-301"})
    assert dup.status_code == 409  # well-formed, refused by what the site has (issue 9)
    assert dup.json["error"]["field"] == "number"
    assert c.delete(f"/api/v1/buildings/{building}", headers=h).status_code == 200
    with api["db"].session() as s:
        assert s.get(Building, building) is None
        assert s.get(Floor, floor["id"]) is None
        a = s.scalars(select(Building).where(Building.name == "A")).one().id
    resp = c.delete(f"/api/v1/buildings/{a}", headers=h)
    assert resp.status_code == 409
    assert "meter" in resp.json["error"]["message"]


def test_places_need_park_manage_to_change(api: dict[str, Any]) -> None:
    c = api["client"]
    assert c.get("/api/v1/units", headers=_h(api["cashier"])).status_code == 200
    resp = c.post(
        "/api/v1/buildings", headers=_h(api["cashier"]), json={"site": "studio", "name": "Z"}
    )
    assert resp.status_code == 403
    with api["db"].session() as s:
        assert s.scalars(select(Operator).where(Operator.username == "cashier")).one()
