"""The lifecycle of a command (B03), as a table (``LIFECYCLE``)::

    pending ──sent──► sent ──applied──► applied ──verified──► verified
       │                │ ▲                (a later reading of the meter; for a relay mode,
       │                │ └─held (credit waiting for a missing purchase number)
       └──applied/rejected (a result may overtake mark_sent) ──► applied | rejected

A repeated result with the same outcome changes nothing; a result contradicting an earlier one
raises ``IllegalTransition`` (the ingest quarantines it and raises an alarm).
"""

from __future__ import annotations

from cloud.models import Command

PENDING, SENT, APPLIED, REJECTED, VERIFIED = "pending", "sent", "applied", "rejected", "verified"


OPEN_STATUSES = (PENDING, SENT)


LIFECYCLE: dict[tuple[str, str], str] = {
    (PENDING, "sent"): SENT,
    (SENT, "sent"): SENT,
    (PENDING, "applied"): APPLIED,
    (SENT, "applied"): APPLIED,
    (PENDING, "rejected"): REJECTED,
    (SENT, "rejected"): REJECTED,
    (PENDING, "held"): SENT,
    (SENT, "held"): SENT,
    (APPLIED, "verified"): VERIFIED,
    # repeats and races that change nothing
    (APPLIED, "applied"): APPLIED,
    (VERIFIED, "applied"): VERIFIED,
    (REJECTED, "rejected"): REJECTED,
    (APPLIED, "sent"): APPLIED,
    (VERIFIED, "sent"): VERIFIED,
    (REJECTED, "sent"): REJECTED,
    (APPLIED, "held"): APPLIED,
    (VERIFIED, "held"): VERIFIED,
}


class IllegalTransition(ValueError):
    """A lifecycle event the command's status does not allow (e.g. rejected after applied)."""


def transition(command: Command, event: str) -> str:
    """Move ``command`` through the lifecycle table; returns the new status."""
    new = LIFECYCLE.get((command.status, event))
    if new is None:
        raise IllegalTransition(
            f"command {command.id} ({command.op}) is {command.status}; cannot take {event!r}"
        )
    command.status = new
    return new
