"""The engine's error tree. Every error says what was wrong and what to do.

::

    EngineError (ValueError)
    ├── SettingsError     a setting, a site default, the zone rules or the Context is invalid
    ├── TariffError       a tariff version is invalid (names the tariff, the version, the field)
    ├── EventError        an event is malformed: unknown type, missing or mistyped field
    └── TransitionError   a well-formed event that is illegal in the meter's current state
                          (open an account that is open, resolve an anomaly that is not held)

Business refusals (a refund that would make the balance negative, a credit above the hoarding
cap) are not errors: they are ``result`` actions with ``status: "rejected"`` and a reason.
Single inheritance only: MicroPython cannot combine built-in exception bases.
"""


class EngineError(ValueError):
    """Base of every engine error."""


class SettingsError(EngineError):
    """A setting, site default, zone rule list or Context argument is invalid."""


class TariffError(EngineError):
    """A tariff version is invalid."""


class EventError(EngineError):
    """An event is malformed."""


class TransitionError(EngineError):
    """An event that the meter's current state does not allow."""
