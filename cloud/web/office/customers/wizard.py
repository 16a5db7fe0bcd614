"""The open-account wizard's state: what each step asks, carried from step to step in hidden
fields (the server checks them all again at every step, so nothing is trusted from the page),
and the figures each step shows."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from cloud.models import Meter, Unit
from cloud.web.office.forms import Form

STEPS = ("meters", "tenant", "tariff", "money", "recap")
TENANT_FIELDS = ("name", "phone", "id_number", "email", "note")
TARIFF_FIELDS = ("tariff_id", "alarm1", "alarm2", "hoarding_cap")


def yuan_input(micro: int | None) -> str:
    """An amount as an input's value: ``12.50`` (no thousands separator)."""
    if micro is None:
        return ""
    return f"{Decimal(int(micro)) / Decimal(1_000_000):.2f}"


@dataclass
class Wizard:
    STEP_FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "tenant": TENANT_FIELDS,
        "tariff": TARIFF_FIELDS,
    }

    form: Form
    unit: Unit
    meters: list[Meter]  # the unit's prepaid meters
    defaults: dict[str, int | None]  # the site's alarm amounts and hoarding cap

    @property
    def chosen(self) -> list[Meter]:
        """The free meters the operator ticked (a meter opened meanwhile drops out)."""
        wanted = set(self.form.values("meter"))
        return [m for m in self.meters if m.id in wanted and m.account_id is None]

    def fields(self, step: str) -> tuple[str, ...]:
        if step == "meters":
            return ("meter",)
        if step == "tenant":
            return TENANT_FIELDS
        if step == "tariff":
            return TARIFF_FIELDS
        if step == "money":
            per_meter = [f"{kind}_{m.id}" for m in self.chosen for kind in ("transfer", "purchase")]
            return (*per_meter, "transfer_source", "method")
        return ()

    def hidden(self, shown: str) -> list[tuple[str, str]]:
        """(name, value) of every field filled in so far, except the step shown."""
        out: list[tuple[str, str]] = [("unit", str(self.unit.id))]
        for step in STEPS:
            if step == shown:
                continue
            for name in self.fields(step):
                if name == "meter":
                    out.extend(("meter", m.id) for m in self.chosen)
                elif self.form.value(name):
                    out.append((name, self.form.value(name)))
        return out

    def value(self, name: str, default: Any = "") -> str:
        """A field's value as sent, else ``default`` (the site's default for a threshold)."""
        if self.form.data.get(name) is not None:
            return self.form.value(name)
        return str(default)

    def default_yuan(self, name: str) -> str:
        return yuan_input(self.defaults.get(name))

    def amount(self, name: str) -> int:
        """A money field already checked (0 when empty)."""
        raw = self.form.value(name).replace(",", "")
        return int(Decimal(raw) * 1_000_000) if raw else 0

    def total(self, kind: str) -> int:
        return sum(self.amount(f"{kind}_{m.id}") for m in self.chosen)
