"""角色权限: the built-in roles (read-only) and custom roles, each a set of the named
permissions in ``cloud.access.auth.PERMISSIONS``."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from cloud.access import auth, operators
from cloud.models import Operator, Role
from cloud.web.office.access import bp
from cloud.web.office.forms import Form
from cloud.web.office.security import current, db, page

PERMISSION = "operators.manage"
# What each named permission lets a person do, in the page's language (one per PERMISSIONS key;
# tests/web/test_routes.py checks none is missing).
LABELS: dict[str, Any] = {
    "meters.read": _l("See meters, collectors, commands and tariffs"),
    "meters.command": _l("Send commands to meters (trip, keep power, dispatch)"),
    "accounts.read": _l("See accounts and settlements"),
    "accounts.manage": _l("Open and close accounts, add meters"),
    "sales.read": _l("See sales and refunds"),
    "sales.sell": _l("Sell electricity"),
    "sales.refund": _l("Refund credit"),
    "sales.reverse": _l("Reverse a sale"),
    "readings.read": _l("See reading history"),
    "alarms.read": _l("See alarms"),
    "alarms.clear": _l("Clear alarms"),
    "reports.read": _l("See reports"),
    "tariffs.manage": _l("Add and edit tariffs"),
    "settings.manage": _l("Change default parameters"),
    "operators.manage": _l("Manage operators and roles"),
    "audit.read": _l("See the operation log"),
    "park.manage": _l("Edit buildings, units, collectors and meters; import meters"),
    "payments.read": _l("See online payments and the daily reconciliation"),
    "payments.manage": _l("Re-run a reconciliation and resolve its cases"),
}


def _holders() -> dict[int, int]:
    rows = db().execute(select(Operator.role_id, func.count()).group_by(Operator.role_id))
    return {int(row[0]): int(row[1]) for row in rows}


@page(bp, "/roles", PERMISSION, endpoint="roles")
def roles_list() -> Any:
    roles = list(db().scalars(select(Role).order_by(Role.id)))
    return render_template(
        "office/access/roles.html",
        roles=roles,
        holders=_holders(),
        builtin=operators.is_builtin,
        labels=LABELS,
    )


def _render(form: Form | None, role: Role | None, status: int = 200) -> Any:
    chosen = (
        set(form.values("permissions"))
        if form is not None and form.data
        else {p.name for p in role.permissions}
        if role
        else set()
    )
    return render_template(
        "office/access/role_form.html",
        form=form,
        role=role,
        permissions=list(auth.PERMISSIONS),
        labels=LABELS,
        chosen=chosen,
    ), status


def _read(form: Form) -> tuple[str, str, list[str]]:
    name = form.text("name", max_len=64)
    description = form.text("description", required=False, max_len=200)
    perms = form.values("permissions")
    if not perms:
        form.fail("permissions", _("Tick at least one permission."))
    return name, description, perms


@page(bp, "/roles/new", PERMISSION, methods=("GET", "POST"))
def role_new() -> Any:
    if request.method == "GET":
        copy = db().get(Role, request.args.get("copy", type=int) or 0)
        return _render(None, copy)
    form = Form()
    name, description, perms = _read(form)
    if form.ok:
        form.run(
            lambda: operators.create_role(
                db(), current().actor, name=name, description=description, permissions=perms
            )
        )
    if form.ok:
        flash(_("Role %(name)s added.", name=name), "success")
        return redirect(url_for("office_access.roles"))
    return _render(form, None, 422)


@page(bp, "/roles/<int:role_id>", PERMISSION, methods=("GET", "POST"))
def role_edit(role_id: int) -> Any:
    role = db().get(Role, role_id)
    if role is None:
        abort(404)
    if request.method == "GET":
        return _render(None, role)
    form = Form()
    name, description, perms = _read(form)
    if form.ok:
        form.run(
            lambda: operators.update_role(
                db(),
                role_id,
                current().actor,
                name=name,
                description=description,
                permissions=perms,
            )
        )
    if form.ok:
        flash(_("Role %(name)s saved.", name=name), "success")
        return redirect(url_for("office_access.roles"))
    return _render(form, role, 422)


@page(bp, "/roles/<int:role_id>/delete", PERMISSION, methods=("POST",))
def role_delete(role_id: int) -> Any:
    form = Form()
    form.run(lambda: operators.delete_role(db(), role_id, current().actor))
    if form.ok:
        flash(_("Role deleted."), "success")
    else:
        flash(form.message or "", "error")
    return redirect(url_for("office_access.roles"))
