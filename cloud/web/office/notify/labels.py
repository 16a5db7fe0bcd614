"""What the notify screens call things, in the operator's language."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

STATES: dict[str, Any] = {
    "queued": _l("Queued"),
    "sending": _l("Sending"),
    "sent": _l("Sent out"),
    "delivered": _l("Delivered"),
    "failed": _l("Failed"),
}
KINDS: dict[str, Any] = {
    "alarm1": _l("Alarm level 1"),
    "alarm2": _l("Alarm level 2"),
    "arrears": _l("Arrears"),
    "tripped": _l("Power off for credit"),
    "restored": _l("Power restored"),
    "topup": _l("Top-up received"),
    "runway": _l("Credit running out"),
    "gateway_lost": _l("Collector lost contact"),
    "login_code": _l("Sign-in code"),
    "channel_down": _l("SMS channel down"),
}
CHANNEL_STATES: dict[str, Any] = {
    "ok": _l("Working"),
    "degraded": _l("Working, with a problem"),
    "recovering": _l("Recovering"),
    "down": _l("Down"),
}
LANGS: dict[str, Any] = {"zh_CN": _l("Chinese"), "en": _l("English")}
