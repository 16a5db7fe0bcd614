"""The API shapes of meters (list item and detail)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.control import meter_settings
from cloud.errors import NotFoundError
from cloud.models import Alarm, Bus, Meter, Unit
from cloud.money import ledger
from cloud.monitoring import alarms


def unit_numbers(session: Session, meters: list[Meter]) -> dict[int, str]:
    """Unit id → 户号 for the units these meters are in (one query)."""
    ids = {m.unit_id for m in meters if m.unit_id is not None}
    if not ids:
        return {}
    return dict(session.execute(select(Unit.id, Unit.number).where(Unit.id.in_(ids))).all())


def to_dict(meter: Meter, units: dict[int, str]) -> dict[str, Any]:
    """A meter as listed (``GET /api/v1/meters``)."""
    return {
        "id": meter.id,
        "name": meter.name,
        "unit": units.get(meter.unit_id) if meter.unit_id is not None else None,
        "gateway": meter.gateway_id,
        "address": meter.address,
        "model": meter.model,
        "prepaid": meter.prepaid,
        "account": meter.account_id,
        "state": meter.state,
        "relay": meter.relay,
        "mode": meter.mode,
        "balance_micro_yuan": meter.balance_micro_yuan,
        "energy_wh": meter.energy_wh,
        "power_w": meter.power_w,
        "last_seen": meter.last_seen_ts,
    }


def get(session: Session, meter_id: str) -> Meter:
    meter = session.get(Meter, meter_id)
    if meter is None:
        raise NotFoundError(f"meter {meter_id!r} does not exist")
    return meter


def detail(session: Session, meter: Meter) -> dict[str, Any]:
    """A meter with its ledger totals, purchase count, settings (desired, applied, pending,
    the newest refusal) and active alarms."""
    out = to_dict(meter, unit_numbers(session, [meter]))
    bus = session.get(Bus, meter.bus_id)
    active = session.scalars(
        select(Alarm).where(Alarm.meter_id == meter.id, Alarm.active.is_(True)).order_by(Alarm.id)
    )
    out.update(
        {
            "credits_micro_yuan": meter.credits_micro_yuan,
            "refunds_micro_yuan": meter.refunds_micro_yuan,
            "charges_micro_yuan": meter.charges_micro_yuan,
            "identity_holds": ledger.identity_holds(meter),
            "purchase_count": meter.purchase_count,
            "last_purchase_no": meter.last_applied_purchase_no,
            "edge_balance_micro_yuan": meter.edge_balance_micro_yuan,
            "last_reading_ts": meter.last_reading_ts,
            "bus": bus.name if bus is not None else None,
            "ct_ratio": meter.ct_ratio,
            "pt_ratio": meter.pt_ratio,
            "tariff_id": meter.tariff_id,
            "price_override_micro_yuan_per_kwh": meter.price_override_micro_yuan_per_kwh,
            "alarm1_micro_yuan": meter.alarm1_micro_yuan,
            "alarm2_micro_yuan": meter.alarm2_micro_yuan,
            "hoarding_cap_micro_yuan": meter.hoarding_cap_micro_yuan,
            "overload_power_w": meter.overload_power_w,
            # Desired and applied apart (a refused command never looks applied).
            **meter_settings.view(session, meter),
            "alarms": [alarms.to_dict(a) for a in active],
        }
    )
    return out
