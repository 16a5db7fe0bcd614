"""操作员管理: list, add, edit (role, buildings, enable/disable), reset a password."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import or_, select

from cloud.access import operators
from cloud.models import Building, Operator, Role
from cloud.web.office.access import bp
from cloud.web.office.forms import Form
from cloud.web.office.lists import arg, paginate
from cloud.web.office.security import current, db, page

PERMISSION = "operators.manage"


def _choices() -> dict[str, Any]:
    s = db()
    return {
        "roles": [(r.name, r.name) for r in s.scalars(select(Role).order_by(Role.id))],
        "buildings": list(s.scalars(select(Building).order_by(Building.site_id, Building.name))),
    }


@page(bp, "/operators", PERMISSION, endpoint="operators")
def operators_list() -> Any:
    stmt = select(Operator).join(Role, Operator.role_id == Role.id)
    if arg("q"):
        like = f"%{arg('q')}%"
        stmt = stmt.where(or_(Operator.username.ilike(like), Operator.display_name.ilike(like)))
    if arg("role"):
        stmt = stmt.where(Role.name == arg("role"))
    if arg("status") in ("active", "disabled"):
        stmt = stmt.where(Operator.active.is_(arg("status") == "active"))
    listing = paginate(stmt, order_by=Operator.id)
    return render_template("office/access/operators.html", listing=listing, **_choices())


def _building_ids(form: Form) -> list[int]:
    ids = []
    for raw in form.values("buildings"):
        if raw.isdigit():
            ids.append(int(raw))
        else:
            form.fail("buildings", _("Choose buildings from the list."))
    return ids


@page(bp, "/operators/new", PERMISSION, methods=("GET", "POST"))
def operator_new() -> Any:
    form = Form()
    if request.method == "POST":
        username = form.text("username", max_len=64)
        display_name = form.text("display_name", max_len=200)
        phone = form.text("phone", required=False, max_len=32)
        password = form.password("password", min_len=operators.MIN_PASSWORD)
        role = form.choice("role", [r for r, _n in _choices()["roles"]])
        buildings = _building_ids(form)
        if form.ok:
            op = form.run(
                lambda: operators.create(
                    db(),
                    current().actor,
                    username=username,
                    password=password,
                    role=role,
                    display_name=display_name,
                    phone=phone,
                    buildings=buildings,
                )
            )
            if op is not None:
                flash(_("Operator %(name)s added.", name=username), "success")
                return redirect(url_for("office_access.operators"))
        return render_template(
            "office/access/operator_form.html", form=form, op=None, **_choices()
        ), 422
    return render_template("office/access/operator_form.html", form=form, op=None, **_choices())


@page(bp, "/operators/<int:operator_id>", PERMISSION, methods=("GET", "POST"))
def operator_edit(operator_id: int) -> Any:
    op = db().get(Operator, operator_id)
    if op is None:
        abort(404)
    form = Form()
    if request.method == "POST":
        display_name = form.text("display_name", max_len=200)
        phone = form.text("phone", required=False, max_len=32)
        role = form.choice("role", [r for r, _n in _choices()["roles"]])
        buildings = _building_ids(form)
        if form.ok:
            form.run(
                lambda: operators.update(
                    db(),
                    operator_id,
                    current().actor,
                    display_name=display_name,
                    phone=phone,
                    role=role,
                    buildings=buildings,
                )
            )
        if form.ok:
            flash(_("Operator %(name)s saved.", name=op.username), "success")
            return redirect(url_for("office_access.operators"))
        return render_template(
            "office/access/operator_form.html", form=form, op=op, **_choices()
        ), 422
    return render_template("office/access/operator_form.html", form=None, op=op, **_choices())


@page(bp, "/operators/<int:operator_id>/active", PERMISSION, methods=("POST",))
def operator_active(operator_id: int) -> Any:
    form = Form()
    active = form.value("active") == "1"
    form.run(lambda: operators.update(db(), operator_id, current().actor, active=active))
    if form.ok:
        flash(_("Operator enabled.") if active else _("Operator disabled."), "success")
    else:
        flash(form.message or next(iter(form.errors.values())), "error")
    return redirect(url_for("office_access.operators"))


@page(bp, "/operators/<int:operator_id>/password", PERMISSION, methods=("POST",))
def operator_password(operator_id: int) -> Any:
    op = db().get(Operator, operator_id)
    if op is None:
        abort(404)
    form = Form()
    password = form.password("password", min_len=operators.MIN_PASSWORD)
    if form.ok:
        form.run(lambda: operators.reset_password(db(), operator_id, password, current().actor))
    if form.ok:
        flash(_("The password of %(name)s is reset.", name=op.username), "success")
        return redirect(url_for("office_access.operators"))
    return render_template(
        "office/access/operator_form.html", form=None, pw_form=form, op=op, **_choices()
    ), 422
