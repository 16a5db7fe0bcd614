"""电价方案: tariffs and their versions (flat, time-of-use with a 24-hour table that must cover
the day, tiered), each effective from a date; a tariff's meters with the state of the last
price dispatch to each, and 下发 to send it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from cloud.control import commands
from cloud.models import Command, Meter, Site, Tariff, TariffVersion
from cloud.park import inventory
from cloud.web.office.forms import Form
from cloud.web.office.lists import day_start_ts
from cloud.web.office.security import current, db, page
from cloud.web.office.settings import bp

MANAGE = "tariffs.manage"
BANDS: dict[str, Any] = {
    "sharp": _l("Critical peak"),
    "peak": _l("Peak"),
    "flat": _l("Flat"),
    "valley": _l("Valley"),
    "deep_valley": _l("Deep valley"),
}
KINDS: dict[str, Any] = {"flat": _l("Flat rate"), "tou": _l("Time of use"), "tiered": _l("Tiered")}
TIER_ROWS = 4


def kind_of(body: dict[str, Any]) -> str:
    if "bands" in body:
        return "tou"
    if "tiers" in body:
        return "tiered"
    return "flat"


def _price(form: Form, name: str, required: bool = True) -> int | None:
    """A price in yuan per kWh (up to 6 decimals) as micro-yuan per kWh."""
    raw = form.value(name)
    if not raw:
        if required:
            form.fail(name, _("This field is required."))
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    micro = value * 1_000_000 if value.is_finite() else Decimal(-1)
    if micro < 0 or micro != micro.to_integral_value():
        form.fail(name, _("Enter a price in yuan per kWh, like 0.6283."))
        return None
    return int(micro)


def _segments(form: Form, prices: dict[str, int]) -> list[list[str]]:
    """The 24 hour rows → the engine's day schedule; every hour needs a band that has a price."""
    hours = []
    for hour in range(24):
        name = f"h{hour:02d}"
        band = form.value(name)
        if band not in BANDS:
            form.fail(
                name,
                _("%(hour)02d:00 has no period: the table must cover the whole day.", hour=hour),
            )
        elif band not in prices:
            form.fail(name, _("%(hour)02d:00 uses a period without a price.", hour=hour))
        hours.append(band)
    segments: list[list[str]] = []
    for hour, band in enumerate(hours):
        if not segments or segments[-1][1] != band:
            segments.append([f"{hour:02d}:00", band])
    return segments


def _body(form: Form) -> dict[str, Any]:
    kind = form.choice("kind", list(KINDS))
    body: dict[str, Any] = {}
    if kind == "flat":
        body["price_micro_yuan_per_kwh"] = _price(form, "price")
    elif kind == "tou":
        prices = {
            b: p for b in BANDS if (p := _price(form, f"band_{b}", required=False)) is not None
        }
        if not prices:
            form.fail("band_flat", _("Give the price of at least one period."))
        body["bands"] = prices
        body["day"] = _segments(form, prices)
    elif kind == "tiered":
        steps = []
        for i in range(TIER_ROWS):
            start = form.integer(f"tier_from_{i}", required=False, low=0)
            price = _price(form, f"tier_price_{i}", required=False)
            if start is None and price is None:
                continue
            if start is None or price is None:
                form.fail(f"tier_from_{i}", _("Give both the threshold and the price."))
                continue
            steps.append([start, price])
        if not steps or steps[0][0] != 0:
            form.fail("tier_from_0", _("The first tier starts at 0 kWh."))
        body["tiers"] = {"period": "month", "mode": "price", "steps": steps}
    return body


@page(bp, "/tariffs", "meters.read", endpoint="tariffs")
def tariffs_list() -> Any:
    tariffs = list(db().scalars(select(Tariff).order_by(Tariff.id)))
    counts = {
        t.id: len(list(db().scalars(select(Meter.id).where(Meter.tariff_id == t.id))))
        for t in tariffs
    }
    return render_template(
        "office/settings/tariffs.html", tariffs=tariffs, counts=counts, kind_of=kind_of, kinds=KINDS
    )


