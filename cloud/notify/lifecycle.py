"""The states of an outbox message, as a table (style.md 3): any other move raises.

==========  ==============================================================================
state       meaning
==========  ==============================================================================
queued      waiting for its ``next_attempt_ts`` (new, retried after a failure, deferred by
            quiet hours or a per-number limit, or resent by an operator)
sending     claimed by the notifier and handed to a channel; if the notifier dies here, the
            restart looks at the references it kept (``done_parts``): all there → sent;
            otherwise queued again, and only the segments without a reference go out again
sent        the channel took it (a modem reference, a provider's id); a delivery report may
            still come
delivered   the far end confirmed it (a status report, a webhook's 2xx)
failed      given up: rejected by every channel, out of attempts, too old, or a failed
            delivery report; ``error`` says which
==========  ==============================================================================
"""

from __future__ import annotations

from cloud.errors import RuleError

QUEUED, SENDING, SENT, DELIVERED, FAILED = "queued", "sending", "sent", "delivered", "failed"
STATES = (QUEUED, SENDING, SENT, DELIVERED, FAILED)
OPEN = (QUEUED, SENDING)

TRANSITIONS: dict[str, tuple[str, ...]] = {
    QUEUED: (SENDING, FAILED),
    SENDING: (SENT, DELIVERED, QUEUED, FAILED),
    SENT: (DELIVERED, FAILED, QUEUED),  # queued: an operator's resend
    DELIVERED: (QUEUED,),  # an operator's resend
    FAILED: (QUEUED,),  # an operator's resend
}


class IllegalTransitionError(RuleError):
    """A message cannot move from its state to the one asked."""


def check(current: str, new: str) -> None:
    if new not in TRANSITIONS.get(current, ()):
        raise IllegalTransitionError(f"a {current} message cannot become {new}", "state")
