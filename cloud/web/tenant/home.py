"""The tenant's meter: the home page (balance, status, today and this month, runway, power on)
and the usage page (30 daily bars, 12 monthly bars, the time-of-use split). The figures come
from ``cloud.reporting.usage``; the power request from ``cloud.control.power_requests``."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from cloud.control import power_requests
from cloud.errors import RuleError
from cloud.models import Meter, Unit, now_ts
from cloud.reporting import usage
from cloud.web.tenant.security import current, db, page


def meter_choices() -> list[dict[str, str]]:
    """The tenant's meters for the picker: id, name and 户号."""
    who = current()
    rows = db().execute(
        select(Meter.id, Meter.name, Unit.number)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .where(Meter.id.in_(who.meter_ids))
        .order_by(Meter.id)
    )
    return [{"id": mid, "name": name or "", "unit": unit or ""} for mid, name, unit in rows]


@page("/m/<meter_id>/", "meter")
def home(meter_id: str) -> Any:
    meter: Meter = g.meter
    stamp = now_ts()
    return render_template(
        "tenant/home.html",
        meter=meter,
        figures=usage.summary(db(), meter, stamp),
        choices=meter_choices(),
        power=power_requests.verdict(db(), meter),
        request_cmd=power_requests.last_request(db(), meter.id),
    )


TOU_LABELS = {
    "sharp": _l("Critical peak"),
    "peak": _l("Peak"),
    "flat": _l("Flat"),
    "valley": _l("Valley"),
}


def chart_data(charts: dict[str, Any]) -> dict[str, Any]:
    """What static/js/tenant-charts.js draws: labels and integer Wh (the script shows kWh)."""
    tou = charts["tou"]
    return {
        "daily": {
            "labels": [d["day"][5:] for d in charts["daily"]],
            "wh": [d["energy_wh"] for d in charts["daily"]],
        },
        "monthly": {
            "labels": [m["month"] for m in charts["monthly"]],
            "wh": [m["energy_wh"] for m in charts["monthly"]],
        },
        "tou": None
        if tou is None
        else {
            "labels": [str(TOU_LABELS[b]) for b in usage.BANDS],
            "wh": [tou[b] for b in usage.BANDS],
        },
        "unit": "kWh",
    }


@page("/m/<meter_id>/usage", "meter")
def usage_page(meter_id: str) -> Any:
    meter: Meter = g.meter
    charts = usage.charts(db(), meter, now_ts())
    return render_template(
        "tenant/usage.html",
        meter=meter,
        charts=charts,
        chart_data=chart_data(charts),
        labels=TOU_LABELS,
        choices=meter_choices(),
    )


@page("/m/<meter_id>/power", "meter", methods=("POST",))
def power_on(meter_id: str) -> Any:
    """Send "request power on" (or show why it cannot be sent), then back to the home page,
    which shows the command's status."""
    meter: Meter = g.meter
    try:
        with db().begin_nested():
            power_requests.request_power_on(db(), meter, current().actor)
    except RuleError as exc:
        flash(refusal(exc.field or ""), "error")
    else:
        flash(_("Your request was sent to the meter."), "info")
    return redirect(url_for("tenant.home", meter_id=meter.id))


def refusal(why: str) -> str:
    """Why power on cannot be requested, in the page's language."""
    texts = {
        power_requests.NOT_PREPAID: _("This meter is not a prepaid meter."),
        power_requests.CLOSED_ACCOUNT: _("This meter's account is not open."),
        power_requests.FORCED_OFF: _(
            "The office switched this meter off; please contact the office."
        ),
        power_requests.KEEP_POWER: _("The office keeps this meter's power on."),
        power_requests.POWER_ON: _("The power is on."),
        power_requests.LOW_BALANCE: _("The balance is too low: top up first."),
    }
    return texts.get(why, _("Power on cannot be requested now."))
