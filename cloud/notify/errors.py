"""Errors of the notification channels. A channel raises; it never returns a failure.

::

    NotifyError
    ├── ConfigError          a setting is wrong: an unknown key, a bad value (names the key)
    ├── AlreadyRunning       another notifier holds this database (``single.py``'s lock; the
    │                        message names the lock and its holder); the CLI exits with 2
    └── ChannelError         a message did not go through this channel (``code``: the
        │                    provider's or the modem's error code; ``uncertain``: the request
        │                    may have reached the provider, e.g. a timeout after sending)
        ├── RetryLater       temporary: the same channel may take it later (no network, SIM
        │                    busy, HTTP 5xx, rate limited, timed out)
        ├── Rejected         never through this channel: bad number, template not approved,
        │                    parameter refused; another channel may still take it
        └── ChannelDown      the channel is out of order: dead modem, no SIM, bad credentials,
                             no balance; fall back now

A modem that failed in the middle of a long message reports the segments that did go out in
``partial`` (segment number → message reference), so a retry sends only the rest, with the same
concatenation reference (``concat_ref``) so the phone still joins them.
"""

from __future__ import annotations

from cloud.errors import CloudError


class NotifyError(CloudError):
    """Base of the notification errors (a branch of the cloud's tree, ``cloud/errors.py``)."""


class ConfigError(NotifyError):
    """A setting is wrong; ``key`` names it (``channels.modem.port``)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class AlreadyRunning(NotifyError):
    """Another notifier holds the database's lock (or the lock cannot be taken at all): this one
    must not start, or it would resend the other's messages in flight (``single.py``)."""


class ChannelError(NotifyError):
    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        uncertain: bool = False,
        partial: dict[int, str] | None = None,
        concat_ref: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.uncertain = uncertain
        self.partial = dict(partial or {})
        self.concat_ref = concat_ref


class RetryLater(ChannelError):
    pass


class Rejected(ChannelError):
    pass


class ChannelDown(ChannelError):
    pass
