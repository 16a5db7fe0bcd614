"""Collector-level uplink messages (``hb``, ``hello``) for ``cloud.uplink.ingest``: liveness, the
agent's version and config hash, the meter list compared with the cloud's, a clock sync."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.control import dispatch
from cloud.models import Gateway, Meter
from cloud.monitoring import alarms


class GatewayMessages:
    """Mixin of ``ingest._Applier``: handlers return None or why the message is quarantined."""

    s: Session
    gw: Gateway
    now: int
    result: Any

    def _alive(self, heartbeat_ts: int) -> None:
        gw = self.gw
        gw.last_heartbeat_ts = max(gw.last_heartbeat_ts or 0, heartbeat_ts)
        if gw.lost_contact:
            gw.lost_contact = False
            for alarm in alarms.clear_alarms(
                self.s, (alarms.GATEWAY_LOST,), gateway_id=gw.id, by="heartbeat", now=self.now
            ):
                self.result.notices.append(alarms.notice(alarm, "cleared"))

    def _hb(self, msg: dict[str, Any]) -> str | None:
        gw = self.gw
        gw.backlog = msg["backlog"]
        gw.uptime_s = msg["uptime_s"]
        gw.buses_health = msg["buses"]
        # Heartbeats are never queued or replayed by the collector (docs/protocol.md, "Message
        # ids and delivery"): one arriving means it is alive now, whatever its own clock says.
        self._alive(self.now)
        self.result.notices.append({"type": "gateway", "gateway": gw.id, "hb": msg})
        return None

    def _hello(self, msg: dict[str, Any]) -> str | None:
        gw = self.gw
        gw.agent_version = msg["agent"]
        gw.config_hash = msg["config_hash"]
        gw.last_hello_ts = self.now
        gw.online = True
        self._alive(self.now)
        known = {m.id for m in self.s.scalars(select(Meter).where(Meter.gateway_id == gw.id))}
        reported = {m["id"] for m in msg["meters"]}
        if known != reported:
            alarms.raise_alarm(
                self.s,
                "config_mismatch",
                gateway_id=gw.id,
                detail={
                    "only_in_cloud": sorted(known - reported),
                    "only_on_collector": sorted(reported - known),
                },
                now=self.now,
            )
        else:
            alarms.clear_alarms(
                self.s, ("config_mismatch",), gateway_id=gw.id, by="hello", now=self.now
            )
        dispatch.enqueue_time(self.s, gw.id, now=self.now)
        self.result.notices.append({"type": "gateway", "gateway": gw.id, "hello": msg})
        return None
