"""The services' error tree. The API turns each into ``{"error": {"code", "message", "field"}}``
with the HTTP status given here; the CLI prints the message. Messages say what was wrong and
what to do.

::

    ServiceError                 (400 bad_request)
    ├── InvalidError             (422 invalid: a field's value; ``field`` names it)
    ├── NotFoundError            (404 not_found)
    ├── ConflictError            (409 conflict: the request clashes with the current state,
    │   │                         e.g. an idempotency key reused with another body)
    │   ├── IdempotencyConflict  (409 idempotency_conflict)
    │   └── RuleError            (409 refused: well-formed — every value within what the API
    │                             document says — but refused by a rule it cannot state: a
    │                             site's per-sale limit, a meter's hoarding cap, thresholds out of
    │                             order, a tariff's schedule; ``field`` names the field)
    ├── UnauthorizedError        (401 unauthorized: no token, or a wrong one)
    └── ForbiddenError           (403 forbidden: the token's role lacks the permission)
"""

from __future__ import annotations


class ServiceError(Exception):
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
