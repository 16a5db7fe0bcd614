"""Server-side form checks that mark the field: a ``Form`` reads ``request.form``, each getter
checks one field and records a message in the page's language, and the template macro
``field()`` (templates/macros.html) shows the value back with the message under it.

    form = Form()
    name = form.text("display_name", required=True, max_len=200)
    if form.ok:
        form.run(lambda: operators.update(db(), ...))   # a ServiceError marks its field
    if form.ok: return redirect(...)
    return render_template(..., form=form), 422

Nothing is changed while a field is wrong: ``run`` executes the service in a savepoint, so a
refused change leaves the database as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from cloud.errors import ServiceError
from cloud.web.office.security import db

T = TypeVar("T")

# What the services refuse on these screens, in the page's language (the services speak English
# for the API and the CLI). A message not listed here is shown as the service wrote it.
SERVICE_MESSAGES: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"operator '(?P<name>.+)' already exists"),
     _l("Operator %(name)s already exists.")),
    (re.compile(r"a role named '(?P<name>.+)' already exists"),
     _l("A role named %(name)s already exists.")),
    (re.compile(r"building '(?P<name>.+)' already exists at (?P<site>.+)"),
     _l("Building %(name)s already exists at %(site)s.")),
    (re.compile(r"floor '(?P<name>.+)' already exists in (?P<building>.+)"),
     _l("Floor %(name)s already exists in %(building)s.")),
    (re.compile(r"unit (?P<number>.+) already exists at (?P<site>.+)"),
     _l("Unit %(number)s already exists at %(site)s.")),
    (re.compile(r"building (?P<name>.+) has (?P<n>\d+) meter\(s\); move or delete them first"),
     _l("Building %(name)s has %(n)s meters; move or delete them first.")),
    (re.compile(r"unit (?P<number>.+) has (?P<n>\d+) meter\(s\); move them first"),
     _l("Unit %(number)s has %(n)s meters; move them first.")),
    (re.compile(r"(?P<n>\d+) operator\(s\) hold role (?P<name>.+); give them another first"),
     _l("%(n)s operators hold role %(name)s; give them another role first.")),
    (re.compile(r"(?P<name>.+) is a built-in role; copy it into a new role instead"),
     _l("%(name)s is a built-in role; copy it into a new role instead.")),
    (re.compile(r"you cannot disable your own login"), _l("You cannot disable your own login.")),
    (re.compile(r"username must be 2–64 printable characters"),
     _l("The username must be 2–64 characters.")),
    (re.compile(r"username must not contain spaces"), _l("The username must not contain spaces.")),
    (re.compile(r"the current password is wrong"), _l("The current password is wrong.")),
    # the meter import's checks (cloud/park/imports)
    (re.compile(r"collector '(?P<id>[^']+)' does not exist; add it first.*"),
     _l("Collector %(id)s does not exist; add it first.")),
    (re.compile(r"unit '(?P<unit>[^']+)' does not exist at (?P<site>.+)"),
     _l("Unit %(unit)s does not exist at %(site)s.")),
    (re.compile(r"tariff '(?P<id>[^']+)' does not exist.*"),
     _l("Tariff %(id)s does not exist; add it first.")),
    (re.compile(r"unknown model '(?P<model>[^']+)'; known: (?P<known>.+)"),
     _l("Unknown model %(model)s; known models: %(known)s.")),
    (re.compile(r"address (?P<address>\S+) on bus (?P<bus>\S+) of (?P<gw>\S+) is meter (?P<meter>\S+?)'s.*"),
     _l("Address %(address)s on bus %(bus)s of %(gw)s is already meter %(meter)s's.")),
    (re.compile(r"must be a whole number, got (?P<value>.+)"),
     _l("must be a whole number (got %(value)s)")),
    (re.compile(r"must be between (?P<low>\S+) and (?P<high>\S+), got (?P<value>.+)"),
     _l("must be from %(low)s to %(high)s (got %(value)s)")),
    (re.compile(r"must be an amount in yuan like 12.50, got (?P<value>.+)"),
     _l("must be an amount in yuan like 12.50 (got %(value)s)")),
    (re.compile(r"must be yes or no, got (?P<value>.+)"), _l("must be yes or no (got %(value)s)")),
    (re.compile(r"must not be negative, got (?P<value>.+)"),
     _l("must not be negative (got %(value)s)")),
    (re.compile(r"meter (?P<meter>\S+): thresholds must satisfy .*a collector would refuse it.*"),
     _l("Meter %(meter)s: alarm amount 1 must be at least alarm amount 2, and both at least 0; a collector would refuse these.")),
    (re.compile(r"duplicate of row (?P<row>\d+)"), _l("duplicate (same as row %(row)s)")),
    (re.compile(r"duplicate of (?P<source>.+) row (?P<row>\d+)"),
     _l("duplicate (same as %(source)s row %(row)s)")),
    # accounts, closing, meter swaps and the board's commands (客户管理, 表计监控)
    (re.compile(r"meter (?P<meter>\S+) is not a meter of account (?P<account>\S+)"),
     _l("Meter %(meter)s is not a meter of this account.")),
    (re.compile(r"the new meter must be another meter than the old one"),
     _l("The new meter must be another meter than the old one.")),
    (re.compile(r"meter (?P<meter>\S+) already belongs to account (?P<account>\S+)"),
     _l("Meter %(meter)s already belongs to another account.")),
    (re.compile(r"meter (?P<meter>\S+) is a plain metering instrument: it has no account"),
     _l("Meter %(meter)s only meters: it takes no account.")),
    (re.compile(r"meter (?P<meter>\S+) is a plain metering instrument: it takes only read_now"),
     _l("Meter %(meter)s only meters: it can only be read.")),
    (re.compile(r"meter (?P<meter>\S+) is at another site than the account"),
     _l("Meter %(meter)s is at another site than the account.")),
    (re.compile(r"the final reading (?P<final>\d+) Wh is below the collector's last reading (?P<last>\d+) Wh of meter (?P<meter>\S+)"),
     _l("The final reading (%(final)s Wh) is below the collector's last reading of meter %(meter)s (%(last)s Wh).")),
    (re.compile(r"a final reading by hand needs the price to charge it at; meter (?P<meter>\S+) has no price in force"),
     _l("Meter %(meter)s has no price in force: a final reading by hand cannot be charged.")),
    (re.compile(r"meter (?P<meter>\S+) has (?P<what>.+) waiting for its collector; swap it once it is applied or rejected"),
     _l("Meter %(meter)s has money waiting for its collector; swap it once that is applied or refused.")),
    (re.compile(r"meter (?P<meter>\S+) has (?P<what>.+) waiting for its collector; close the account once it is applied or rejected"),
     _l("Meter %(meter)s has money waiting for its collector; close the account once that is applied or refused.")),
    (re.compile(r"meter (?P<meter>\S+) is already being settled"), _l("Meter %(meter)s is already being settled.")),
    (re.compile(r"account (?P<id>\d+) is already closed"), _l("The account is already closed.")),
    (re.compile(r"account (?P<id>\d+) is (?P<status>\S+); meters join open accounts"),
     _l("Only open accounts take meters.")),
    (re.compile(r"account (?P<id>\d+) is (?P<status>\S+); only open accounts swap"),
     _l("Only a meter of an open account can be swapped.")),
    (re.compile(r"meter swap (?P<id>\d+) is not waiting for a retry"),
     _l("This meter swap is not waiting for a retry.")),
    (re.compile(r"meter (?P<meter>\S+): thresholds must satisfy .*its collector would refuse these settings"),
     _l("Meter %(meter)s: alarm amount 1 must be at least alarm amount 2, and both at least 0; a collector would refuse these.")),
    (re.compile(r"tariff '(?P<id>[^']+)' has no versions; add one before dispatching it"),
     _l("Tariff %(id)s has no version yet; add one first.")),
    (re.compile(r"the selection matches no meter"), _l("No meter matches the filters.")),
    (re.compile(r"a sale of (?P<amount>[\d,.]+) yuan is over this site's limit of (?P<limit>[\d,.]+) yuan per sale.*"),
     _l("A sale of ¥%(amount)s is over this site's limit of ¥%(limit)s per sale.")),
    (re.compile(r"selling (?P<amount>[\d,.]+) yuan would bring meter (?P<meter>\S+) to (?P<after>[\d,.]+) yuan, over its hoarding cap of (?P<cap>[\d,.]+) yuan.*"),
     _l("Selling ¥%(amount)s would bring meter %(meter)s to ¥%(after)s, over its hoarding cap of ¥%(cap)s.")),
    (re.compile(r"is required"), _l("required")),
)  # fmt: skip


def translate(message: str) -> str:
    """A service's message in the page's language, when it is one of ``SERVICE_MESSAGES``."""
    for pattern, text in SERVICE_MESSAGES:
        found = pattern.fullmatch(message)
        if found is not None:
            return str(text) % found.groupdict()
    return message


class Form:
    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self.data: Mapping[str, Any] = data if data is not None else request.form
        self.errors: dict[str, str] = {}
        self.message: str | None = None  # an error about the whole form

    @property
    def ok(self) -> bool:
        return not self.errors and self.message is None

    def value(self, name: str) -> str:
        raw = self.data.get(name, "")
        return raw.strip() if isinstance(raw, str) else ""

    def values(self, name: str) -> list[str]:
        getlist = getattr(self.data, "getlist", None)
        return list(getlist(name)) if getlist else []

    def fail(self, name: str | None, message: str) -> None:
        if name is None:
            self.message = message
        else:
            self.errors.setdefault(name, message)

    def text(self, name: str, *, required: bool = True, max_len: int = 200) -> str:
        value = self.value(name)
        if required and not value:
            self.fail(name, _("This field is required."))
        elif len(value) > max_len:
            self.fail(name, _("At most %(n)d characters.", n=max_len))
        return value

    def password(self, name: str, *, min_len: int = 8) -> str:
        raw = self.data.get(name, "")
        value = raw if isinstance(raw, str) else ""
        if len(value) < min_len:
            self.fail(name, _("The password needs at least %(n)d characters.", n=min_len))
        return value

    def integer(
        self, name: str, *, required: bool = True, low: int | None = None, high: int | None = None
    ) -> int | None:
        raw = self.value(name)
        if not raw:
            if required:
                self.fail(name, _("This field is required."))
            return None
        try:
            value = int(raw)
        except ValueError:
            self.fail(name, _("Enter a whole number."))
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(name, _("Enter a number from %(low)s to %(high)s.", low=low, high=high))
            return None
        return value

    def yuan(self, name: str, *, required: bool = True) -> int | None:
        """An amount in yuan (at most 2 decimals, not negative) as integer micro-yuan."""
        raw = self.value(name).replace(",", "")
        if not raw:
            if required:
                self.fail(name, _("This field is required."))
            return None
        try:
            amount = Decimal(raw)
        except InvalidOperation:
            self.fail(name, _("Enter an amount in yuan, like 12.50."))
            return None
        if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
            self.fail(name, _("Enter an amount in yuan, like 12.50."))
            return None
        return int(amount * 1_000_000)

    def choice(self, name: str, choices: Mapping[str, Any] | list[str]) -> str:
        value = self.value(name)
        if value not in choices:
            self.fail(name, _("Choose one of the options."))
        return value

    def checkbox(self, name: str) -> bool:
        return self.value(name) in ("1", "on", "yes", "true")

    def run(self, action: Callable[[], T], field_map: Mapping[str, str] | None = None) -> T | None:
        """Do a service call in a savepoint; a ``ServiceError`` marks its field (or the form)
        with the service's message and leaves the database unchanged."""
        try:
            with db().begin_nested():
                return action()
        except ServiceError as exc:
            name = (field_map or {}).get(exc.field or "", exc.field)
            if name is not None and name in self.data:
                self.fail(name, translate(exc.message))
            else:
                self.fail(None, translate(exc.message))
            return None
