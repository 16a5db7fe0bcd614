"""Buildings, floors and units over the API (F09, F12): the same service functions as the
office's 楼栋管理 tree (``cloud.park.places``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cloud.models import Unit
from cloud.park import places
from cloud.web.api import Ctx, endpoint, reject_unknown, require
from cloud.web.api.schemas import ID_STR, INT, RECORD_ID, STR, array, line, obj, opt_line

MANAGE = "park.manage"
BUILDING = obj({"id": INT, "site": STR, "name": STR, "floors": array(STR)})
UNIT = obj(
    {
        "id": INT,
        "site": STR,
        "number": STR,
        "name": STR,
        "floor": STR,
        "building": STR,
        "building_id": INT,
    }
)


@endpoint(
    "/buildings",
    "GET",
    "meters.read",
    "Buildings with their floors",
    tag="places",
    response=obj({"buildings": array(BUILDING)}),
)
def list_buildings(ctx: Ctx) -> Any:
    tree = places.tree(ctx.session)
    return {
        "buildings": [
            places.building_dict(node.building) for _site, nodes in tree.values() for node in nodes
        ]
    }


@endpoint(
    "/buildings",
    "POST",
    MANAGE,
    "Add a building to a site",
    tag="places",
    body=obj({"site": ID_STR, "name": line(100)}, ["site", "name"]),
    response=BUILDING,
    status=201,
)
def create_building(ctx: Ctx) -> Any:
    reject_unknown(ctx.body, {"site", "name"})
    b = places.create_building(
        ctx.session, require(ctx.body, "site", str), require(ctx.body, "name", str), ctx.actor
    )
    return places.building_dict(b), 201


@endpoint(
    "/buildings/<int:building_id>",
    "PATCH",
    MANAGE,
    "Rename a building",
    tag="places",
    body=obj({"name": line(100)}, ["name"]),
    response=BUILDING,
)
def rename_building(ctx: Ctx, building_id: int) -> Any:
    reject_unknown(ctx.body, {"name"})
    b = places.rename_building(ctx.session, building_id, require(ctx.body, "name", str), ctx.actor)
    return places.building_dict(b)


@endpoint(
    "/buildings/<int:building_id>",
    "DELETE",
    MANAGE,
    "Delete a building with its floors and units (409 while meters are in it)",
    tag="places",
    response=obj({"deleted": INT}),
)
def delete_building(ctx: Ctx, building_id: int) -> Any:
    places.delete_building(ctx.session, building_id, ctx.actor)
    return {"deleted": building_id}


@endpoint(
    "/buildings/<int:building_id>/floors",
    "POST",
    MANAGE,
    "Add a floor to a building",
    tag="places",
    body=obj({"name": line(100)}, ["name"]),
    response=obj({"id": INT, "name": STR}),
    status=201,
)
def create_floor(ctx: Ctx, building_id: int) -> Any:
    reject_unknown(ctx.body, {"name"})
    f = places.create_floor(ctx.session, building_id, require(ctx.body, "name", str), ctx.actor)
    return {"id": f.id, "name": f.name}, 201


@endpoint(
    "/units",
    "GET",
    "meters.read",
    "Units (by unit number) with their place",
    tag="places",
    response=obj({"units": array(UNIT)}),
)
def list_units(ctx: Ctx) -> Any:
    rows = ctx.session.scalars(select(Unit).order_by(Unit.site_id, Unit.number))
    return {"units": [places.unit_dict(u) for u in rows]}


@endpoint(
    "/units",
    "POST",
    MANAGE,
    "Add a unit (its number unique in its site) on a floor",
    tag="places",
    body=obj(
        {"floor_id": RECORD_ID, "number": line(64), "name": opt_line(200)}, ["floor_id", "number"]
    ),
    response=UNIT,
    status=201,
)
def create_unit(ctx: Ctx) -> Any:
    reject_unknown(ctx.body, {"floor_id", "number", "name"})
    u = places.create_unit(
        ctx.session,
        require(ctx.body, "floor_id", int),
        require(ctx.body, "number", str),
        ctx.body.get("name") or "",
        ctx.actor,
    )
    return places.unit_dict(u), 201


@endpoint(
    "/units/<int:unit_id>",
    "PATCH",
    MANAGE,
    "Rename a unit",
    tag="places",
    body=obj({"name": opt_line(200)}, ["name"]),
    response=UNIT,
)
def update_unit(ctx: Ctx, unit_id: int) -> Any:
    reject_unknown(ctx.body, {"name"})
    u = places.update_unit(ctx.session, unit_id, require(ctx.body, "name", str), ctx.actor)
    return places.unit_dict(u)


@endpoint(
    "/units/<int:unit_id>",
    "DELETE",
    MANAGE,
    "Delete a unit (409 while it has meters)",
    tag="places",
    response=obj({"deleted": INT}),
)
def delete_unit(ctx: Ctx, unit_id: int) -> Any:
    places.delete_unit(ctx.session, unit_id, ctx.actor)
    return {"deleted": unit_id}
