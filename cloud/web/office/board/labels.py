"""What the board and the command status page show, in the page's language: the board's states
(the colour is never the only sign: each tile and row spells its state), the badges, the
actions and a command's lifecycle (B03). Installed into Jinja as ``board_labels``."""

from __future__ import annotations

import sys
from typing import Any

from flask.sansio.app import App
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

# The alarm kinds' labels have one home; re-exported for the templates (``*_labels.alarm``).
from cloud.web.office.alarm_labels import ALARMS as ALARMS
from cloud.web.office.alarm_labels import alarm as alarm

STATES: dict[str, Any] = {
    "opened": _l("Opened"),
    "alarm1": _l("Alarm 1"),
    "alarm2": _l("Alarm 2"),
    "arrears": _l("Arrears"),
    "not_opened": _l("Not opened"),
    "lost_contact": _l("Out of contact"),
}
FLAGS: dict[str, Any] = {"keep_power": _l("Keep power"), "tripped": _l("Relay tripped")}
# The board's actions (cloud.control.commands.ACTIONS), in the toolbar's order.
ACTIONS: dict[str, Any] = {
    "keep_power": _l("Keep power"),
    "restore_prepaid": _l("Restore prepaid"),
    "trip": _l("Trip"),
    "close": _l("Close (switch on)"),
    "dispatch_tariff": _l("Push tariff"),
    "dispatch_settings": _l("Push settings"),
    "read_now": _l("Read now"),
}
# Every command an office screen may list (the board's and the ones money and accounts send).
COMMANDS: dict[str, Any] = {
    **ACTIONS,
    "open_account": _l("Open account"),
    "close_account": _l("Close account"),
    "credit": _l("Credit"),
    "sale": _l("Sale"),
    "refund": _l("Refund"),
    "reversal": _l("Reversal"),
    "transfer_in": _l("Transfer-in"),
    "clear_overload": _l("Clear overload"),
    "resolve_anomaly": _l("Resolve reading anomaly"),
    "ping": _l("Test communication"),
    "tariff": _l("Tariff versions"),
}
# Actions that cut or force power: asked twice, with a reason.
DANGEROUS = frozenset({"trip", "close", "keep_power", "restore_prepaid"})
# The lifecycle (cloud.control.lifecycle) as the steps the page draws.
STEPS = ("pending", "sent", "applied", "verified")
LIFECYCLE: dict[str, Any] = {
    "pending": _l("Waiting"),
    "sent": _l("Sent to the collector"),
    "applied": _l("Carried out"),
    "verified": _l("Verified"),
    "rejected": _l("Failed"),
}
# The command status page's summary: how many reached each step.
SUMMARY: dict[str, Any] = {
    "total": _l("Commands sent"),
    "sent": _l("Sent to the collector"),
    "applied": _l("Carried out"),
    "verified": _l("Verified"),
    "rejected": _l("Failed"),
    "open": _l("Still on their way"),
}
RELAY: dict[str, Any] = {
    "open": _l("Relay tripped"),
    "closed": _l("Power on"),
    "unknown": _l("Unknown"),
}
MODES: dict[str, Any] = {
    "prepaid": _l("Prepaid mode"),
    "keep_power": _l("Keep power"),
    "forced_off": _l("Forced off"),
}

# A meter swap (cloud.money.swap.state).
SWAPS: dict[str, Any] = {
    "closing": _l("The old meter is being settled"),
    "rejected": _l("Refused by the collector: retry"),
    "moving": _l("The balance is on its way to the new meter"),
    "done": _l("Done"),
}


def swap(name: str) -> str:
    return str(SWAPS.get(name, name))


def state(name: str) -> str:
    return str(STATES.get(name, name))


def meter_state(meter: Any) -> str:
    """A meter's board state (``cloud.park.board``: lost contact first, closed as not opened)."""
    if meter.lost_contact:
        return "lost_contact"
    return "not_opened" if meter.display_state in ("not_opened", "closed") else meter.display_state


def command(name: str) -> str:
    return str(COMMANDS.get(name, name))


def lifecycle(name: str) -> str:
    return str(LIFECYCLE.get(name, name))


def relay(name: str | None) -> str:
    return str(RELAY.get(name or "unknown", name))


def mode(name: str) -> str:
    return str(MODES.get(name, name))


def runway(days: int | None) -> str:
    """约 2 天 / 不足 1 天 / — (unknown)."""
    if days is None or days < 0:
        return "—"
    if days == 0:
        return _("Less than a day")
    return _("About %(n)d days", n=days) if days != 1 else _("About 1 day")


def step_reached(status: str, step: str) -> bool:
    """Whether a command in ``status`` has passed ``step`` (a rejected one stops at sent)."""
    order = {s: i for i, s in enumerate(STEPS)}
    if status == "rejected":
        return step in ("pending", "sent")
    return order.get(status, 0) >= order[step]


def install(app: App) -> None:
    app.jinja_env.globals["board_labels"] = sys.modules[__name__]
