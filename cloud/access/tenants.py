"""Tenants' sign-in on the phone site (issue 12): 户号 + the phone on file + a one-time code.

Who a tenant is: whoever holds the phone number on file (``Customer.phone``, compared by its
digits, a leading 86 country code ignored) for an **open** account that has a meter in the unit
with that number. What they see: the meters of those accounts (``Tenant.meter_ids``), worked
out again on every request, so a meter moved to another account, or an account closed, drops
out at once.

The code: ``CODE_DIGITS`` random digits, valid ``CODE_TTL_S``, kept only as a salted SHA-256;
a new one at most every ``RESEND_AFTER_S`` and ``MAX_SENDS_PER_DAY`` a day per (site, unit,
phone). ``MAX_TRIES`` wrong codes in a row pause that login for ``PAUSE_S`` (no code is checked
meanwhile, the right one included). A unit/phone pair that matches no tenant gets exactly the
answers a tenant's pair gets ("if they match, a code is on its way", "ask again in N seconds",
the tries left, the pause), so the page never tells a stranger whose phone is on file: its
counters are kept in a row of its own like a tenant's (under the site that has a unit with that
number, else the first site), which never holds a code and never signs anyone in.

Sessions carry the login's ``session_epoch``: signing out bumps it, ending every older cookie.
The service functions write their counters in the caller's transaction: commit even when they
raise (as ``cloud.access.operators.attempt_login``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.errors import InvalidError, RuleError, UnauthorizedError
from cloud.models import Account, AccountMeter, Customer, Meter, Site, Unit, now_ts
from cloud.models.tenants import TenantLogin

CODE_DIGITS = 6
CODE_TTL_S = 5 * 60
RESEND_AFTER_S = 60
MAX_SENDS_PER_DAY = 10
MAX_TRIES = 5
PAUSE_S = 15 * 60
_DAY_ZONE = ZoneInfo("Asia/Shanghai")  # the send counter's day
_UNIT = re.compile(r"^[^\s\x00-\x1f\x7f]{1,64}$")


class LoginPaused(UnauthorizedError):
    """Too many wrong codes: nothing is checked until ``until_ts``."""

    code = "paused"

    def __init__(self, until_ts: int, now: int) -> None:
        self.until_ts = until_ts
        self.minutes = max(1, -(-(until_ts - now) // 60))
        super().__init__(f"too many wrong codes: try again in {self.minutes} minute(s)", "code")


class WrongCode(UnauthorizedError):
    """The code is wrong or expired; ``tries_left`` before the pause."""

    code = "wrong_code"

    def __init__(self, tries_left: int) -> None:
        self.tries_left = tries_left
        super().__init__(f"the code is wrong or has expired; {tries_left} tries left", "code")


class TooSoon(RuleError):
    """A new code was asked for too soon (or too often today)."""

    code = "too_soon"

    def __init__(self, wait_s: int) -> None:
        self.wait_s = wait_s
        super().__init__(f"a code was sent a moment ago; ask again in {wait_s} s", "phone")


@dataclass(frozen=True)
class Tenant:
    """The signed-in tenant of a request."""

    login_id: int
    site_id: str
    unit_number: str
    phone: str
    account_ids: tuple[int, ...]
    meter_ids: tuple[str, ...]

    @property
    def actor(self) -> Actor:
        return Actor(f"tenant:{self.site_id}/{self.unit_number}")


@dataclass(frozen=True)
class Issued:
    """A code to deliver (``code`` is None when the pair matched no tenant: deliver nothing)."""

    code: str | None
    phone: str
    unit_number: str
    login_id: int | None


def normalise_phone(value: str) -> str:
    """The digits of a phone number, without a leading 86 country code: what is compared."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits


def check_unit(value: str) -> str:
    text = (value or "").strip()
    if not _UNIT.match(text):
        raise InvalidError("enter the unit number (户号) as on your door or contract", "unit")
    return text


def check_phone(value: str) -> str:
    digits = normalise_phone(value or "")
    if not 5 <= len(digits) <= 20:
        raise InvalidError("enter the phone number on file for your account", "phone")
    return digits


def _matches(session: Session, unit_number: str, phone: str) -> list[tuple[str, int]]:
    """(site, account id) of every open account whose customer has this phone and which holds
    a meter in a unit with this number."""
    rows = session.execute(
        select(Unit.site_id, Account.id, Customer.phone)
        .join(Meter, Meter.unit_id == Unit.id)
        .join(AccountMeter, AccountMeter.meter_id == Meter.id)
        .join(Account, Account.id == AccountMeter.account_id)
        .join(Customer, Customer.id == Account.customer_id)
        .where(
            Unit.number == unit_number,
            AccountMeter.removed_ts.is_(None),
            Account.status == "open",
        )
        .order_by(Unit.site_id, Account.id)
    ).all()
    return sorted(
        {(site, acc) for site, acc, on_file in rows if normalise_phone(on_file or "") == phone}
    )


def _login(session: Session, site_id: str, unit_number: str, phone: str, now: int) -> TenantLogin:
    row = session.scalars(
        select(TenantLogin)
        .where(
            TenantLogin.site_id == site_id,
            TenantLogin.unit_number == unit_number,
            TenantLogin.phone == phone,
        )
        .with_for_update()
    ).first()
    if row is None:
        row = TenantLogin(site_id=site_id, unit_number=unit_number, phone=phone, created_ts=now)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # a concurrent first request made it (PostgreSQL)
            return _login(session, site_id, unit_number, phone, now)
    return row


