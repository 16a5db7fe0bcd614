"""The bridges that share one database (issue 15, docs/architecture.md "Several bridges"): each
running ``gridvend cloud bridge`` process is a member while it beats; which member owns which
collector is on the collector's row (``Gateway.owner``)."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.models.base import Base, BigId


class BridgeMember(Base):
    """One bridge process. ``id`` is unique per process start (the client id, the host and a
    random part), so a restarted bridge is a new member and never inherits a dead one's state;
    ``client_id`` is what it is configured as, and what collectors are spread by. A member whose
    ``heartbeat_ms`` (the database's clock) is older than the heartbeat timeout is dead: its
    collectors may be taken over."""

    __tablename__ = "bridge_members"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(200), default="")
    started_ms: Mapped[int] = mapped_column(BigId)
    heartbeat_ms: Mapped[int] = mapped_column(BigId)
