"""Relay policy and reconciliation (F36, B09).

The desired relay state follows from a table of conditions (rows, in priority order) by modes
(columns). The first row whose cell for the meter's mode is not ``NA`` decides:

======================  =======================  =======================  ==================
condition               prepaid                  keep_power (保电)         forced_off (拉闸)
======================  =======================  =======================  ==================
account closed          open, closed_account     open, closed_account     open, closed_account
(always)                NA                       NA                       open, forced
overload latched        open, overload           open, overload           NA
(always)                NA                       closed, keep_power       NA
account not opened      LEAVE                    NA                       NA
credit low, friendly    KEEP                     NA                       NA
credit low              open, credit             NA                       NA
(always)                closed, restore          NA                       NA
======================  =======================  =======================  ==================

``LEAVE``: the engine does not drive the relay (no account yet). ``KEEP``: the desired state
stays as it is: inside a friendly-credit window a credit trip is deferred, never executed, and
a relay already open stays open. *Credit low* means the balance is at or below the overdraft
floor, or, when the relay is open for credit, not yet above the re-close amount (which is
never taken below the floor): that gap is the relay's hysteresis.

Keep power never trips for credit (its column has no credit row); forced off is never closed
(its column has only ``open`` cells).

Reconciliation: a change of the desired state emits a ``relay`` action at once. A reading that
reports the relay in the other position re-sends the command, up to ``relay_attempts`` commands
in all; the next mismatch yields one ``relay_fault`` event, and commands stop until the desired
state changes or a reading shows the relay where it should be.
"""

from edge.core.compat import Any

MODES = ("prepaid", "keep_power", "forced_off")
OPEN = "open"
CLOSED = "closed"
NA = 0
LEAVE = 1
KEEP = 2

POLICY: tuple[tuple[str, tuple[Any, Any, Any]], ...] = (
    (
        "account_closed",
        ((OPEN, "closed_account"), (OPEN, "closed_account"), (OPEN, "closed_account")),
    ),
    ("always", (NA, NA, (OPEN, "forced"))),
    ("overload", ((OPEN, "overload"), (OPEN, "overload"), NA)),
    ("always", (NA, (CLOSED, "keep_power"), NA)),
    ("not_opened", (LEAVE, NA, NA)),
    ("credit_low_friendly", (KEEP, NA, NA)),
    ("credit_low", ((OPEN, "credit"), NA, NA)),
    ("always", ((CLOSED, "restore"), NA, NA)),
)


def credit_low(state: dict[str, Any], floor: int, reclose: int) -> bool:
    """Balance at or below the floor, or (open for credit) not yet above the re-close amount."""
    balance = state["balance_micro_yuan"]
    if balance <= floor:
        return True
    if state["relay_desired"] == OPEN and state["relay_reason"] == "credit":
        return balance <= (reclose if reclose > floor else floor)
    return False


def decide(state: dict[str, Any], conditions: dict[str, bool]) -> tuple[Any, Any]:
    """``(desired, reason)`` from the policy table; ``conditions`` holds each row's truth."""
    column = MODES.index(state["mode"])
    for condition, cells in POLICY:
        cell = cells[column]
        if cell == NA:
            continue
        if condition != "always" and not conditions[condition]:
            continue
        if cell == LEAVE:
            return None, None
        if cell == KEEP:
            return state["relay_desired"], state["relay_reason"]
        return cell[0], cell[1]
    raise AssertionError("the relay policy table has no final row for mode %r" % state["mode"])


def set_desired(
    state: dict[str, Any], desired: Any, reason: Any, actions: list[dict[str, Any]]
) -> bool:
    """Adopt the desired state; a change emits a relay command. True when it changed."""
    changed = desired != state["relay_desired"]
    state["relay_desired"] = desired
    state["relay_reason"] = reason
    if changed and desired is not None:
        actions.append(
            {"type": "relay", "op": "trip" if desired == OPEN else "close", "reason": reason}
        )
        state["relay_attempts"] = 1
        state["relay_fault"] = False
    elif changed:
        state["relay_attempts"] = 0
        state["relay_fault"] = False
    return changed


def reconcile(
    state: dict[str, Any], reported: Any, attempts: int, actions: list[dict[str, Any]]
) -> None:
    """Compare the relay a reading reports with the desired one; re-send or report a fault."""
    desired = state["relay_desired"]
    if desired is None or reported is None:
        return
    if reported == desired:
        state["relay_attempts"] = 0
        state["relay_fault"] = False
        return
    if state["relay_attempts"] < attempts:
        state["relay_attempts"] += 1
        actions.append(
            {
                "type": "relay",
                "op": "trip" if desired == OPEN else "close",
                "reason": state["relay_reason"],
            }
        )
    elif not state["relay_fault"]:
        state["relay_fault"] = True
        actions.append(
            {
                "type": "event",
                "kind": "relay_fault",
                "detail": {
                    "desired": desired,
                    "reported": reported,
                    "attempts": state["relay_attempts"],
                },
            }
        )
