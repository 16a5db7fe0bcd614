"""What the report pages and their exports call things, in the page's language: alarm kinds
(every kind ``cloud.monitoring.alarms`` raises), alarm states and runway buckets. Installed into
Jinja as ``report_labels``."""

from __future__ import annotations

import sys
from typing import Any

from flask.sansio.app import App
from flask_babel import lazy_gettext as _l

# The alarm kinds' labels have one home; re-exported for the templates (``*_labels.alarm``).
from cloud.web.office.alarm_labels import ALARMS as ALARMS
from cloud.web.office.alarm_labels import alarm as alarm

STATES: dict[str, Any] = {
    "open": _l("Not handled"),
    "handled": _l("Handled"),
    "cleared": _l("Cleared"),
}
RUNWAY: dict[str, Any] = {
    "0": _l("Out of credit"),
    "1-3": _l("1–3 days"),
    "4-7": _l("4–7 days"),
    "8-14": _l("8–14 days"),
    "15-30": _l("15–30 days"),
    "31+": _l("More than 30 days"),
    "unknown": _l("Not known yet"),
}
ARCHIVE_KINDS: dict[str, Any] = {"csv": _l("CSV (gzip)"), "jsonl": _l("JSON Lines (gzip)")}


def state(alarm_row: dict[str, Any]) -> str:
    if not alarm_row["active"]:
        return str(STATES["cleared"])
    return str(STATES["handled" if alarm_row["ack_ts"] else "open"])


def install(app: App) -> None:
    app.jinja_env.globals["report_labels"] = sys.modules[__name__]
