"""The tenant site's one-time codes as texts: the seam ``TENANT_CODE_SENDER`` of the phone site
(``cloud.web.tenant.auth``: a callable ``(phone, code, unit_number)``) filled by the outbox.

``sender(database)`` gives that callable: each code is queued in its own transaction (the
notifier sends it within its poll interval, urgent, never held by quiet hours; it is dropped
after 5 minutes, the code's life). Where a caller has a session, ``sources.send_login_code``
queues in the caller's transaction instead.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from cloud.db import Database
from cloud.models import Unit, now_ts
from cloud.notify.sources import send_login_code


def sender(database: Database, sign: str = "") -> Callable[[str, str, str], None]:
    def send(phone: str, code: str, unit_number: str) -> None:
        with database.session() as s:
            sites = list(s.scalars(select(Unit.site_id).where(Unit.number == unit_number).limit(2)))
            site_id = sites[0] if len(sites) == 1 else None
            send_login_code(s, phone, code, site_id=site_id, sign=sign, now=now_ts())

    return send
