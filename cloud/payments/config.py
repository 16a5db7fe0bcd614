"""Which payment providers a cloud uses, one definition for the web server and the payment
jobs (both must see the same sandbox bank and the same keys).

``<instance>/payments.json``: ``{provider: settings}`` as ``cloud.payments.make_provider``
takes them (unknown settings are an error naming the key). Without it there are no providers:
the tenant site takes no online payment. The sandbox is never a default, because its pay page
credits a meter for nothing: the demo asks for it in its own ``payments.json``
(``{"sandbox": {"directory": "<instance>/sandbox-pay"}}``, ``sandbox_settings``). The instance
folder is ``--instance`` of ``gridvend cloud …``, else ``./instance`` (as the database's default
location).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloud.db import Database
from cloud.errors import InvalidError
from cloud.payments import make_provider
from cloud.payments.orders import Payments
from cloud.payments.transport import RequestsTransport

FILE = "payments.json"


def instance_dir(instance: str | Path | None) -> Path:
    return Path(instance or "instance").resolve()


def settings(instance: str | Path | None) -> dict[str, dict[str, Any]]:
    """The providers' settings for this instance (see the module docstring)."""
    folder = instance_dir(instance)
    path = folder / FILE
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InvalidError(f"{path} is not valid JSON: {exc}", FILE) from None
        if not isinstance(loaded, dict) or not all(isinstance(v, dict) for v in loaded.values()):
            raise InvalidError(f"{path} must be an object of provider → settings", FILE)
        return {str(k): dict(v) for k, v in loaded.items()}
    return {}


def sandbox_settings(instance: str | Path | None) -> dict[str, dict[str, Any]]:
    """The demo's providers: the sandbox alone, its bank in ``<instance>/sandbox-pay``."""
    return {"sandbox": {"directory": str(instance_dir(instance) / "sandbox-pay")}}


def payments(db: Database, configured: dict[str, dict[str, Any]]) -> Payments:
    """The ``Payments`` service over ``db`` with these providers, which reach their provider
    over HTTP (``RequestsTransport``: WeChat's H5 order, queries, bills and refunds are calls)."""
    transport = RequestsTransport()
    providers = {
        name: make_provider(name, values, transport) for name, values in configured.items()
    }
    return Payments(db, providers)
