"""Where messages come from: what the rest of the cloud already records, read back.

The bridge records every edge event (``Event``, unique per collector and event id) and raises
alarms from them with ``cloud.monitoring.alarms`` (one active alarm per kind and meter: a new
``Alarm`` row *is* a threshold crossing, the engine's hysteresis having kept the level from
flapping); a top-up is a ``Sale`` that became ``applied``; a collector's silence is a
``gateway_lost_contact`` alarm. The notifier scans those rows (``scan``), newest first within a
look-back window behind its cursor, and queues a message keyed on the row, so it neither
duplicates their logic nor sends twice: a row already turned into a message has its key taken.

======================  ==========================================  =========================
message kind            from                                        to
======================  ==========================================  =========================
alarm1, alarm2,         Alarm raised (kind = the level), unless      the tenant's numbers
arrears                 cleared before the scan because credit
                        came back (``alarm_clear`` or a less
                        severe level, as at an account's opening)
tripped                 Event ``trip`` with reason ``credit``, not   the tenant's numbers
                        within ``coalesce_s`` of an arrears alarm
                        (the arrears text already says it)
restored                Event ``close`` with reason ``restore``      the tenant's numbers
                        after a credit trip of at least
                        ``min_off_s`` the tenant was texted
                        about (tripped or arrears), not within
                        ``coalesce_s`` of a top-up (that text says
                        it)
topup                   Sale applied (amount, new balance)          the tenant's numbers
runway                  ``runway_scan``: an open meter with no       the tenant's numbers
                        credit alarm and credit for at most
                        ``runway_days`` days (B07); once per credit
                        level (a top-up starts a new one)
gateway_lost            Alarm ``gateway_lost_contact``               the site's alarm number
                                                                    (F13, site defaults)
login_code              ``send_login_code`` (the tenant site)        the number asking
======================  ==========================================  =========================

The tenant's numbers: their ``NotifyRecipient`` rows (each with its language, and the kinds it
takes), or the customer's phone on file in zh-CN when there are none.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.errors import InvalidError
from cloud.models import (
    Account,
    Alarm,
    Command,
    Customer,
    Event,
    Gateway,
    Meter,
    NotifyCursor,
    NotifyRecipient,
    OutboxMessage,
    Sale,
    Site,
    SiteDefaults,
    Unit,
    now_ts,
)
from cloud.monitoring.alarms import CREDIT_LEVELS, GATEWAY_LOST
from cloud.notify import outbox
from cloud.notify.templates import yuan
from cloud.reporting import usage

CURSOR = "scan_ts"


@dataclass(frozen=True)
class Scan:
    """The event settings (``[events]`` of the notifier's settings)."""

    sign: str = ""  # the text's 【signature】; "" = the site's name
    lookback_s: int = 600
    coalesce_s: int = 300
    min_off_s: int = 60  # "power restored" only after an outage at least this long
    max_age_s: int = 86400  # rows older than this when first seen are not texted
    runway_days: int = 3


@dataclass(frozen=True)
class Recipient:
    phone: str
    lang: str
    customer_id: int | None


def _digits_key(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def tenant_recipients(session: Session, meter: Meter, kind: str) -> list[Recipient]:
    if meter.account_id is None:
        return []
    account = session.get(Account, meter.account_id)
    if account is None or account.status != "open":
        return []
    rows = list(
        session.scalars(
            select(NotifyRecipient).where(
                NotifyRecipient.customer_id == account.customer_id,
                NotifyRecipient.active.is_(True),
            )
        )
    )
    if rows:
        return [
            Recipient(r.phone, r.lang, account.customer_id)
            for r in rows
            if not r.kinds or kind in r.kinds
        ]
    customer = session.get(Customer, account.customer_id)
    if customer is None or not customer.phone:
        return []
    return [Recipient(customer.phone, "zh_CN", customer.id)]


def _sign(session: Session, settings: Scan, site_id: str | None) -> str:
    if settings.sign:
        return settings.sign
    site = session.get(Site, site_id) if site_id else None
    return site.name if site is not None and site.name else "gridvend"


def _unit_of(session: Session, meter: Meter) -> str:
    """The unit a text names; with the meter too when the unit has several (a studio's three
    meters crossing alarm 2 together would send three texts a tenant cannot tell apart)."""
    unit = session.get(Unit, meter.unit_id) if meter.unit_id is not None else None
    if unit is None:
        return meter.name or meter.id
    others = session.scalar(
        select(func.count())
        .select_from(Meter)
        .where(Meter.unit_id == unit.id, Meter.id != meter.id)
    )
    return f"{unit.number} ({meter.name or meter.id})" if others else unit.number


def _to_tenants(
    session: Session,
    settings: Scan,
    meter: Meter,
    kind: str,
    key: str,
    params: dict[str, str],
    source_ts: int,
    now: int,
) -> int:
    site_id = meter.gateway.site_id
    params = {"sign": _sign(session, settings, site_id), "unit": _unit_of(session, meter), **params}
    queued = 0
    for r in tenant_recipients(session, meter, kind):
        try:
            new = outbox.enqueue(
                session,
                key=f"{key}:{_digits_key(r.phone)}",
                kind=kind,
                recipient=r.phone,
                params=params,
                lang=r.lang,
                site_id=site_id,
                meter_id=meter.id,
                customer_id=r.customer_id,
                source_ts=source_ts,
                now=now,
            )
        except InvalidError:  # a number on file that is not one: skipped, the rest still go
            continue
        queued += new is not None
    return queued


def _cursor(session: Session, now: int) -> int:
    row = session.get(NotifyCursor, CURSOR)
    return row.value if row is not None else now


def _set_cursor(session: Session, value: int) -> None:
    row = session.get(NotifyCursor, CURSOR)
    if row is None:
        session.add(NotifyCursor(name=CURSOR, value=value))
    else:
        row.value = max(row.value, value)


def scan(session: Session, settings: Scan, now: int | None = None) -> int:
    """Queue the messages the rows since the cursor (less the look-back) call for; how many."""
    stamp = now if now is not None else now_ts()
    since = max(_cursor(session, stamp) - settings.lookback_s, stamp - settings.max_age_s)
    queued = _alarms(session, settings, since, stamp)
    queued += _relay_events(session, settings, since, stamp)
    queued += _topups(session, settings, since, stamp)
    _set_cursor(session, stamp)
    return queued


def _alarms(session: Session, settings: Scan, since: int, now: int) -> int:
    queued = 0
    q = (
        select(Alarm)
        .where(Alarm.raised_ts >= since, Alarm.kind.in_((*CREDIT_LEVELS, GATEWAY_LOST)))
        .order_by(Alarm.id)
    )
    for alarm in session.scalars(q):
        if alarm.kind == GATEWAY_LOST:
            queued += _gateway_lost(session, settings, alarm, now)
            continue
        if not alarm.active and _cleared_upwards(alarm):
            continue  # credit came back before we got to it: the text would be wrong now
        meter = session.get(Meter, alarm.meter_id) if alarm.meter_id else None
        if meter is None:
            continue
        balance = _balance_of(alarm, meter)
        edge_ts = (alarm.detail or {}).get("event_ts")  # the edge's time, as relay events have
        queued += _to_tenants(
            session, settings, meter, alarm.kind, f"alarm:{alarm.id}", {"balance": yuan(balance)},
            edge_ts if isinstance(edge_ts, int) else alarm.raised_ts, now,
        )  # fmt: skip
    return queued


def _cleared_upwards(alarm: Alarm) -> bool:
    """Cleared because the balance rose (``alarm_clear``, or a less severe level), not because it
    fell further (a more severe level: that crossing happened and is texted)."""
    by = (alarm.cleared_by or "").removeprefix("event:")
    if by == "alarm_clear":
        return True
    if by in CREDIT_LEVELS and alarm.kind in CREDIT_LEVELS:
        return CREDIT_LEVELS.index(by) < CREDIT_LEVELS.index(alarm.kind)
    return False


def _balance_of(alarm: Alarm, meter: Meter) -> int:
    detail: Any = (alarm.detail or {}).get("detail")
    if isinstance(detail, dict) and isinstance(detail.get("balance_micro_yuan"), int):
        return int(detail["balance_micro_yuan"])
    return meter.balance_micro_yuan


def _gateway_lost(session: Session, settings: Scan, alarm: Alarm, now: int) -> int:
    gateway = session.get(Gateway, alarm.gateway_id) if alarm.gateway_id else None
    if gateway is None:
        return 0
    defaults = session.get(SiteDefaults, gateway.site_id)
    numbers = re.split(r"[,;\s]+", (defaults.alarm_sms_number or "") if defaults else "")
    site = session.get(Site, gateway.site_id)
    params = {
        "sign": _sign(session, settings, gateway.site_id),
        "site": site.name if site is not None else gateway.site_id,
        "gateway": gateway.id,
    }
    queued = 0
    for number in filter(None, numbers):
        try:
            new = outbox.enqueue(
                session, key=f"alarm:{alarm.id}:{_digits_key(number)}", kind="gateway_lost",
                recipient=number, params=params, site_id=gateway.site_id,
                source_ts=alarm.raised_ts, now=now,
            )  # fmt: skip
        except InvalidError:
            continue
        queued += new is not None
    return queued


def _relay_events(session: Session, settings: Scan, since: int, now: int) -> int:
    queued = 0
    q = (
        select(Event)
        .where(
            Event.received_ts >= since,
            Event.kind.in_(("trip", "close")),
            Event.meter_id.is_not(None),
        )
        .order_by(Event.id)
    )
    for event in session.scalars(q):
        reason = (event.detail or {}).get("reason")
        meter = session.get(Meter, event.meter_id)
        if meter is None:
            continue
        window = (event.received_ts - settings.coalesce_s, event.received_ts + settings.coalesce_s)
        if event.kind == "trip" and reason == "credit":
            if _arrears_near(session, meter.id, window):
                continue
            kind = "tripped"
        elif event.kind == "close" and reason == "restore":
            trip = _credit_trip_before(session, event)
            if (
                trip is None
                or event.ts - trip.ts < settings.min_off_s  # a blink, not an outage
                or not _told_off(session, meter.id, trip.ts - settings.coalesce_s, event.ts)
                or _topup_near(session, meter.id, window)
            ):
                continue
            kind = "restored"
        else:
            continue
        queued += _to_tenants(
            session, settings, meter, kind, f"event:{event.id}",
            {"balance": yuan(meter.balance_micro_yuan)}, event.ts, now,
        )  # fmt: skip
    return queued


def _arrears_near(session: Session, meter_id: str, window: tuple[int, int]) -> bool:
    return (
        session.scalars(
            select(Alarm.id).where(
                Alarm.meter_id == meter_id,
                Alarm.kind == "arrears",
                Alarm.raised_ts.between(*window),
            )
        ).first()
        is not None
    )


def _topup_near(session: Session, meter_id: str, window: tuple[int, int]) -> bool:
    return (
        session.scalars(
            select(Sale.id).where(
                Sale.meter_id == meter_id,
                Sale.status == "applied",
                Sale.resolved_ts.between(*window),
            )
        ).first()
        is not None
    )


def _credit_trip_before(session: Session, close: Event) -> Event | None:
    """The trip for credit this close ends: the meter's relay event before it, when that was
    one (a close after an overload trip, or the first close of an account, is not)."""
    previous = session.scalars(
        select(Event)
        .where(
            Event.meter_id == close.meter_id,
            Event.kind.in_(("trip", "close")),
            Event.id < close.id,
        )
        .order_by(Event.id.desc())
        .limit(1)
    ).first()
    if previous is None or previous.kind != "trip":
        return None
    return previous if (previous.detail or {}).get("reason") == "credit" else None


def _told_off(session: Session, meter_id: str, start: int, end: int) -> bool:
    """Whether the tenant was texted that the power was off (or about to be) for something that
    happened between ``start`` and ``end`` (the edge's times): "power restored" means something
    only then (at an account's opening the engine trips and closes again at once, and nobody
    was told; a later arrears text is about a later trip)."""
    return (
        session.scalars(
            select(OutboxMessage.id).where(
                OutboxMessage.meter_id == meter_id,
                OutboxMessage.kind.in_(("tripped", "arrears")),
                OutboxMessage.source_ts.between(start, end),
            )
        ).first()
        is not None
    )


def _topups(session: Session, settings: Scan, since: int, now: int) -> int:
    queued = 0
    q = select(Sale).where(Sale.status == "applied", Sale.resolved_ts >= since).order_by(Sale.id)
    for sale in session.scalars(q):
        meter = session.get(Meter, sale.meter_id)
        if meter is None:
            continue
        command = session.get(Command, sale.command_id) if sale.command_id else None
        balance = (
            command.result_balance_micro_yuan
            if command is not None and command.result_balance_micro_yuan is not None
            else meter.balance_micro_yuan
        )
        queued += _to_tenants(
            session, settings, meter, "topup", f"sale:{sale.id}",
            {"amount": yuan(sale.amount_micro_yuan), "balance": yuan(balance)},
            sale.resolved_ts or now, now,
        )  # fmt: skip
    return queued


def runway_scan(session: Session, settings: Scan, now: int | None = None) -> int:
    """B07: a reminder before alarm 1, for each open prepaid meter with no credit alarm whose
    credit lasts at most ``runway_days`` days at recent use; once per credit level (the key
    carries the meter's credits so far: a top-up starts a new runway)."""
    stamp = now if now is not None else now_ts()
    queued = 0
    alarmed = set(
        session.scalars(
            select(Alarm.meter_id).where(Alarm.active.is_(True), Alarm.kind.in_(CREDIT_LEVELS))
        )
    )
    meters = session.scalars(
        select(Meter).where(Meter.account_id.is_not(None), Meter.prepaid.is_(True))
    )
    for meter in meters:
        if meter.id in alarmed or meter.balance_micro_yuan <= 0:
            continue
        days = usage.summary(session, meter, stamp)["runway_days"]
        if not 0 < days <= settings.runway_days:
            continue
        queued += _to_tenants(
            session, settings, meter, "runway",
            f"runway:{meter.id}:{meter.account_id}:{meter.credits_micro_yuan}",
            {"days": str(days), "balance": yuan(meter.balance_micro_yuan)}, stamp, stamp,
        )  # fmt: skip
    return queued


def send_login_code(
    session: Session,
    phone: str,
    code: str,
    *,
    site_id: str | None = None,
    lang: str = "zh_CN",
    sign: str = "",
    key: str | None = None,
    now: int | None = None,
) -> int | None:
    """Queue a tenant's one-time sign-in code (for the tenant site, ``cloud.access.tenants``).
    Urgent, never held by quiet hours or the per-number limits (the tenant site limits codes
    itself), dropped after 5 minutes (the code's life). ``key`` defaults to one per (phone,
    code, minute), so a retried request does not text the same code twice. The caller
    commits; the notifier sends it within its poll interval. Returns the message id (None:
    that key was queued already)."""
    stamp = now if now is not None else now_ts()
    digest = hashlib.sha256(f"{phone}:{code}".encode()).hexdigest()[:12]
    return outbox.enqueue(
        session,
        key=key or f"login:{_digits_key(phone)}:{digest}:{stamp // 60}",
        kind="login_code",
        recipient=phone,
        params={"sign": _sign(session, Scan(sign=sign), site_id), "code": code},
        lang=lang,
        site_id=site_id,
        now=stamp,
    )
