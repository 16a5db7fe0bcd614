"""Third-party ("north") topics: the plain JSON the bridge republishes under
``gridvend/v1/{site}/north/...`` (built by shared/topics.py), documented in ``docs/asyncapi.yaml``.

Pure builders: each takes what the bridge already holds (an uplink message it applied, a money
or alarm notice from the services, a meter row) and returns a :class:`NorthMessage` (topic,
payload, retain). The bridge publishes them after the database commit, so a third party never
hears of something the cloud does not hold. The payload shapes here and the schemas in
``docs/asyncapi.yaml`` must agree; ``tests/e2e`` validates every payload it receives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared import topics

VERSION = 1
MONEY_TYPES = ("sale", "refund", "reversal", "transfer_in", "settlement")


@dataclass(frozen=True)
class NorthMessage:
    topic: str
    payload: dict[str, Any]
    retain: bool = False

    def encode(self) -> bytes:
        """Compact UTF-8 JSON (integers only, as everywhere in gridvend)."""
        return json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False).encode()


def reading(site: str, gateway: str, msg: dict[str, Any]) -> NorthMessage:
    """A ``reading`` uplink message the cloud stored."""
    payload = {
        "v": VERSION,
        "site": site,
        "gateway": gateway,
        "meter": msg["meter"],
        "ts": msg["ts"],
        "energy_wh": msg["energy_wh"],
        "power_w": msg.get("power_w"),
        "relay": msg.get("relay"),
        "band_energy_wh": msg.get("band_energy_wh"),
        "voltages_dv": msg.get("voltages_dv"),
        "currents_ma": msg.get("currents_ma"),
        "charge_micro_yuan": msg["charge_micro_yuan"],
        "balance_micro_yuan": msg["balance_micro_yuan"],
    }
    return NorthMessage(topics.north_meter_readings(site, msg["meter"]), payload)


def event(site: str, gateway: str, msg: dict[str, Any]) -> NorthMessage:
    """An ``event`` uplink message the cloud stored."""
    payload = {
        "v": VERSION,
        "site": site,
        "gateway": gateway,
        "meter": msg.get("meter"),
        "ts": msg["ts"],
        "kind": msg["kind"],
        "detail": msg.get("detail"),
    }
    return NorthMessage(topics.north_events(site), payload)


def money(site: str, notice: dict[str, Any], now: int) -> NorthMessage | None:
    """A money notice from the services (``{"type": kind, "record": {...}}``) once decided;
    None while the record is still pending (nothing to tell a third party yet)."""
    kind = notice.get("type")
    record = notice.get("record") or {}
    if kind not in MONEY_TYPES or record.get("status") not in ("applied", "rejected"):
        return None
    if kind == "settlement":
        amount = record.get("balance_micro_yuan")
    else:
        amount = record.get("amount_micro_yuan")
    payload = {
        "v": VERSION,
        "site": site,
        "type": kind,
        "id": record["id"],
        "meter": record["meter"],
        "status": record["status"],
        "amount_micro_yuan": amount,
        "purchase_no": record.get("purchase_no"),
        "receipt_no": record.get("receipt_no"),
        "reason": record.get("reason"),
        "ts": record.get("resolved_ts") or now,
    }
    return NorthMessage(topics.north_sales(site), payload)


def alarm(site: str, notice: dict[str, Any]) -> NorthMessage | None:
    """An alarm notice from the services (``{"type": "alarm", "what", "alarm": {...}}``)."""
    if notice.get("type") != "alarm":
        return None
    a = notice["alarm"]
    payload = {
        "v": VERSION,
        "site": site,
        "what": notice["what"],
        "id": a.get("id"),
        "kind": a["kind"],
        "meter": a.get("meter"),
        "gateway": a.get("gateway"),
        "active": bool(a.get("active")),
        "detail": a.get("detail"),
        "raised_ts": a.get("raised_ts"),
        "cleared_ts": a.get("cleared_ts"),
    }
    return NorthMessage(topics.north_alarms(site), payload)


def meter_state(site: str, meter: Any, unit: str | None, now: int) -> NorthMessage:
    """The retained state of a meter row (``cloud.models.Meter``) as the cloud holds it."""
    payload = {
        "v": VERSION,
        "site": site,
        "gateway": meter.gateway_id,
        "meter": meter.id,
        "unit": unit,
        "ts": now,
        "state": meter.state,
        "relay": meter.relay or "unknown",
        "mode": meter.mode,
        "balance_micro_yuan": meter.balance_micro_yuan,
        "energy_wh": meter.energy_wh,
        "power_w": meter.power_w,
        "last_seen_ts": meter.last_seen_ts,
    }
    return NorthMessage(topics.north_meter_state(site, meter.id), payload, True)


def state_key(meter: Any) -> tuple[Any, ...]:
    """What decides whether a meter's retained state must be published again."""
    return (meter.state, meter.relay, meter.mode, meter.lost_contact)


def gateway_status(site: str, gateway: str, online: bool, now: int) -> NorthMessage:
    """A collector's retained online / offline status."""
    payload = {"v": VERSION, "site": site, "gateway": gateway, "online": online, "ts": now}
    return NorthMessage(topics.north_gateway_status(site, gateway), payload, True)