def _site_of_stranger(session: Session, unit_number: str) -> str | None:
    """Where a pair that matches no tenant keeps its counters (see the module docstring)."""
    site: str | None = session.scalar(
        select(Unit.site_id).where(Unit.number == unit_number).order_by(Unit.site_id).limit(1)
    ) or session.scalar(select(Site.id).order_by(Site.id).limit(1))
    return site


def _digest(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def request_code(session: Session, unit_number: str, phone: str, now: int | None = None) -> Issued:
    """A new one-time code for the tenant of (unit, phone), or an ``Issued`` without a code when
    the pair matches no tenant. ``TooSoon`` inside the resend interval or over the daily count;
    ``LoginPaused`` while paused."""
    stamp = now if now is not None else now_ts()
    unit_number, phone = check_unit(unit_number), check_phone(phone)
    found = _matches(session, unit_number, phone)
    site = found[0][0] if found else _site_of_stranger(session, unit_number)
    if site is None:  # no site at all: nobody to tell apart
        return Issued(None, phone, unit_number, None)
    row = _login(session, site, unit_number, phone, stamp)
    if row.paused_until_ts is not None and row.paused_until_ts > stamp:
        raise LoginPaused(row.paused_until_ts, stamp)
    if row.code_sent_ts is not None and stamp - row.code_sent_ts < RESEND_AFTER_S:
        raise TooSoon(RESEND_AFTER_S - (stamp - row.code_sent_ts))
    day = dt.datetime.fromtimestamp(stamp, _DAY_ZONE).date().isoformat()
    if row.sent_day != day:
        row.sent_day, row.sent_that_day = day, 0
    if row.sent_that_day >= MAX_SENDS_PER_DAY:
        midnight = dt.datetime.combine(
            dt.date.fromisoformat(day) + dt.timedelta(days=1), dt.time(), _DAY_ZONE
        )
        raise TooSoon(int(midnight.timestamp()) - stamp)
    if not found:  # counted like a tenant's, but no code exists and nothing is sent
        row.code_sent_ts = stamp
        row.sent_that_day += 1
        return Issued(None, phone, unit_number, None)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    row.code_salt = secrets.token_hex(16)
    row.code_hash = _digest(row.code_salt, code)
    row.code_expires_ts = stamp + CODE_TTL_S
    row.code_sent_ts = stamp
    row.sent_that_day += 1
    return Issued(code, phone, unit_number, row.id)


def verify_code(
    session: Session, unit_number: str, phone: str, code: str, now: int | None = None
) -> TenantLogin:
    """The login for a right, unexpired code (used up by this); else ``WrongCode`` (and after
    ``MAX_TRIES`` in a row ``LoginPaused``). The counters are written either way: commit."""
    stamp = now if now is not None else now_ts()
    unit_number, phone = check_unit(unit_number), check_phone(phone)
    given = (code or "").strip()
    found = _matches(session, unit_number, phone)
    site = found[0][0] if found else _site_of_stranger(session, unit_number)
    if site is None:
        raise WrongCode(MAX_TRIES)
    row = _login(session, site, unit_number, phone, stamp)
    if row.paused_until_ts is not None and row.paused_until_ts > stamp:
        raise LoginPaused(row.paused_until_ts, stamp)
    fresh = (
        bool(found)  # a stranger's row never holds a code; this is belt and braces
        and row.code_hash
        and row.code_expires_ts is not None
        and row.code_expires_ts > stamp
    )
    right = bool(fresh) and hmac.compare_digest(_digest(row.code_salt, given), row.code_hash)
    if not right:
        row.failures += 1
        if row.failures >= MAX_TRIES:
            row.failures = 0
            row.paused_until_ts = stamp + PAUSE_S
            row.code_hash = ""  # a paused login's code is gone: the next one is new
            record(
                session, Actor("tenant-login"), "tenant.paused", "tenant_login", row.id, now=stamp
            )
            raise LoginPaused(row.paused_until_ts, stamp)
        raise WrongCode(MAX_TRIES - row.failures)
    row.failures, row.paused_until_ts, row.code_hash = 0, None, ""
    row.last_login_ts = stamp
    record(
        session,
        Actor(f"tenant:{row.site_id}/{row.unit_number}"),
        "tenant.login",
        "tenant_login",
        row.id,
        now=stamp,
    )
    return row


def tenant_of(session: Session, login_id: int, epoch: int) -> Tenant | None:
    """The tenant behind a session (None when signed out since, or no longer a tenant)."""
    row = session.get(TenantLogin, login_id)
    if row is None or row.session_epoch != epoch:
        return None
    found = _matches(session, row.unit_number, row.phone)
    accounts = [acc for site, acc in found if site == row.site_id]
    if not accounts:
        return None
    meters = session.scalars(
        select(AccountMeter.meter_id)
        .join(Meter, Meter.id == AccountMeter.meter_id)
        .where(
            AccountMeter.account_id.in_(accounts),
            AccountMeter.removed_ts.is_(None),
            Meter.account_id == AccountMeter.account_id,
        )
        .order_by(AccountMeter.meter_id)
    )
    return Tenant(row.id, row.site_id, row.unit_number, row.phone, tuple(accounts), tuple(meters))


def sign_out(session: Session, login_id: int) -> None:
    """End every session of this login (the cookie's epoch no longer matches)."""
    row = session.get(TenantLogin, login_id, with_for_update=True)
    if row is not None:
        row.session_epoch += 1


def masked(phone: str) -> str:
    """138****0001: how the site shows a phone number back."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"
