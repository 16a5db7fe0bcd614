"""The cloud's error tree. A ``ServiceError`` is a request the services refuse: the API turns it
into ``{"error": {"code", "message", "field"}}`` with the HTTP status given here, the CLI
prints the message. Messages say what was wrong and what to do. The other two branches never
reach a user as a status: a collector's message the cloud cannot apply (kept in quarantine, the
rest of its envelope applies), and a ledger that does not add up (a bug)::

    CloudError
    ├── QuarantineError          a collector's message that cannot be applied (unknown meter,
    │   │                        another collector's meter, …): cloud/uplink keeps it in the
    │   │                        ``quarantine`` table with this reason
    │   └── ResultError          a ``result`` for a command never sent, another collector's,
    │                            or contradicting it (cloud/uplink/results.py)
    ├── LedgerError              the mirror's ledger broke its identity (cloud/money/ledger.py)
    ├── NotifyError              a notification channel's failure or setting (cloud/notify/errors.py
    │                            draws its branch); the outbox records it, no user sees a status
    └── ServiceError             (400 bad_request)
    ├── InvalidError             (422 invalid: a field's value; ``field`` names it)
    ├── NotFoundError            (404 not_found)
    ├── ConflictError            (409 conflict: the request clashes with the current state,
    │   │                         e.g. an idempotency key reused with another body)
    │   ├── IdempotencyConflict  (409 idempotency_conflict)
    │   └── RuleError            (409 refused: well-formed — every value within what the API
    │                             document says — but refused by a rule it cannot state: a
    │                             site's per-sale limit, a meter's hoarding cap, thresholds out of
    │                             order, a tariff's schedule; ``field`` names the field)
    ├── UnauthorizedError        (401 unauthorized: no token, or a wrong one; cloud.access
    │                             raises AccountLocked, LoginPaused, WrongCode below it)
    ├── ForbiddenError           (403 forbidden: the token's role lacks the permission)
    └── PaymentError             (cloud/payments/errors.py draws its branch)

The codec's errors (what a collector sent that is not an envelope) are shared/codec/errors.py's.
"""

from __future__ import annotations


class CloudError(Exception):
    """Base of the cloud's errors."""


class QuarantineError(CloudError):
    """A collector's message the cloud cannot apply; the message names why."""


class ResultError(QuarantineError):
    """A result that cannot be applied (unknown command, another collector's, contradicting)."""


class LedgerError(CloudError):
    """The mirror broke its identity: a bug (or a database changed behind the cloud's back),
    never a user's mistake. Not an ``AssertionError``: it must not vanish under ``python -O``
    nor pass for a failed test."""


class ServiceError(CloudError):
    """A request the services refuse. ``code`` is stable for programs, ``message`` for people."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class InvalidError(ServiceError):
    status = 422
    code = "invalid"


class NotFoundError(ServiceError):
    status = 404
    code = "not_found"


class ConflictError(ServiceError):
    status = 409
    code = "conflict"


class IdempotencyConflict(ConflictError):
    code = "idempotency_conflict"


class RuleError(ConflictError):
    """422 is for a value outside what the OpenAPI document allows (a client can check it
    before sending); this is for a request the document allows that a rule of the park refuses
    (so it depends on the site's settings, the meter's balance or the other values sent)."""

    code = "refused"


class UnauthorizedError(ServiceError):
    status = 401
    code = "unauthorized"


class ForbiddenError(ServiceError):
    status = 403
    code = "forbidden"
