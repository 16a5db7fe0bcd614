"""API tokens (``operators.manage``): list, make (with a lifetime), revoke — what
``gridvend cloud create-token / list-tokens / revoke-token`` do, over HTTP."""

from __future__ import annotations

from typing import Any

from cloud.access import auth, tokens
from cloud.errors import ConflictError
from cloud.models import now_ts
from cloud.web.api import Ctx, Param, endpoint, principals
from cloud.web.api.schemas import LIMIT_5000, array, enum, integer, line, obj, ref

_USERNAME = {**line(64), "description": "the operator's username"}
_TOKEN_ID = {"token_id": "$response.body#/id"}


@endpoint(
    "/tokens",
    "GET",
    "operators.manage",
    "API tokens, newest first (never their secrets: only a hash is kept)",
    tag="operators",
    params=[
        Param("operator", _USERNAME, "only this operator's tokens"),
        Param("state", enum(*tokens.TOKEN_STATES), "only tokens in this state"),
        Param("limit", LIMIT_5000, "at most this many (default 500, max 5000)"),
    ],
    response=obj({"tokens": array(ref("Token"))}, ["tokens"]),
)
def list_tokens(ctx: Ctx) -> Any:
    stamp = now_ts()
    rows = tokens.list_tokens(
        ctx.session,
        operator=ctx.params.get("operator"),
        state=ctx.params.get("state"),
        limit=ctx.params.get("limit", 500),
        now=stamp,
    )
    return {"tokens": [tokens.token_to_dict(r, stamp) for r in rows]}


@endpoint(
    "/tokens",
    "POST",
    "operators.manage",
    "Make an API token for an operator; the secret is in this answer only",
    tag="operators",
    body=obj(
        {
            "operator": _USERNAME,
            "name": line(tokens.TOKEN_NAME_MAX, "a label (which till, which script)"),
            "expires_in_s": integer(
                tokens.MIN_LIFETIME_S,
                tokens.MAX_LIFETIME_S,
                "seconds until it stops working (absent: never)",
            ),
        },
        ["operator"],
    ),
    response={
        "allOf": [
            ref("Token"),
            obj({"secret": {"type": "string", "description": "shown once"}}, ["secret"]),
        ]
    },
    status=201,
    links={
        "GetToken": ("get_token", _TOKEN_ID),
        "RevokeToken": ("revoke_token", _TOKEN_ID),
    },
)
def create_token(ctx: Ctx) -> Any:
    stamp = now_ts()
    lifetime = ctx.body.get("expires_in_s")
    row, secret = auth.create_token(
        ctx.session,
        ctx.body["operator"],
        ctx.actor,
        name=ctx.body.get("name") or "",
        expires_ts=stamp + lifetime if lifetime is not None else None,
    )
    return {**tokens.token_to_dict(row, stamp), "secret": secret}, 201


@endpoint(
    "/tokens/<int:token_id>",
    "GET",
    "operators.manage",
    "One API token",
    tag="operators",
    response=ref("Token"),
)
def get_token(ctx: Ctx, token_id: int) -> Any:
    return tokens.token_to_dict(tokens.get_token(ctx.session, token_id))


@endpoint(
    "/tokens/<int:token_id>/revoke",
    "POST",
    "operators.manage",
    "Revoke an API token at once (in this process; other processes within 30 s). Revoking a "
    "revoked token changes nothing; the token of this very request cannot be revoked with "
    "itself (409: use another)",
    tag="operators",
    response=ref("Token"),
)
def revoke_token(ctx: Ctx, token_id: int) -> Any:
    if ctx.principal is not None and ctx.principal.token_id == token_id:
        raise ConflictError(
            "this request is made with that token; revoke it with another one (or with "
            "`gridvend cloud revoke-token`)",
            "token_id",
        )
    row = auth.revoke_token(ctx.session, token_id, ctx.actor, cache=principals())
    return tokens.token_to_dict(row)
