"""The cloud's SQLAlchemy 2 models (typed ``Mapped[...]``); the schema is built by the Alembic
migrations in ``cloud/migrations`` (``gridvend cloud init-db``)."""

from cloud.models.base import Base, now_ts
from cloud.models.bridge import BridgeMember
from cloud.models.control import Command, CommandBatch
from cloud.models.devices import (
    GATEWAY_LOCK,
    Bus,
    Gateway,
    InboxEntry,
    Meter,
    PurchaseSequence,
    Quarantine,
)
from cloud.models.money import (
    APPLIED,
    PENDING,
    REJECTED,
    Account,
    AccountMeter,
    Customer,
    Refund,
    Reversal,
    Sale,
    Settlement,
    TransferIn,
)
from cloud.models.notify import (
    NotifyChannel,
    NotifyCursor,
    NotifyRecipient,
    NotifyTemplate,
    OutboxMessage,
    OutboxRef,
)
from cloud.models.payments import (
    PaymentNotification,
    PaymentOrder,
    ReconciliationCase,
    ReconciliationRun,
)
from cloud.models.people import (
    ApiToken,
    AuditEntry,
    Operator,
    Permission,
    Role,
    operator_buildings,
    role_permissions,
)
from cloud.models.place import Building, Floor, Site, SiteDefaults, Tariff, TariffVersion, Unit
from cloud.models.receipts import Receipt
from cloud.models.swaps import MeterSwap
from cloud.models.telemetry import Alarm, ArchiveRun, DailyRollup, Event, PlaceRollup, Reading
from cloud.models.tenants import TenantLogin

__all__ = [
    "APPLIED",
    "GATEWAY_LOCK",
    "PENDING",
    "REJECTED",
    "Account",
    "AccountMeter",
    "Alarm",
    "ApiToken",
    "ArchiveRun",
    "AuditEntry",
    "Base",
    "BridgeMember",
    "Building",
    "Bus",
    "Command",
    "CommandBatch",
    "Customer",
    "DailyRollup",
    "Event",
    "Floor",
    "Gateway",
    "InboxEntry",
    "Meter",
    "MeterSwap",
    "NotifyChannel",
    "NotifyCursor",
    "NotifyRecipient",
    "NotifyTemplate",
    "Operator",
    "OutboxMessage",
    "OutboxRef",
    "PaymentNotification",
    "PaymentOrder",
    "Permission",
    "PlaceRollup",
    "PurchaseSequence",
    "Quarantine",
    "Reading",
    "Receipt",
    "ReconciliationCase",
    "ReconciliationRun",
    "Refund",
    "Reversal",
    "Role",
    "Sale",
    "Settlement",
    "Site",
    "SiteDefaults",
    "Tariff",
    "TariffVersion",
    "TenantLogin",
    "TransferIn",
    "Unit",
    "now_ts",
    "operator_buildings",
    "role_permissions",
]
