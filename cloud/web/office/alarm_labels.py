"""What every office page and export calls an alarm kind (each kind ``cloud.monitoring.alarms``
raises, and the notifier's ``sms_down:<channel>``), in the page's language: one table, used by
the board, the customer pages and the report centre."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
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
SMS_DOWN = "sms_down:"  # cloud.notify.service: a channel out of order, by name


def alarm(kind: str) -> str:
    """The label of an alarm kind (an unknown kind shows as it is)."""
    if kind.startswith(SMS_DOWN):
        return _("SMS channel down: %(channel)s", channel=kind[len(SMS_DOWN) :])
    return str(ALARMS.get(kind, kind))
