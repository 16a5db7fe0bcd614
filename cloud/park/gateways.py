"""Collector records for the bridge: keys, the durable downlink sequence reservation, and
online/offline from the status topic (the topics themselves: shared/topics.py).

Downlink sequence numbers (docs/protocol.md "Envelope"): a (key, nonce) pair must never repeat,
so the bridge takes numbers only from a block reserved and *committed* first
(``reserve_down_block``); after a crash it reserves a new block above the old one and the
unused rest of the old block is skipped, never reused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from cloud.errors import InvalidError, NotFoundError
from cloud.models import GATEWAY_LOCK, Gateway, now_ts
from cloud.monitoring import alarms

DEFAULT_BLOCK = 1000


def get(session: Session, gateway_id: str, lock: bool = False) -> Gateway:
    gw = session.get(Gateway, gateway_id, with_for_update=GATEWAY_LOCK if lock else None)
    if gw is None:
        raise NotFoundError(f"collector {gateway_id!r} does not exist")
    return gw


def keyring_keys(gateway: Gateway) -> tuple[dict[int, bytes], int]:
    """``({key_id: key}, current_id)`` for ``shared.codec.envelope.Keyring(keys, current=...)``:
    the current key and, after a rotation, the previous one."""
    keys = {gateway.key_id: bytes.fromhex(gateway.key_hex)}
    if gateway.prev_key_id is not None and gateway.prev_key_hex:
        keys[gateway.prev_key_id] = bytes.fromhex(gateway.prev_key_hex)
    return keys, gateway.key_id


def check_key_hex(value: Any, field: str = "key_hex") -> str:
    """A 256-bit key as 64 hex digits (lower-cased)."""
    if not isinstance(value, str):
        raise InvalidError(f"{field} must be 64 hex digits (a 256-bit key)", field)
    text = value.strip().lower()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise InvalidError(f"{field} is not hexadecimal", field) from None
    if len(raw) != 32:
        raise InvalidError(f"{field} must be 64 hex digits (32 bytes), got {len(raw)} bytes", field)
    return text


def rotate_key(session: Session, gateway_id: str, key_id: int, key_hex: str) -> Gateway:
    """Make ``key_id`` the current key, keeping the old one as the previous key."""
    gw = get(session, gateway_id, lock=True)
    if not 0 <= key_id <= 255 or key_id == gw.key_id:
        raise InvalidError("key_id must be 0–255 and differ from the current key id", "key_id")
    gw.prev_key_id, gw.prev_key_hex = gw.key_id, gw.key_hex
    gw.key_id, gw.key_hex = key_id, check_key_hex(key_hex)
    return gw


def reserve_down_block(session: Session, gateway_id: str, size: int = DEFAULT_BLOCK) -> range:
    """Reserve ``size`` downlink sequence numbers; commit before using any of them."""
    block = reserve_down_blocks(session, [gateway_id], size).get(gateway_id)
    if block is None:
        raise NotFoundError(f"collector {gateway_id!r} does not exist")
    return block


def reserve_down_blocks(
    session: Session, gateway_ids: Iterable[str], size: int = DEFAULT_BLOCK
) -> dict[str, range]:
    """``reserve_down_block`` for many collectors at once, their rows locked in id order (as
    every transaction that locks several collector rows does, so two never deadlock);
    ``{gateway: block}`` of those that exist. Commit before using any of them."""
    if size < 1:
        raise ValueError("a reservation needs at least one number")
    ids = sorted(set(gateway_ids))
    if not ids:
        return {}
    # The rows locked in id order, read as plain values (no ORM object per collector: 0.5 s of
    # CPU for the 5,000 a bridge gains when another dies), then one UPDATE for all of them.
    # Locked, they cannot change between the two, so the blocks computed here are the ones
    # the UPDATE writes.
    rows = session.execute(
        select(Gateway.id, Gateway.down_seq_reserved)
        .where(Gateway.id.in_(ids))
        .order_by(Gateway.id)
        .with_for_update(**GATEWAY_LOCK)
    ).all()
    if not rows:
        return {}
    out: dict[str, range] = {}
    for row in rows:
        first = max(row.down_seq_reserved, 1)
        out[row.id] = range(first, first + size)
    start = case((Gateway.down_seq_reserved < 1, 1), else_=Gateway.down_seq_reserved)
    session.execute(
        update(Gateway)
        .where(Gateway.id.in_(sorted(out)))
        .values(down_seq_next=start, down_seq_reserved=start + size)
        .execution_options(synchronize_session=False)
    )
    for obj in list(session.identity_map.values()):  # a caller's objects of these rows
        if isinstance(obj, Gateway) and obj.id in out:
            session.expire(obj, ["down_seq_next", "down_seq_reserved"])
    return out


def set_status(
    session: Session, gateway_id: str, online: bool, *, now: int | None = None
) -> Gateway:
    """Record the collector's retained status (``online``/``offline``, its last will)."""
    stamp = now if now is not None else now_ts()
    gw = get(session, gateway_id)
    gw.online = online
    gw.status_ts = stamp
    if online:
        gw.last_heartbeat_ts = max(gw.last_heartbeat_ts or 0, stamp)
        if gw.lost_contact:
            gw.lost_contact = False
            alarms.clear_alarms(
                session, (alarms.GATEWAY_LOST,), gateway_id=gw.id, by="status", now=stamp
            )
    return gw


def set_statuses(
    session: Session, statuses: list[tuple[str, bool]], *, now: int | None = None
) -> None:
    """``set_status`` for many ``(gateway, online)`` in arrival order, the rows read in one
    query (collectors no longer in the inventory are skipped)."""
    ids = sorted({gw for gw, _ in statuses})
    # Read into the session once: set_status's get() finds them there.
    known = {row.id: row for row in session.scalars(select(Gateway).where(Gateway.id.in_(ids)))}
    for gw, online in statuses:
        if gw in known:
            set_status(session, gw, online, now=now)


def to_dict(gw: Gateway) -> dict[str, Any]:
    """The API shape of a collector (no key material)."""
    return {
        "id": gw.id,
        "site": gw.site_id,
        "name": gw.name,
        "online": gw.online,
        "lost_contact": gw.lost_contact,
        "last_heartbeat_ts": gw.last_heartbeat_ts,
        "last_hello_ts": gw.last_hello_ts,
        "agent_version": gw.agent_version,
        "backlog": gw.backlog,
        "key_id": gw.key_id,
        "mqtt_username": gw.mqtt_username,
    }
