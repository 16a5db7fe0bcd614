"""楼栋管理: the site → building → floor → unit tree with unit and meter counts; add a building,
a floor or a unit, rename, delete (refused while meters are attached)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from cloud.models import Building, Floor, Site, Unit
from cloud.park import places
from cloud.web.office.forms import Form
from cloud.web.office.lists import arg
from cloud.web.office.security import current, db, page
from cloud.web.office.settings import bp

MANAGE = "park.manage"


def _render(form: Form | None = None, status: int = 200) -> Any:
    u = current()
    sites = list(db().scalars(select(Site).order_by(Site.id)))
    tree = places.tree(db(), u.scope, arg("name"))
    scope_ids = u.scope.building_ids
    buildings = [
        b
        for b in db().scalars(select(Building).order_by(Building.site_id, Building.name))
        if scope_ids is None or b.id in scope_ids
    ]
    floors = [f for b in buildings for f in sorted(b.floors, key=lambda f: f.name)]
    return render_template(
        "office/settings/places.html",
        tree=tree,
        sites=sites,
        buildings=buildings,
        floors=floors,
        form=form,
    ), status


@page(bp, "/places", "meters.read", endpoint="places")
def places_tree() -> Any:
    return _render()


def _done(form: Form, message: str) -> Any:
    if form.ok:
        flash(message, "success")
        return redirect(url_for("office_settings.places"))
    return _render(form, 422)


@page(bp, "/places/buildings", MANAGE, methods=("POST",))
def building_add() -> Any:
    form = Form()
    site = form.choice("site_id", [s.id for s in db().scalars(select(Site))])
    name = form.text("building_name", max_len=100)
    if form.ok:
        form.run(
            lambda: places.create_building(db(), site, name, current().actor),
            {"name": "building_name"},
        )
    return _done(form, _("Building %(name)s added.", name=name))


def _building_in_scope(form: Form, field: str) -> int | None:
    building_id = form.integer(field)
    if building_id is not None and not current().scope.allows_building(building_id):
        form.fail(field, _("Choose buildings from the list."))
    return building_id


@page(bp, "/places/floors", MANAGE, methods=("POST",))
def floor_add() -> Any:
    form = Form()
    building_id = _building_in_scope(form, "building_id")
    name = form.text("floor_name", max_len=100)
    if form.ok and building_id is not None:
        form.run(
            lambda: places.create_floor(db(), building_id, name, current().actor),
            {"name": "floor_name"},
        )
    return _done(form, _("Floor %(name)s added.", name=name))


@page(bp, "/places/units", MANAGE, methods=("POST",))
def unit_add() -> Any:
    form = Form()
    floor_id = form.integer("floor_id")
    number = form.text("unit_number", max_len=64)
    name = form.text("unit_name", required=False, max_len=200)
    floor = db().get(Floor, floor_id) if floor_id is not None else None
    if floor_id is not None and (
        floor is None or not current().scope.allows_building(floor.building_id)
    ):
        form.fail("floor_id", _("Choose one of the options."))
    if form.ok and floor_id is not None:
        form.run(
            lambda: places.create_unit(db(), floor_id, number, name, current().actor),
            {"number": "unit_number", "name": "unit_name"},
        )
    return _done(form, _("Unit %(number)s added.", number=number))


@page(bp, "/places/buildings/<int:building_id>/delete", MANAGE, methods=("POST",))
def building_delete(building_id: int) -> Any:
    if not current().scope.allows_building(building_id):
        return redirect(url_for("office_settings.places"))
    form = Form()
    form.run(lambda: places.delete_building(db(), building_id, current().actor))
    if form.ok:
        flash(_("Building deleted."), "success")
    else:
        flash(_("Not deleted: %(reason)s", reason=form.message or ""), "error")
    return redirect(url_for("office_settings.places"))


@page(bp, "/places/units/<int:unit_id>/delete", MANAGE, methods=("POST",))
def unit_delete(unit_id: int) -> Any:
    unit = db().get(Unit, unit_id)
    if unit is None or not current().scope.allows_building(unit.floor.building_id):
        return redirect(url_for("office_settings.places"))
    form = Form()
    form.run(lambda: places.delete_unit(db(), unit_id, current().actor))
    if form.ok:
        flash(_("Unit deleted."), "success")
    else:
        flash(_("Not deleted: %(reason)s", reason=form.message or ""), "error")
    return redirect(url_for("office_settings.places"))
