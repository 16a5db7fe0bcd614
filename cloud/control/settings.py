"""A site's default parameters (F13): read, change, and send to the collectors that use them.

A meter's own value (imported or dispatched) wins; a meter without one takes the site's
default, which the cloud sends to its collector when the meter's account opens
(``effective_settings``) and again when the default changes: otherwise the office would
change a price in the cloud while the collectors kept billing the old one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.control import commands, meter_settings
from cloud.errors import InvalidError, NotFoundError
from cloud.models import Account, Gateway, Meter, SiteDefaults, now_ts
from cloud.park import inventory

# The meter side of the defaults lives with the meter's settings (one definition).
DEFAULTED_SETTINGS = meter_settings.DEFAULTED_SETTINGS
effective_settings = meter_settings.effective_settings


def send_meter_settings(session: Session, meter: Meter, actor: Actor, now: int) -> None:
    """Before a meter's account opens, send what the collector bills and alarms it by: the cloud
    holds prices and thresholds, the collector enforces them (architecture.md, "Where the truth
    lives"). Without this a meter set up in the cloud would be sold credit and never charged."""
    if meter.tariff_id is not None:
        commands.issue(
            session, [meter], "dispatch_tariff", {"tariff_id": meter.tariff_id}, actor, now=now
        )
    settings = effective_settings(session, meter)
    if settings:
        send_settings(session, meter, settings, actor, now)


def send_settings(
    session: Session, meter: Meter, settings: dict[str, Any], actor: Actor, now: int
) -> None:
    """Queue a ``settings`` command (checked by the engine's rules) without making the values
    the meter's own: they stay defaults, which a later change of the site's defaults updates."""
    commands.enqueue(
        session,
        gateway_id=meter.gateway_id,
        meter_id=meter.id,
        op="settings",
        args=commands.validate_settings(settings),
        action="dispatch_settings",
        actor=actor,
        now=now,
    )


# The defaults an office edits (F13), with the meter setting each one stands in for.
EDITABLE: dict[str, str | None] = {
    "price_micro_yuan_per_kwh": "price_override_micro_yuan_per_kwh",
    **{name: name for name in DEFAULTED_SETTINGS},
    "report_interval_s": None,
    "history_interval_s": None,
    "alarm_sms_number": None,
    "meter_lost_after_s": None,
    "gateway_lost_after_s": None,
    "archive_after_days": None,
    # Limits of the till (issue 9): never sent to a collector (the cloud refuses above them).
    "max_sale_micro_yuan": None,
    # Receipts (F13): printed by the office, never sent to a collector.
    "receipt_header": None,
    "receipt_copies": None,
}


def to_dict(defaults: SiteDefaults) -> dict[str, Any]:
    return {"site": defaults.site_id, **{name: getattr(defaults, name) for name in EDITABLE}}


def get(session: Session, site_id: str) -> SiteDefaults:
    defaults = session.get(SiteDefaults, site_id)
    if defaults is None:
        raise NotFoundError(f"site {site_id!r} does not exist")
    return defaults


def change(
    session: Session,
    site_id: str,
    values: dict[str, Any],
    actor: Actor,
    *,
    dispatch: bool = True,
    now: int | None = None,
) -> tuple[SiteDefaults, int]:
    """Change some defaults; with ``dispatch``, send each changed meter setting to the open
    meters of the site that have no value of their own. Returns (defaults, commands sent)."""
    stamp = now if now is not None else now_ts()
    for name in values:
        if name not in EDITABLE:
            raise InvalidError(f"unknown default {name!r}; known: {', '.join(EDITABLE)}", name)
    defaults = get(session, site_id)
    before = to_dict(defaults)
    inventory.set_defaults(session, site_id, **values)
    after = to_dict(defaults)
    changed = {
        setting: after[name]
        for name, setting in EDITABLE.items()
        if setting is not None and before[name] != after[name]
    }
    sent = 0
    if dispatch and changed:
        sent = _dispatch(session, site_id, changed, actor, stamp)
    record(session, actor, "site.defaults", "site", site_id, before, after, stamp)
    return defaults, sent


def _dispatch(
    session: Session, site_id: str, changed: dict[str, Any], actor: Actor, now: int
) -> int:
    meters = session.scalars(
        select(Meter)
        .join(Gateway, Meter.gateway_id == Gateway.id)
        .join(Account, Meter.account_id == Account.id)
        .where(Gateway.site_id == site_id, Meter.prepaid.is_(True), Account.status == "open")
        .order_by(Meter.id)
    )
    sent = 0
    for meter in meters:
        own = meter.settings or {}
        args = {}
        for setting, value in changed.items():
            if getattr(meter, setting) is not None or setting in own:
                continue  # the meter's own value wins
            if setting == "price_override_micro_yuan_per_kwh" and meter.tariff_id is not None:
                continue  # priced by its tariff
            args[setting] = value  # None removes the default at the collector
        if not args:
            continue
        send_settings(session, meter, args, actor, now)
        sent += 1
    return sent
