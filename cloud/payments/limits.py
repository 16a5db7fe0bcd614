"""What one top-up may be (issue 12): the providers' range, the site's per-sale limit
(``SiteDefaults.max_sale_micro_yuan``, which the sale enforces too) and the room left under the
meter's hoarding cap (its own, else the site's; credits still pending count, as in the sale).
The tenant's form shows these limits and the order is checked against them before the tenant
is sent to pay, so nobody pays for what cannot be credited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.errors import InvalidError
from cloud.models import PENDING, Gateway, Meter, Sale, SiteDefaults, TransferIn
from cloud.payments.amounts import MICRO_YUAN_PER_FEN

MIN_FEN, MAX_FEN = 1, 50_000 * 100  # one top-up: 0.01 … 50 000 yuan


def check_amount_fen(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidError(
            f"amount_fen must be an integer number of fen, got {value!r}", "amount_fen"
        )
    if not MIN_FEN <= value <= MAX_FEN:
        raise InvalidError(f"a top-up is 0.01 to 50000 yuan, got {value} fen", "amount_fen")
    return value


def headroom_micro_yuan(session: Session, meter: Meter) -> int | None:
    """How much more the meter may be sold before its hoarding cap (its own, else the site's);
    None when there is no cap. Counts credits still pending, as ``sell`` does."""
    cap = meter.hoarding_cap_micro_yuan
    if cap is None:
        site_id = session.scalar(select(Gateway.site_id).where(Gateway.id == meter.gateway_id))
        cap = session.scalar(
            select(SiteDefaults.hoarding_cap_micro_yuan).where(SiteDefaults.site_id == site_id)
        )
    if cap is None:
        return None
    pending = 0
    for model in (Sale, TransferIn):
        pending += int(
            session.scalar(
                select(func.coalesce(func.sum(model.amount_micro_yuan), 0)).where(
                    model.meter_id == meter.id, model.status == PENDING
                )
            )
            or 0
        )
    return max(0, cap - meter.balance_micro_yuan - pending)


@dataclass(frozen=True)
class Limits:
    """What one top-up of a meter may be now, in fen: from ``min_fen`` to ``max_fen``, the
    least of the providers' range, the site's per-sale limit and the hoarding cap's room
    (``cap_room_fen``, None without a cap). ``max_fen`` < ``min_fen``: nothing fits."""

    min_fen: int
    max_fen: int
    sale_limit_fen: int
    cap_room_fen: int | None


def limits(session: Session, meter: Meter) -> Limits:
    """The top-up limits of ``meter`` now (the same checks the sale will make)."""
    site_id = session.scalar(select(Gateway.site_id).where(Gateway.id == meter.gateway_id))
    max_sale = session.scalar(
        select(SiteDefaults.max_sale_micro_yuan).where(SiteDefaults.site_id == site_id)
    )
    sale_limit = MAX_FEN if max_sale is None else min(MAX_FEN, int(max_sale) // MICRO_YUAN_PER_FEN)
    room = headroom_micro_yuan(session, meter)
    room_fen = None if room is None else room // MICRO_YUAN_PER_FEN
    top = sale_limit if room_fen is None else min(sale_limit, room_fen)
    return Limits(MIN_FEN, top, sale_limit, room_fen)
