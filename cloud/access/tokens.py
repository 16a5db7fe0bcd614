"""API tokens as the office and the command line see them: their state (active, expired,
revoked), lists, lookups by id or prefix, and lifetimes (``create-token --expires``). Making and
revoking one is ``cloud.access.auth`` (it keeps the principal cache)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import ConflictError, InvalidError, NotFoundError
from cloud.localtime import parse_time
from cloud.models import ApiToken, Operator, now_ts

# Lifetimes a token may be given (the API's expires_in_s): a minute to ten years.
MIN_LIFETIME_S = 60
MAX_LIFETIME_S = 3650 * 86_400
TOKEN_STATES = ("active", "expired", "revoked")
TOKEN_NAME_MAX = 100


def get_token(session: Session, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFoundError(f"token {token_id} does not exist")
    return row


def find_token(session: Session, ref: str) -> ApiToken:
    """A token by id (digits) or by the prefix ``list-tokens`` shows (``gv_AbC12``)."""
    if ref.isdigit():
        return get_token(session, int(ref))
    rows = list(session.scalars(select(ApiToken).where(ApiToken.prefix == ref).limit(2)))
    if not rows:
        raise NotFoundError(f"no token has the prefix {ref!r}; see `gridvend cloud list-tokens`")
    if len(rows) > 1:
        raise ConflictError(f"several tokens have the prefix {ref!r}; give the token's id")
    return rows[0]


def token_state(row: ApiToken, now: int | None = None) -> str:
    stamp = now if now is not None else now_ts()
    if row.revoked_ts is not None:
        return "revoked"
    if row.expires_ts is not None and row.expires_ts <= stamp:
        return "expired"
    return "active"


def token_to_dict(row: ApiToken, now: int | None = None) -> dict[str, Any]:
    """A token as listed: never its secret (only its hash is kept)."""
    return {
        "id": row.id,
        "operator": row.operator.username,
        "name": row.name,
        "prefix": row.prefix,
        "created_ts": row.created_ts,
        "last_used_ts": row.last_used_ts,
        "expires_ts": row.expires_ts,
        "revoked_ts": row.revoked_ts,
        "state": token_state(row, now),
    }


def list_tokens(
    session: Session,
    *,
    operator: str | None = None,
    state: str | None = None,
    limit: int = 500,
    now: int | None = None,
) -> list[ApiToken]:
    """Tokens, newest first, by operator (username) and state (``TOKEN_STATES``)."""
    stamp = now if now is not None else now_ts()
    q = select(ApiToken).join(Operator, ApiToken.operator_id == Operator.id)
    if operator is not None:
        q = q.where(Operator.username == operator)
    if state == "revoked":
        q = q.where(ApiToken.revoked_ts.is_not(None))
    elif state == "expired":
        q = q.where(ApiToken.revoked_ts.is_(None), ApiToken.expires_ts <= stamp)
    elif state == "active":
        q = q.where(
            ApiToken.revoked_ts.is_(None),
            (ApiToken.expires_ts.is_(None)) | (ApiToken.expires_ts > stamp),
        )
    elif state is not None:
        raise InvalidError(
            f"state must be one of {', '.join(TOKEN_STATES)}; got {state!r}", "state"
        )
    return list(session.scalars(q.order_by(ApiToken.id.desc()).limit(limit)))


def parse_lifetime(text: str, now: int | None = None) -> int:
    """``--expires``: a lifetime (``90d``, ``12h``, ``30m``) or an instant (a date
    ``YYYY-MM-DD`` or an ISO 8601 time, UTC unless it carries an offset) → the expiry, UTC
    epoch seconds. It must lie ahead, at most ten years."""
    stamp = now if now is not None else now_ts()
    units = {"d": 86_400, "h": 3600, "m": 60}
    raw = text.strip()
    if raw[:-1].isdigit() and raw[-1:].lower() in units:
        expires = stamp + int(raw[:-1]) * units[raw[-1].lower()]
    else:
        try:
            expires = parse_time(raw, "expires")
        except InvalidError:
            raise InvalidError(
                f"--expires must be a lifetime like 90d, 12h or 30m, or a date/time like "
                f"2027-01-31 or 2027-01-31T08:00:00+08:00; got {text!r}",
                "expires",
            ) from None
    if not stamp + MIN_LIFETIME_S <= expires <= stamp + MAX_LIFETIME_S:
        raise InvalidError(
            "a token's expiry must lie between a minute and ten years from now", "expires"
        )
    return expires
