"""The tenant site's one-time codes as texts: the seam ``TENANT_CODE_SENDER`` of the phone site
(``cloud.web.tenant.auth``: a callable ``(session, phone, code, unit_number)``) filled by the
outbox.

``sender()`` gives that callable. The code is queued in the caller's transaction, the one that
writes the code's row, so both commit together (a second transaction would wait for the first on
SQLite's one writer: the sign-in request timed out with "database is locked"). The notifier sends
it within its poll interval, urgent, never held by quiet hours; it is dropped after 5 minutes,
the code's life.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.models import Unit, now_ts
from cloud.notify.sources import send_login_code

CodeSender = Callable[[Session, str, str, str], None]


def sender(sign: str = "") -> CodeSender:
    def send(session: Session, phone: str, code: str, unit_number: str) -> None:
        sites = list(
            session.scalars(select(Unit.site_id).where(Unit.number == unit_number).limit(2))
        )
        site_id = sites[0] if len(sites) == 1 else None
        send_login_code(session, phone, code, site_id=site_id, sign=sign, now=now_ts())

    return send
