"""Who is signed in, kept per operator for a few seconds: the office's counterpart of the API's
``cloud.access.auth.PrincipalCache``, with the same TTL (``TOKEN_CACHE_S``, 30 s) and the same
revocation rules.

Every office request starts by knowing its operator: their role's permissions, their building
scope, their session epoch. Read from the database that is one joined statement and three ORM
objects per request, the largest fixed cost of a cashier's sale after rendering. So the signed-in
operator is kept as a ``SignedIn`` snapshot (plain values, no ORM row, safe to share between
threads) for ``ttl_s`` seconds:

- A change made in this process ends the snapshots at once: any flush that adds, changes or
  deletes an ``Operator`` or a ``Role`` (a logout or a password change bumps the epoch; disabling,
  a reset, a new role, new buildings, a role's permissions) or deletes a ``Building`` moves the
  process-wide generation on when its transaction commits (and when it flushes, for a reader in
  the same transaction); a snapshot of an older generation is not used. An operator's sign-in
  bookkeeping alone (last login, failed logins, lock), which no snapshot holds, is no such
  change: a cashier signing in does not make every other cashier's next sale read again.
- A change made in another process (the CLI, a second server) is seen within ``ttl_s``, as a
  revoked token is by the API's cache.
- The cookie's epoch is compared with the snapshot's on every request; when they differ the
  operator is read again and the database decides (a snapshot never signs anybody out by
  itself, nor in).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from cloud.access.scope import Scope
from cloud.audit import Actor
from cloud.models import Building, Operator, Role

_WATCHED = (Operator, Role)
_FLAG = "gridvend.operators_changed"
# Moves on whenever operators or roles change in this process (see the module doc).
_generation = itertools.count(1)
_current = [0]
_lock = threading.Lock()


def generation() -> int:
    return _current[0]


def _bump() -> None:
    with _lock:
        _current[0] = next(_generation)


@dataclass(frozen=True)
class SignedIn:
    """An operator as the office needs them on every request (plain values)."""

    operator_id: int
    username: str
    display_name: str
    role: str
    epoch: int
    permissions: frozenset[str]
    scope: Scope
    actor: Actor

    @classmethod
    def of(cls, op: Operator) -> SignedIn:
        return cls(
            operator_id=op.id,
            username=op.username,
            display_name=op.display_name or "",
            role=op.role.name,
            epoch=op.session_epoch or 0,
            permissions=frozenset(p.name for p in op.role.permissions),
            scope=Scope.of(op),
            actor=Actor(f"operator:{op.username}", op.id),
        )


class SignedInCache:
    """Snapshots by operator id, each kept ``ttl_s`` seconds and only while no operator or role
    changed in this process since it was read (``generation``)."""

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: dict[int, tuple[float, int, SignedIn]] = {}
        self._lock = threading.Lock()

    def get(self, operator_id: int) -> SignedIn | None:
        with self._lock:
            item = self._items.get(operator_id)
        if item is None or item[0] < time.monotonic() or item[1] != generation():
            return None
        return item[2]

    def put(self, signed_in: SignedIn, read_at_generation: int) -> None:
        """Keep a snapshot read while the generation was ``read_at_generation`` (taken before
        the read: a change committed meanwhile makes it stale at once)."""
        if self.ttl_s <= 0 or read_at_generation != generation():
            return
        with self._lock:
            if len(self._items) >= self.max_entries:
                self._items.clear()
            expires = time.monotonic() + self.ttl_s
            self._items[signed_in.operator_id] = (expires, read_at_generation, signed_in)

    def forget(self) -> None:
        with self._lock:
            self._items.clear()


# An operator's sign-in bookkeeping, which no snapshot holds: a login writes it (and a wrong
# password), and it does not end the snapshots (every cashier's next request would read their
# operator again whenever anybody signs in).
_BOOKKEEPING = frozenset({"last_login_ts", "failed_logins", "locked_until_ts"})


def _changes_a_snapshot(obj: Any) -> bool:
    """Whether a changed (dirty) row may change what a snapshot holds."""
    if not isinstance(obj, Operator):
        return True
    changed = {a.key for a in inspect(obj).attrs if a.history.has_changes()}
    return not changed <= _BOOKKEEPING


def _touches_operators(session: Session) -> bool:
    for obj in itertools.chain(session.new, session.deleted):
        if isinstance(obj, _WATCHED):
            return True
    for obj in session.dirty:
        if isinstance(obj, _WATCHED) and _changes_a_snapshot(obj):
            return True
    return any(isinstance(obj, Building) for obj in session.deleted)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    if _touches_operators(session):
        session.info[_FLAG] = True
        _bump()  # a reader in this very transaction


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_FLAG, False):
        _bump()  # now the change is what every other transaction reads


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # the outermost transaction: nothing was changed
        session.info.pop(_FLAG, None)
