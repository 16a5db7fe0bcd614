"""The sign-in code through the notifier's outbox, as ``gridvend cloud serve --login-codes sms``
wires it: the login request queues the text in its own transaction (a second one waited for the
first on SQLite's one writer and the request failed with "database is locked"), and the code in
the queued text signs the tenant in."""

from __future__ import annotations

import re

from sqlalchemy import select

from cloud.models import OutboxMessage
from cloud.notify import login_codes
from tests.tenant.support import TENANT_A, csrf, make_site


def test_a_code_queued_as_a_text_signs_the_tenant_in(tmp_path):
    site = make_site(tmp_path, TENANT_CODE_SENDER=login_codes.sender())
    client = site.app.test_client()
    token = csrf(client)
    form = {"csrf_token": token, "unit": TENANT_A["unit"], "phone": TENANT_A["phone"]}
    sent = client.post("/t/login", data={**form, "action": "send"})
    assert sent.status_code == 200, sent.get_data(as_text=True)
    assert "DEMO ONLY" not in sent.get_data(as_text=True)
    with site.db.session() as s:
        [text] = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "login_code")).all()
        assert text.recipient == TENANT_A["phone"]
        found = re.search(r"(?<!\d)(\d{6})(?!\d)", text.text)
        assert found is not None, text.text
    done = client.post("/t/login", data={**form, "action": "verify", "code": found.group(1)})
    assert done.status_code == 302
