"""Finding the meter a cashier means, and what the counter shows about it.

``find`` takes what was typed or scanned: a meter id (a scanner reads it off the meter's label
and sends Enter), a unit number (户号), or part of a tenant's name; exact matches win over
prefixes. Everything goes through the operator's building scope.

``panel`` is the info panel of the sell and refund screens: unit, tenant, meter, tariff,
balance (with credits and debits still on their way), purchase count, last purchase, the
alarm thresholds, the hoarding cap and the per-sale limit the sale itself checks
(``cloud.money.sales.sell``: the meter's cap, else the site's; the site's limit), and whether
the meter can be reached now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select

from cloud.access.scope import Scope
from cloud.control.meter_settings import effective_settings
from cloud.models import (
    Account,
    Building,
    Customer,
    Floor,
    Gateway,
    Meter,
    Sale,
    SiteDefaults,
    Tariff,
    Unit,
)
from cloud.money import receipts
from cloud.money.checks import pending_debits
from cloud.park.defaults import MAX_SALE_MICRO_YUAN
from cloud.web.office.security import db
from edge.core.settings import DEFAULTS as ENGINE_DEFAULTS

MAX_MATCHES = 20


def find(scope: Scope, text: str) -> list[Meter]:
    """The meters ``text`` names (see the module doc), at most ``MAX_MATCHES``."""
    q = text.strip()
    if not q:
        return []
    s = db()
    base = scope.meters(select(Meter)).outerjoin(Unit, Unit.id == Meter.unit_id)
    exact = list(s.scalars(base.where(Meter.id == q)))
    if exact:
        return exact
    in_unit = list(s.scalars(base.where(Unit.number == q).order_by(Meter.id)))
    if in_unit:
        return in_unit
    like = f"{q}%"
    return list(
        s.scalars(
            base.outerjoin(Account, Account.id == Meter.account_id)
            .outerjoin(Customer, Customer.id == Account.customer_id)
            .where(
                or_(
                    Meter.id.like(like),
                    Unit.number.like(like),
                    Meter.name.like(f"%{q}%"),
                    Customer.name.like(f"%{q}%"),
                )
            )
            .order_by(Unit.number, Meter.id)
            .limit(MAX_MATCHES)
        )
    )


def one_id(scope: Scope, meter_id: str) -> str | None:
    """``meter_id`` if that meter exists and is in scope (one narrow query)."""
    found = db().scalar(scope.meters(select(Meter.id)).where(Meter.id == meter_id))
    return str(found) if found is not None else None


def one(scope: Scope, meter_id: str) -> Meter | None:
    """The meter ``meter_id`` if it is in scope."""
    return db().scalars(scope.meters(select(Meter)).where(Meter.id == meter_id)).first()


@dataclass
class Panel:
    """What the counter shows about one meter (money in micro-yuan)."""

    meter: Meter
    unit: Unit | None
    place: str
    account: Account | None
    tenant: Customer | None
    tariff: str
    price_micro_yuan_per_kwh: int | None
    balance_micro_yuan: int
    pending_credits_micro_yuan: int
    pending_debits_micro_yuan: int
    purchase_count: int
    last_sale: Sale | None
    alarm1_micro_yuan: int | None
    alarm2_micro_yuan: int | None
    cap_micro_yuan: int | None
    max_sale_micro_yuan: int
    online: bool

    @property
    def counter_balance_micro_yuan(self) -> int:
        """The balance once what is on its way lands (the receipt's 'before')."""
        return (
            self.balance_micro_yuan
            + self.pending_credits_micro_yuan
            - self.pending_debits_micro_yuan
        )

    @property
    def cap_room_micro_yuan(self) -> int | None:
        """How much more the hoarding cap lets in (as the sale computes it), or None."""
        if self.cap_micro_yuan is None:
            return None
        held = self.balance_micro_yuan + self.pending_credits_micro_yuan
        return max(0, self.cap_micro_yuan - held)

    @property
    def most_to_sell_micro_yuan(self) -> int:
        room = self.cap_room_micro_yuan
        return self.max_sale_micro_yuan if room is None else min(room, self.max_sale_micro_yuan)

    @property
    def refundable_micro_yuan(self) -> int:
        """What a refund may take back now (the balance less debits on their way)."""
        return max(0, self.balance_micro_yuan - self.pending_debits_micro_yuan)

    @property
    def sellable(self) -> bool:
        return self.meter.prepaid and self.account is not None and self.account.status == "open"


def panel(meter: Meter) -> Panel:
    s = db()
    unit = s.get(Unit, meter.unit_id) if meter.unit_id is not None else None
    place = ""
    if unit is not None:
        floor = s.get(Floor, unit.floor_id)
        building = s.get(Building, floor.building_id) if floor is not None else None
        place = " ".join(
            p for p in (building.name if building else "", floor.name if floor else "") if p
        )
    account = s.get(Account, meter.account_id) if meter.account_id is not None else None
    tenant = s.get(Customer, account.customer_id) if account is not None else None
    gateway = s.get(Gateway, meter.gateway_id)
    defaults = s.get(SiteDefaults, gateway.site_id) if gateway is not None else None
    settings: dict[str, Any] = {**ENGINE_DEFAULTS, **effective_settings(s, meter)}
    tariff = ""
    if meter.tariff_id is not None:
        row = s.get(Tariff, meter.tariff_id)
        tariff = (row.name or row.id) if row is not None else meter.tariff_id
    cap = meter.hoarding_cap_micro_yuan
    if cap is None and defaults is not None:
        cap = defaults.hoarding_cap_micro_yuan
    max_sale = getattr(defaults, "max_sale_micro_yuan", None) or MAX_SALE_MICRO_YUAN
    last_sale = s.scalars(
        select(Sale).where(Sale.meter_id == meter.id).order_by(Sale.id.desc()).limit(1)
    ).first()
    online = bool(gateway is not None and gateway.online and not gateway.lost_contact)
    return Panel(
        meter=meter,
        unit=unit,
        place=place,
        account=account,
        tenant=tenant,
        tariff=tariff,
        price_micro_yuan_per_kwh=settings.get("price_override_micro_yuan_per_kwh"),
        balance_micro_yuan=meter.balance_micro_yuan,
        pending_credits_micro_yuan=receipts.pending_credits(s, meter.id),
        pending_debits_micro_yuan=pending_debits(s, meter.id),
        purchase_count=meter.purchase_count,
        last_sale=last_sale,
        alarm1_micro_yuan=settings.get("alarm1_micro_yuan"),
        alarm2_micro_yuan=settings.get("alarm2_micro_yuan"),
        cap_micro_yuan=cap,
        max_sale_micro_yuan=int(max_sale),
        online=online and not meter.lost_contact,
    )