def _form_page(form: Form | None, tariff: Tariff | None, status: int = 200) -> Any:
    sites = list(db().scalars(select(Site).order_by(Site.id)))
    return render_template(
        "office/settings/tariff_form.html",
        form=form,
        tariff=tariff,
        bands=BANDS,
        kinds=KINDS,
        sites=sites,
        tier_rows=TIER_ROWS,
        today=dt.date.today().isoformat(),
    ), status


@page(bp, "/tariffs/new", MANAGE, methods=("GET", "POST"))
def tariff_new() -> Any:
    tariff = (
        db().get(Tariff, request.args.get("tariff", "")) if request.args.get("tariff") else None
    )
    if request.method == "GET":
        return _form_page(None, tariff)
    form = Form()
    tariff_id = form.text("tariff_id", max_len=64)
    name = form.text("name", required=False, max_len=200)
    start = form.value("effective_from")
    try:
        effective = dt.date.fromisoformat(start)
    except ValueError:
        form.fail("effective_from", _("Enter a date like 2026-01-31."))
        effective = None
    body = _body(form)
    if form.ok and effective is not None:
        existing = db().get(Tariff, tariff_id)
        numbers = [v.version for v in existing.versions] if existing else []
        body["version"] = max(numbers, default=0) + 1
        body["effective_from"] = day_start_ts(effective)
        form.run(
            lambda: inventory.add_tariff_version(db(), tariff_id, body, current().actor, name=name),
            {"tariff_id": "tariff_id", "version": "kind"},
        )
    if form.ok:
        flash(_("Tariff %(id)s: version saved.", id=tariff_id), "success")
        return redirect(url_for("office_settings.tariff_detail", tariff_id=tariff_id))
    return _form_page(form, tariff, 422)


def _tariff(tariff_id: str) -> Tariff:
    tariff = db().get(Tariff, tariff_id)
    if tariff is None:
        abort(404)
    return tariff


@page(bp, "/tariffs/<tariff_id>", "meters.read")
def tariff_detail(tariff_id: str) -> Any:
    tariff = _tariff(tariff_id)
    meters = list(
        db().scalars(
            current()
            .scope.meters(select(Meter))
            .where(Meter.tariff_id == tariff.id)
            .order_by(Meter.id)
        )
    )
    last: dict[str, Command] = {}
    if meters:
        rows = db().scalars(
            select(Command)
            .where(
                Command.action == "dispatch_tariff", Command.meter_id.in_([m.id for m in meters])
            )
            .order_by(Command.id)
        )
        for c in rows:
            if c.meter_id is not None:
                last[c.meter_id] = c
    versions: list[TariffVersion] = sorted(tariff.versions, key=lambda v: v.version)
    return render_template(
        "office/settings/tariff.html",
        tariff=tariff,
        versions=versions,
        meters=meters,
        last=last,
        kind_of=kind_of,
        kinds=KINDS,
        bands=BANDS,
    )


@page(bp, "/tariffs/<tariff_id>/dispatch", "meters.command", methods=("POST",))
def tariff_dispatch(tariff_id: str) -> Any:
    tariff = _tariff(tariff_id)
    meters = list(
        db().scalars(
            current()
            .scope.meters(select(Meter))
            .where(Meter.tariff_id == tariff.id, Meter.prepaid.is_(True))
            .order_by(Meter.id)
        )
    )
    if not meters:
        flash(_("No prepaid meter uses this tariff."), "error")
    else:
        form = Form()
        form.run(
            lambda: commands.issue(
                db(), meters, "dispatch_tariff", {"tariff_id": tariff.id}, current().actor
            )
        )
        if form.ok:
            flash(_("Tariff sent to %(n)d meters.", n=len(meters)), "success")
        else:
            flash(form.message or "", "error")
    return redirect(url_for("office_settings.tariff_detail", tariff_id=tariff.id))
