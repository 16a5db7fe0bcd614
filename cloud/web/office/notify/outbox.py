"""短信记录 and 通道状态: every text the notifier queued, filtered in the URL (state, kind,
channel, number or meter, dates), with a page, the counts per state of the whole filtered set,
the export of that set, and a resend; and each channel's health as the notifier last wrote it,
with its down alarm.

A building-scoped operator sees the texts of the meters in their buildings only (a text with no
meter, such as a collector's lost contact or a sign-in code, is the whole park's). A sign-in
code's digits are never shown: the office must not be able to sign in as a tenant.
"""

from __future__ import annotations

import re
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, or_, select

from cloud.errors import NotFoundError
from cloud.models import Alarm, Meter, NotifyChannel, OutboxMessage, now_ts
from cloud.notify import outbox as outbox_service
from cloud.notify.lifecycle import DELIVERED, FAILED, SENT, STATES
from cloud.reporting.exports import Column, xlsx_response
from cloud.web.office.lists import arg, date_arg, day_start_ts, every_row, paginate, site_name
from cloud.web.office.notify import bp
from cloud.web.office.notify.labels import CHANNEL_STATES, KINDS
from cloud.web.office.notify.labels import STATES as STATE_LABELS
from cloud.web.office.security import current, db, page

RESENDABLE = (SENT, DELIVERED, FAILED)
COLUMNS = (
    Column("created", _l("Queued at"), "datetime"),
    Column("kind", _l("Message")),
    Column("recipient", _l("Number")),
    Column("meter", _l("Meter")),
    Column("state", _l("State")),
    Column("channel", _l("Channel")),
    Column("attempts", _l("Attempts"), "int"),
    Column("provider_id", _l("Provider's id")),
    Column("error", _l("Last error")),
    Column("text", _l("Text")),
)
_CODE = re.compile(r"\d{4,8}")


def shown_text(kind: str, text: str) -> str:
    """The text as the office may see it: a sign-in code's digits masked."""
    return _CODE.sub(lambda m: "•" * len(m.group(0)), text) if kind == "login_code" else text


def _query() -> Select[Any]:
    t = OutboxMessage
    stmt = select(t)
    scope = current().scope
    if not scope.everything:
        stmt = stmt.where(t.meter_id.in_(scope.meters(select(Meter.id))))
    if arg("state") in STATES:
        stmt = stmt.where(t.state == arg("state"))
    if arg("kind") in KINDS:
        stmt = stmt.where(t.kind == arg("kind"))
    if arg("channel"):
        stmt = stmt.where(t.channel == arg("channel")[:32])
    q = arg("q")[:64]
    if q:
        number = re.sub(r"\D", "", q)
        conditions = [t.meter_id.like(f"{q}%"), t.key.like(f"{q}%")]
        if number:
            conditions.append(t.recipient.like(f"%{number}%"))
        stmt = stmt.where(or_(*conditions))
    start, end = date_arg("from"), date_arg("to")
    if start is not None:
        stmt = stmt.where(t.created_ts >= day_start_ts(start))
    if end is not None:
        stmt = stmt.where(t.created_ts < day_start_ts(end) + 86_400)
    return stmt


def _counts(stmt: Select[Any]) -> dict[str, int]:
    sub = stmt.subquery()
    rows = db().execute(select(sub.c.state, func.count()).group_by(sub.c.state))
    return {state: int(n) for state, n in rows}


def _channels() -> list[str]:
    return [n for (n,) in db().execute(select(NotifyChannel.name).order_by(NotifyChannel.name))]


@page(bp, "/outbox", "alarms.read", endpoint="outbox")
def outbox_list() -> Any:
    stmt = _query()
    listing = paginate(stmt, order_by=OutboxMessage.id.desc())
    return render_template(
        "office/notify/outbox.html",
        listing=listing,
        counts=_counts(stmt),
        states=STATE_LABELS,
        kinds=KINDS,
        channels=_channels(),
        resendable=RESENDABLE,
        shown_text=shown_text,
    )


@page(bp, "/outbox/export", "alarms.read")
def outbox_export() -> Any:
    rows = (
        {
            "created": m.created_ts,
            "kind": str(KINDS.get(m.kind, m.kind)),
            "recipient": m.recipient,
            "meter": m.meter_id,
            "state": str(STATE_LABELS.get(m.state, m.state)),
            "channel": m.channel,
            "attempts": m.attempts,
            "provider_id": m.provider_id,
            "error": m.error,
            "text": shown_text(m.kind, m.text),
        }
        for m in every_row(_query(), order_by=OutboxMessage.id.desc())
    )
    return xlsx_response(
        _("SMS outbox"),
        COLUMNS,
        rows,
        site_name=site_name(),
        filters=[
            (_("State"), arg("state")),
            (_("Message"), arg("kind")),
            (_("Channel"), arg("channel")),
            (_("Number or meter"), arg("q")),
            (_("From"), arg("from")),
            (_("To"), arg("to")),
        ],
    )


def _in_scope(row: OutboxMessage) -> bool:
    scope = current().scope
    if scope.everything:
        return True
    meter = db().get(Meter, row.meter_id) if row.meter_id else None
    if meter is None:
        return False
    try:
        scope.check_meter(db(), meter)
    except NotFoundError:
        return False
    return True


@page(bp, "/outbox/<int:message_id>/resend", "alarms.clear", methods=("POST",), endpoint="resend")
def resend(message_id: int) -> Any:
    row = db().get(OutboxMessage, message_id)
    if row is None or not _in_scope(row):
        abort(404)
    if row.state not in RESENDABLE or row.kind == "login_code":
        flash(_("This text cannot be sent again now."), "warning")
    else:
        outbox_service.resend(db(), message_id, current().actor)
        flash(_("Queued to be sent again."), "success")
    back = request.form.get("back") or ""
    return redirect(back if back.startswith("/office/notify/") else url_for(".outbox"))


@page(bp, "/channels", "alarms.read", endpoint="channels")
def channels_page() -> Any:
    rows = list(db().scalars(select(NotifyChannel).order_by(NotifyChannel.name)))
    down = {
        a.kind.split(":", 1)[1]: a
        for a in db().scalars(
            select(Alarm).where(Alarm.active.is_(True), Alarm.kind.like("sms_down:%"))
        )
    }
    day_ago = now_ts() - 86_400
    recent = {
        (channel, state): int(n)
        for channel, state, n in db().execute(
            select(OutboxMessage.channel, OutboxMessage.state, func.count())
            .where(OutboxMessage.created_ts >= day_ago)
            .group_by(OutboxMessage.channel, OutboxMessage.state)
        )
    }
    return render_template(
        "office/notify/channels.html",
        rows=rows,
        down=down,
        recent=recent,
        states=STATE_LABELS,
        channel_states=CHANNEL_STATES,
    )
