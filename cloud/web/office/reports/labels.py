"""What the report pages and their exports call things, in the page's language: alarm kinds
(every kind ``cloud.monitoring.alarms`` raises), alarm states and runway buckets. Installed into
Jinja as ``report_labels``."""

from __future__ import annotations

import sys
from typing import Any

from flask.sansio.app import App
from flask_babel import lazy_gettext as _l

ALARMS: dict[str, Any] = {
    "alarm1": _l("Alarm 1"),
    "alarm2": _l("Alarm 2"),
    "arrears": _l("Arrears"),
    "lost_contact": _l("Meter lost contact"),
    "gateway_lost_contact": _l("Collector lost contact"),
    "overload": _l("Overload"),
    "jump_held": _l("Implausible reading held"),
    "clock_drift": _l("Clock drift"),
    "relay_fault": _l("Relay fault"),
    "counter_reset": _l("Register reset"),
    "counter_wrap": _l("Register wrapped"),
    "command_failed": _l("Command failed"),
    "clock_back": _l("Clock went back"),
    "unrated": _l("Energy without a tariff"),
    "charge_gap": _l("Charges differ from the collector's"),
    "ledger_mismatch": _l("Ledger differs from the collector's"),
    "duplicate_result": _l("Purchase number used twice"),
    "unknown_meter": _l("Unknown meter reported"),
    "result_conflict": _l("Conflicting results"),
    "purchase_missing": _l("Purchase number missing"),
}
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


def alarm(kind: str) -> str:
    return str(ALARMS.get(kind, kind))


def state(alarm_row: dict[str, Any]) -> str:
    if not alarm_row["active"]:
        return str(STATES["cleared"])
    return str(STATES["handled" if alarm_row["ack_ts"] else "open"])


def install(app: App) -> None:
    app.jinja_env.globals["report_labels"] = sys.modules[__name__]
