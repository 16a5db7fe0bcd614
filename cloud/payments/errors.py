"""The payment providers' part of the error tree (it hangs under ``cloud.errors.ServiceError``,
so the API and the CLI treat it like every other service error).

::

    ServiceError
    └── PaymentError                 (400 payment_error)
        ├── NotificationRejectedError     (400 notification_rejected: nothing is credited; the
        │   │                         provider sends it again later, or it was never theirs)
        │   ├── SignatureInvalidError     (401 signature_invalid: bad or missing signature, a key
        │   │                         or serial we do not trust, a WECHATPAY/SIGNTEST probe)
        │   ├── NotificationStaleError    (401 notification_stale: timestamp outside the window)
        │   ├── NotificationMalformedError (400 notification_malformed: cannot be parsed, a field
        │   │                         missing or of the wrong form; ``field`` names it)
        │   └── NotificationMismatchError (409 notification_mismatch: signed, but not for this
        │                             merchant, app or order: app_id, seller_id, mchid, appid,
        │                             an unknown out_trade_no, another amount)
        └── ProviderError            (502 provider_error: the provider refused a request, or
                                      answered something we cannot verify)

Amounts that are not whole fen or not exact decimals are ``InvalidError`` (422), as for every
other amount in the services.
"""

from __future__ import annotations

from cloud.errors import ServiceError


class PaymentError(ServiceError):
    code = "payment_error"


class NotificationRejectedError(PaymentError):
    code = "notification_rejected"


class SignatureInvalidError(NotificationRejectedError):
    status = 401
    code = "signature_invalid"


class NotificationStaleError(NotificationRejectedError):
    status = 401
    code = "notification_stale"


class NotificationMalformedError(NotificationRejectedError):
    code = "notification_malformed"


class NotificationMismatchError(NotificationRejectedError):
    status = 409
    code = "notification_mismatch"


class ProviderError(PaymentError):
    status = 502
    code = "provider_error"
