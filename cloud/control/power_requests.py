"""A tenant's "request power on" from the phone site (issue 12, F41 远程控制).

What it can do: the collector's relay policy closes a prepaid meter by itself once the balance
is above its reclose level, so a tenant's request matters when the relay is open for another
reason the tenant may end — an overload trip (the latch) or a relay that did not follow. The
request is the office's ``clear_overload`` command: the collector clears the latch and
re-evaluates the relay, which then closes if the balance allows (and stays open if it does
not). It is offered only when it can help and is the tenant's to ask:

* the meter is prepaid and its account open;
* the office has not switched it off (mode ``forced_off``: 拉闸 by the office; only the office
  lifts it) and it is not on keep power (保电: the power is on anyway);
* the relay is reported open (nothing to do otherwise);
* the balance is above both the overdraft floor and the reclose level (the meter's effective
  settings), so the collector will close it: a request that cannot work is not sent.

One request at a time: while one is pending or sent, asking again returns it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import Actor
from cloud.control import commands
from cloud.control import settings as site_settings
from cloud.control.lifecycle import OPEN_STATUSES
from cloud.errors import RuleError
from cloud.models import Account, Command, Meter, now_ts
from edge.core.settings import DEFAULTS

ACTION = "clear_overload"

# Why a request is not offered (a code the page translates).
OK, NOT_PREPAID, CLOSED_ACCOUNT, FORCED_OFF, KEEP_POWER, POWER_ON, LOW_BALANCE = (
    "ok",
    "not_prepaid",
    "closed_account",
    "forced_off",
    "keep_power",
    "power_on",
    "low_balance",
)


def level_micro_yuan(session: Session, meter: Meter) -> int:
    """The balance the meter must be above for its relay to close."""
    wanted = site_settings.effective_settings(session, meter)
    floor = wanted.get("overdraft_floor_micro_yuan", DEFAULTS["overdraft_floor_micro_yuan"])
    reclose = wanted.get("reclose_micro_yuan", DEFAULTS["reclose_micro_yuan"])
    return max(int(floor), int(reclose))


def verdict(session: Session, meter: Meter) -> str:
    """``OK`` when a request may be sent, else why not."""
    if not meter.prepaid:
        return NOT_PREPAID
    account = session.get(Account, meter.account_id) if meter.account_id is not None else None
    if account is None or account.status != "open":
        return CLOSED_ACCOUNT
    if meter.mode == "forced_off":
        return FORCED_OFF
    if meter.mode == "keep_power":
        return KEEP_POWER
    if meter.relay != "open":
        return POWER_ON
    if meter.balance_micro_yuan <= level_micro_yuan(session, meter):
        return LOW_BALANCE
    return OK


def last_request(session: Session, meter_id: str) -> Command | None:
    """The newest such request of this meter (any status; the office may send one too)."""
    return session.scalars(
        select(Command)
        .where(Command.meter_id == meter_id, Command.action == ACTION)
        .order_by(Command.id.desc())
        .limit(1)
    ).first()


def request_power_on(
    session: Session, meter: Meter, actor: Actor, now: int | None = None
) -> Command:
    """Send the request (``RuleError`` naming why not, when ``verdict`` is not ``OK``); a
    request still on its way is returned instead of a second one."""
    stamp = now if now is not None else now_ts()
    open_one = session.scalars(
        select(Command)
        .where(
            Command.meter_id == meter.id,
            Command.action == ACTION,
            Command.status.in_(OPEN_STATUSES),
        )
        .order_by(Command.id.desc())
        .limit(1)
    ).first()
    if open_one is not None:
        return open_one
    why = verdict(session, meter)
    if why != OK:
        raise RuleError(f"meter {meter.id}: power on cannot be requested ({why})", why)
    (command,) = commands.issue(session, [meter], ACTION, {}, actor, now=stamp)
    return command
