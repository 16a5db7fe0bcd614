"""The audit log (F07): every state-changing action writes one row — who, when, what,
before/after. Services call ``record`` inside the transaction that makes the change, so the
row exists exactly when the change does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from cloud.models import AuditEntry, now_ts
from cloud.models.base import table_of


@dataclass(frozen=True)
class Actor:
    """Who acts: an operator (``operator_id``) or a process (``bridge``, ``cli``, ``import``)."""

    name: str
    operator_id: int | None = None


SYSTEM = Actor("system")
BRIDGE = Actor("bridge")


def record(
    session: Session,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    now: int | None = None,
) -> AuditEntry:
    """Add one audit row (flushed with the caller's transaction)."""
    entry = AuditEntry(
        ts=now if now is not None else now_ts(),
        operator_id=actor.operator_id,
        actor=actor.name,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        before=before,
        after=after,
    )
    session.add(entry)
    return entry


_INSERT = insert(table_of(AuditEntry))


def write(
    session: Session,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    now: int | None = None,
) -> None:
    """``record`` for hot paths (a sale): the same row, inserted at once with one Core
    ``INSERT`` on the session's connection and transaction, without an ORM instance."""
    session.connection().execute(
        _INSERT,
        {
            "ts": now if now is not None else now_ts(),
            "operator_id": actor.operator_id,
            "actor": actor.name,
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id),
            "before": before,
            "after": after,
        },
    )
