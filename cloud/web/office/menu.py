"""The office menu as data: the seed's five modules, each entry an endpoint with the permission
it needs. The base layout shows a module only when the operator may open one of its entries,
and an entry only when they hold its permission (the view checks it again).

Adding a screen: register the view with ``security.page`` (its permission), then add an
``Entry`` here under its module. An entry whose endpoint does not exist yet is left out of
the menu (so screens of the other modules can be added one by one).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, render_template, request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from cloud.web.office.security import can, user

# Rendered menus kept per app: (language, permissions, page, script root) -> HTML.
_RENDERED = "gridvend.menu_html"
_MAX_RENDERED = 512


@dataclass(frozen=True)
class Entry:
    endpoint: str
    label: object  # a lazy string: translated when shown
    permission: str | None


@dataclass(frozen=True)
class Module:
    key: str
    label: object
    entries: tuple[Entry, ...]


MENU: tuple[Module, ...] = (
    Module(
        "access",
        _l("Login management"),
        (
            Entry("office_access.operators", _l("Operators"), "operators.manage"),
            Entry("office_access.roles", _l("Roles and permissions"), "operators.manage"),
            Entry("office_access.oplog", _l("Operation log"), "audit.read"),
            Entry("office_auth.password", _l("Change password"), None),
        ),
    ),
    Module(
        "settings",
        _l("System settings"),
        (
            Entry("office_settings.places", _l("Buildings and units"), "meters.read"),
            Entry("office_settings.collectors", _l("Collectors"), "meters.read"),
            Entry("office_settings.meters", _l("Meters"), "meters.read"),
            Entry("office_settings.tariffs", _l("Tariffs"), "meters.read"),
            Entry("office_settings.defaults", _l("Default parameters"), "settings.manage"),
            Entry("office_notify.templates", _l("SMS templates"), "settings.manage"),
        ),
    ),
    Module(
        "customers",
        _l("Customer management"),
        (
            Entry("office_board.board", _l("Meter board"), "meters.read"),
            Entry("office_board.batches", _l("Command log"), "meters.read"),
            Entry("office_customers.open_account", _l("Open account"), "accounts.manage"),
            Entry("office_customers.accounts", _l("Accounts"), "accounts.read"),
            Entry("office_customers.closed_accounts", _l("Closed accounts"), "accounts.read"),
            Entry("office_customers.readings", _l("Reading history"), "readings.read"),
        ),
    ),
    Module(
        "sales",
        _l("Sales management"),
        (
            Entry("office_sales.sell", _l("Sell electricity"), "sales.sell"),
            Entry("office_sales.refund", _l("Refund"), "sales.refund"),
            Entry("office_sales.reversal", _l("Reversal"), "sales.reverse"),
            Entry("office_sales.records", _l("Sales records"), "sales.read"),
            Entry("office_sales.refund_records", _l("Refund records"), "sales.read"),
            Entry("office_sales.daily_close", _l("Daily close"), "sales.read"),
        ),
    ),
    Module(
        "reports",
        _l("Report centre"),
        (
            Entry("office_reports.alarms", _l("Live alarms"), "alarms.read"),
            Entry("office_reports.alarm_history", _l("Alarm history"), "alarms.read"),
            Entry("office_reports.sales", _l("Sales reports"), "reports.read"),
            Entry("office_reports.energy", _l("Energy analysis"), "reports.read"),
            Entry("office_reports.instruments", _l("Instrument energy"), "reports.read"),
            Entry("office_reports.lost_contact", _l("Lost contact"), "reports.read"),
            Entry("office_reports.statement", _l("Monthly statement"), "reports.read"),
            Entry("office_reports.runway", _l("Credit runway"), "reports.read"),
            Entry("office_reports.archive", _l("Archive"), "reports.read"),
            Entry("office_payments.reconciliation", _l("Payment reconciliation"), "payments.read"),
            Entry("office_notify.outbox", _l("SMS outbox"), "alarms.read"),
            Entry("office_notify.channels", _l("SMS channels"), "alarms.read"),
        ),
    ),
)


def visible() -> list[tuple[Module, list[Entry]]]:
    """The modules and entries this operator sees (existing endpoints they may open)."""
    known = set(current_app.view_functions)
    out = []
    for module in MENU:
        entries = [e for e in module.entries if e.endpoint in known and can(e.permission)]
        if entries:
            out.append((module, entries))
    return out


def rendered() -> Markup:
    """The menu's HTML (``office/_menu.html``) for this operator. It depends only on the
    language, the operator's permissions and the page (its entry is marked), so it is drawn
    once per combination and kept: ~35 translated labels, permission checks and URLs on every
    page otherwise."""
    u = user()
    if u is None:
        return Markup("")
    key = (str(get_locale()), u.permissions, request.endpoint, request.script_root)
    kept: dict[object, Markup] = current_app.extensions.setdefault(_RENDERED, {})
    html = kept.get(key)
    if html is None:
        html = Markup(render_template("office/_menu.html"))
        if len(kept) >= _MAX_RENDERED:
            kept.clear()
        kept[key] = html
    return html
