"""A gateway's own uplink messages (``hb``, ``hello``) for ``cloud.uplink.ingest``: liveness, the
agent's version and config hash, the meter list compared with the cloud's, a clock sync."""

from __future__ import annotations

from typing import Any

from cloud.monitoring import alarms
from cloud.uplink.batch import Batch


class GatewayMessages:
    """Handlers of a gateway's own messages over one :class:`~cloud.uplink.batch.Batch`."""

    def __init__(self, batch: Batch) -> None:
        self.b = batch

    def _alive(self, heartbeat_ts: int) -> None:
        gw = self.b.gw
        gw.last_heartbeat_ts = max(gw.last_heartbeat_ts or 0, heartbeat_ts)
        if gw.lost_contact:
            gw.lost_contact = False
            for alarm in alarms.clear_alarms(
                self.b.s, (alarms.GATEWAY_LOST,), gateway_id=gw.id, by="heartbeat", now=self.b.now
            ):
                self.b.result.notices.append(alarms.notice(alarm, "cleared"))

    def hb(self, msg: dict[str, Any]) -> None:
        gw = self.b.gw
        gw.backlog = msg["backlog"]
        gw.uptime_s = msg["uptime_s"]
        gw.buses_health = msg["buses"]
        # Heartbeats are never queued or replayed by the collector (docs/protocol.md, "Message
        # ids and delivery"): one arriving means it is alive now, whatever its own clock says.
        self._alive(self.b.now)
        self.b.result.notices.append({"type": "gateway", "gateway": gw.id, "hb": msg})

    def hello(self, msg: dict[str, Any]) -> None:
        """What the batch loaded for it (``Loader.preload``): no query of its own unless an
        alarm is raised or cleared."""
        b = self.b
        gw = b.gw
        gw.agent_version = msg["agent"]
        gw.config_hash = msg["config_hash"]
        gw.last_hello_ts = b.now
        gw.online = True
        self._alive(b.now)
        known = b.meter_ids
        reported = {m["id"] for m in msg["meters"]}
        if known != reported:
            alarm, _new = alarms.raise_alarm(
                b.s,
                "config_mismatch",
                gateway_id=gw.id,
                detail={
                    "only_in_cloud": sorted(known - reported),
                    "only_on_collector": sorted(reported - known),
                },
                now=b.now,
            )
            b.gateway_alarms["config_mismatch"] = alarm
        elif "config_mismatch" in b.gateway_alarms:
            alarms.clear_alarms(b.s, ("config_mismatch",), gateway_id=gw.id, by="hello", now=b.now)
            del b.gateway_alarms["config_mismatch"]
        if not b.time_waiting:  # a clock sync, unless one is already waiting
            b.time_waiting = True
            b.new_commands.append(
                {"gateway_id": gw.id, "meter_id": None, "op": "time", "now": b.now}
            )
        b.result.notices.append({"type": "gateway", "gateway": gw.id, "hello": msg})
