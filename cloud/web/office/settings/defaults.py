"""默认参数 (F13): a site's defaults for meters without their own values (price, alarm amounts,
hoarding cap, overload), intervals and lost-contact times, the receipt header and copies;
saving can send the changed meter settings to the collectors at once."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from cloud.control import settings as site_settings
from cloud.models import Site
from cloud.web.office.forms import Form
from cloud.web.office.security import current, db, page
from cloud.web.office.settings import bp
from cloud.web.office.settings.tariffs import _price

PERMISSION = "settings.manage"
YUAN_FIELDS = ("alarm1_micro_yuan", "alarm2_micro_yuan", "hoarding_cap_micro_yuan")
# name -> (low, high) for the whole-number fields
INT_FIELDS = {
    "overload_power_w": (1, 1_000_000),
    "report_interval_s": (5, 86_400),
    "history_interval_s": (60, 86_400),
    "meter_lost_after_s": (60, 30 * 86_400),
    "gateway_lost_after_s": (30, 30 * 86_400),
    "archive_after_days": (7, 3650),
    "receipt_copies": (1, 3),
}
REQUIRED_INTS = {n for n in INT_FIELDS if n != "overload_power_w"}


def _site() -> Site | None:
    sites = list(db().scalars(select(Site).order_by(Site.id)))
    wanted = request.args.get("site") or request.form.get("site")
    return next((s for s in sites if s.id == wanted), sites[0] if sites else None)


def _page(site: Site | None, form: Form | None, status: int = 200) -> Any:
    values = site_settings.to_dict(site_settings.get(db(), site.id)) if site else {}
    sites = list(db().scalars(select(Site).order_by(Site.id)))
    return render_template(
        "office/settings/defaults.html", site=site, sites=sites, values=values, form=form
    ), status


@page(bp, "/defaults", PERMISSION, methods=("GET", "POST"), endpoint="defaults")
def defaults_page() -> Any:
    site = _site()
    if request.method == "GET" or site is None:
        return _page(site, None)
    form = Form()
    values: dict[str, Any] = {"price_micro_yuan_per_kwh": _price(form, "price", required=False)}
    for name in YUAN_FIELDS:
        values[name] = form.yuan(name, required=False)
    for name, (low, high) in INT_FIELDS.items():
        values[name] = form.integer(name, required=name in REQUIRED_INTS, low=low, high=high)
    values["alarm_sms_number"] = form.text("alarm_sms_number", required=False, max_len=32) or None
    values["receipt_header"] = form.text("receipt_header", required=False, max_len=200) or None
    a1, a2 = values["alarm1_micro_yuan"], values["alarm2_micro_yuan"]
    if a1 is not None and a2 is not None and a2 > a1:
        form.fail("alarm2_micro_yuan", _("Alarm amount 2 must not be above alarm amount 1."))
    dispatch = form.checkbox("dispatch")
    if form.ok:
        result = form.run(
            lambda: site_settings.change(db(), site.id, values, current().actor, dispatch=dispatch),
            {"price_micro_yuan_per_kwh": "price"},
        )
        if result is not None:
            _defaults, sent = result
            message = _("Defaults saved.")
            if dispatch:
                message += " " + _("Sent to %(n)d meters.", n=sent)
            flash(message, "success")
            return redirect(url_for("office_settings.defaults", site=site.id))
    return _page(site, form, 422)
