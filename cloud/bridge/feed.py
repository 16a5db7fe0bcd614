"""What the bridge tells third parties after each transaction (``cloud.bridge.north`` builds the
payloads; ``docs/asyncapi.yaml`` documents them).

:class:`NorthFeed` turns the services' notices of one transaction into north messages and
decides which meters' retained state must be published again: those whose display state,
relay, mode or contact changed since the bridge last published them, and those whose money
moved. The "last published" keys move only when the transaction commits (``committed``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from cloud.bridge import north
from cloud.models import Meter, Unit


class NorthFeed:
    def __init__(self, site_of: Callable[[str], str]) -> None:
        """``site_of(gateway_id)`` names a collector's site."""
        self.site_of = site_of
        self._published: dict[str, tuple[Any, ...]] = {}
        self._pending: dict[str, tuple[Any, ...]] = {}
        self._touched: set[str] = set()
        self._money: set[str] = set()

    def begin(self) -> None:
        """Start a transaction's worth of notices."""
        self._pending, self._touched, self._money = {}, set(), set()

    def notices(self, gw: str, notices: list[dict[str, Any]], now: int) -> list[north.NorthMessage]:
        """North messages for the notices of one collector's envelopes."""
        site = self.site_of(gw)
        out: list[north.NorthMessage] = []
        for notice in notices:
            kind = notice.get("type")
            msg: north.NorthMessage | None = None
            meter = notice.get("meter")
            if kind == "reading":
                msg = north.reading(site, gw, notice["reading"])
            elif kind == "event":
                msg = north.event(site, gw, notice["event"])
            elif kind == "alarm":
                msg = north.alarm(site, notice)
                meter = notice["alarm"].get("meter")
            elif kind in north.MONEY_TYPES:
                meter = notice["record"].get("meter")
                msg = north.money(site, notice, now)
                if msg is not None and isinstance(meter, str):
                    self._money.add(meter)
            if msg is not None:
                out.append(msg)
            if isinstance(meter, str):
                self._touched.add(meter)
        return out

    def states(
        self, session: Session, now: int, meter_ids: set[str] | None = None
    ) -> list[north.NorthMessage]:
        """Retained states of the touched meters (or ``meter_ids``) that must be published."""
        ids = self._touched if meter_ids is None else meter_ids
        if not ids:
            return []
        rows = session.execute(
            select(Meter, Unit.number)
            .outerjoin(Unit, Meter.unit_id == Unit.id)
            .where(Meter.id.in_(sorted(ids)))
            # As ingest loads them (cloud/uplink/batch.py): the state needs neither.
            .options(defer(Meter.settings), defer(Meter.applied_settings))
        ).all()
        out = []
        for meter, unit in rows:
            key = north.state_key(meter)
            if meter.id in self._money or self._published.get(meter.id) != key:
                out.append(north.meter_state(self.site_of(meter.gateway_id), meter, unit, now))
                self._pending[meter.id] = key
        return out

    def committed(self) -> None:
        """The transaction committed: what it will publish counts as published."""
        self._published.update(self._pending)
        self.begin()
