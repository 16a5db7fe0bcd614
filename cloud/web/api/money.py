"""Sales, refunds, reversals and accounts."""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import select

from cloud.errors import InvalidError, NotFoundError
from cloud.models import Account, Refund, Sale
from cloud.money import accounts, checks, records, refunds, reversals, sales, settlement
from cloud.web.api import Ctx, Param, endpoint, reject_unknown, require
from cloud.web.api.schemas import INT, MICRO, OPT_STR, STR, array, enum, obj, ref

KEY = Param(
    "Idempotency-Key",
    {"type": "string", "maxLength": 200},
    "a unique key per request: resending the same key and body returns the same record, "
    "the same key with another body is 409",
    where="header",
)


@endpoint(
    "/meters/<meter_id>/sales",
    "POST",
    "sales.sell",
    "Sell credit to a meter (F20). Pending until the collector applies it.",
    tag="sales",
    params=[Param(KEY.name, KEY.schema, KEY.description, required=True, where="header")],
    body=obj({"amount_micro_yuan": MICRO, "method": enum(*checks.METHODS)}, ["amount_micro_yuan"]),
    response=ref("Sale"),
    status=201,
)
def sell(ctx: Ctx, meter_id: str) -> Any:
    key = request.headers.get("Idempotency-Key")
    if not key:
        raise InvalidError(
            "the Idempotency-Key header is required: a unique key per sale, so a retried "
            "request cannot sell twice",
            "Idempotency-Key",
        )
    reject_unknown(ctx.body, {"amount_micro_yuan", "method"})
    amount = require(ctx.body, "amount_micro_yuan")
    sale, created = sales.sell(
        ctx.session,
        meter_id,
        amount,
        ctx.body.get("method", "cash"),
        ctx.actor,
        idempotency_key=key,
    )
    return records.sale_to_dict(sale), 201 if created else 200


def _window(ctx: Ctx, q: Any, column: Any) -> Any:
    start, end = ctx.ts_arg("from"), ctx.ts_arg("to")
    if start is not None:
        q = q.where(column >= start)
    if end is not None:
        q = q.where(column < end)
    return q


_LIST_PARAMS = [
    Param("meter", STR, "only this meter"),
    Param("account", INT, "only this account"),
    Param("status", enum("pending", "applied", "rejected"), "only this status"),
    Param("from", STR, "created at or after (epoch seconds or ISO 8601)"),
    Param("to", STR, "created before (epoch seconds or ISO 8601)"),
    Param("limit", INT, "at most this many (default 500, max 5000)"),
]


def _list(ctx: Ctx, model: Any) -> list[Any]:
    q = select(model).order_by(model.id.desc())
    if ctx.arg("meter"):
        q = q.where(model.meter_id == ctx.arg("meter"))
    if ctx.arg("account"):
        q = q.where(model.account_id == ctx.int_arg("account"))
    if ctx.arg("status"):
        q = q.where(model.status == ctx.arg("status"))
    q = _window(ctx, q, model.created_ts)
    return list(ctx.session.scalars(q.limit(ctx.int_arg("limit", 500, 1, 5000))))


@endpoint(
    "/sales",
    "GET",
    "sales.read",
    "Sales query (F21), newest first",
    tag="sales",
    params=_LIST_PARAMS,
    response=obj({"sales": array(ref("Sale"))}),
)
def list_sales(ctx: Ctx) -> Any:
    return {"sales": [records.sale_to_dict(s) for s in _list(ctx, Sale)]}


@endpoint(
    "/sales/<int:sale_id>",
    "GET",
    "sales.read",
    "One sale (the printable receipt's content)",
    tag="sales",
    response=ref("Sale"),
)
def get_sale(ctx: Ctx, sale_id: int) -> Any:
    sale = ctx.session.get(Sale, sale_id)
    if sale is None:
        raise NotFoundError(f"sale {sale_id} does not exist")
    return records.sale_to_dict(sale)


@endpoint(
    "/sales/<int:sale_id>/reversal",
    "POST",
    "sales.reverse",
    "Reverse (correct) a sale the collector applied (F24). Two-phase: money goes back when the "
    "collector confirms. Asking again returns the same reversal.",
    tag="sales",
    body=obj({"note": STR}),
    response=ref("Reversal"),
    status=201,
)
def reverse(ctx: Ctx, sale_id: int) -> Any:
    reject_unknown(ctx.body, {"note"})
    item, created = reversals.reverse(
        ctx.session, sale_id, ctx.actor, note=ctx.body.get("note", "")
    )
    return records.reversal_to_dict(item), 201 if created else 200


@endpoint(
    "/meters/<meter_id>/refunds",
    "POST",
    "sales.refund",
    "Refund credit from a meter (F22). Two-phase: the money counts as returned only when the "
    "collector confirms; a refund it rejects returns nothing.",
    tag="sales",
    params=[KEY],
    body=obj({"amount_micro_yuan": MICRO, "method": enum(*checks.METHODS)}, ["amount_micro_yuan"]),
    response=ref("Refund"),
    status=201,
)
def refund(ctx: Ctx, meter_id: str) -> Any:
    reject_unknown(ctx.body, {"amount_micro_yuan", "method"})
    item, created = refunds.refund(
        ctx.session,
        meter_id,
        require(ctx.body, "amount_micro_yuan"),
        ctx.actor,
        method=ctx.body.get("method", "cash"),
        idempotency_key=request.headers.get("Idempotency-Key") or None,
    )
    return records.refund_to_dict(item), 201 if created else 200


@endpoint(
    "/refunds",
    "GET",
    "sales.read",
    "Refund query (F23), newest first",
    tag="sales",
    params=_LIST_PARAMS,
    response=obj({"refunds": array(ref("Refund"))}),
)
def list_refunds(ctx: Ctx) -> Any:
    return {"refunds": [records.refund_to_dict(r) for r in _list(ctx, Refund)]}


_METER_SPEC = obj(
    {"meter": STR, "transfer_in_micro_yuan": MICRO, "transfer_source": STR}, ["meter"]
)


@endpoint(
    "/accounts",
    "POST",
    "accounts.manage",
    "Open an account (F14): the tenant, their meters, an opening transfer-in per meter",
    tag="accounts",
    body=obj(
        {
            "customer": {
                "oneOf": [
                    {"type": "integer", "description": "an existing customer id"},
                    obj(
                        {"name": STR, "phone": OPT_STR, "id_number": OPT_STR, "email": OPT_STR},
                        ["name"],
                    ),
                ]
            },
            "meters": array(_METER_SPEC),
            "number": STR,
            "note": STR,
        },
        ["customer", "meters"],
    ),
    response=ref("Account"),
    status=201,
)
def open_account(ctx: Ctx) -> Any:
    reject_unknown(ctx.body, {"customer", "meters", "number", "note"})
    account = accounts.open_account(
        ctx.session,
        require(ctx.body, "customer"),
        require(ctx.body, "meters", list),
        ctx.actor,
        number=ctx.body.get("number"),
        note=ctx.body.get("note") or "",
    )
    return accounts.to_dict(account, ctx.session), 201


@endpoint(
    "/accounts",
    "GET",
    "accounts.read",
    "Account query (F15, F17)",
    tag="accounts",
    params=[
        Param("status", enum("open", "closing", "closed"), "only this status"),
        Param("limit", INT, "at most this many (default 500, max 5000)"),
    ],
    response=obj({"accounts": array(ref("Account"))}),
)
def list_accounts(ctx: Ctx) -> Any:
    q = select(Account).order_by(Account.id.desc())
    if ctx.arg("status"):
        q = q.where(Account.status == ctx.arg("status"))
    rows = ctx.session.scalars(q.limit(ctx.int_arg("limit", 500, 1, 5000)))
    return {"accounts": [accounts.to_dict(a) for a in rows]}


@endpoint(
    "/accounts/<int:account_id>",
    "GET",
    "accounts.read",
    "One account with its settlements",
    tag="accounts",
    response=ref("Account"),
)
def get_account(ctx: Ctx, account_id: int) -> Any:
    return accounts.to_dict(accounts.get(ctx.session, account_id), ctx.session)


@endpoint(
    "/accounts/<int:account_id>/meters",
    "POST",
    "accounts.manage",
    "Add a meter to an open account (with an optional transfer-in)",
    tag="accounts",
    body=_METER_SPEC,
    response=ref("Account"),
)
def add_meter(ctx: Ctx, account_id: int) -> Any:
    reject_unknown(ctx.body, {"meter", "transfer_in_micro_yuan", "transfer_source"})
    account = accounts.add_meter(
        ctx.session,
        account_id,
        require(ctx.body, "meter", str),
        ctx.actor,
        transfer_in_micro_yuan=ctx.body.get("transfer_in_micro_yuan", 0),
        transfer_source=ctx.body.get("transfer_source") or "",
    )
    return accounts.to_dict(account, ctx.session)


@endpoint(
    "/accounts/<int:account_id>/close",
    "POST",
    "accounts.manage",
    "Close an account (F16): every meter is closed and settled (credit refunded or debt owed) "
    "once its collector confirms",
    tag="accounts",
    response=ref("Account"),
    status=202,
)
def close_account(ctx: Ctx, account_id: int) -> Any:
    reject_unknown(ctx.body, set())
    account = settlement.close_account(ctx.session, account_id, ctx.actor)
    return accounts.to_dict(account, ctx.session), 202
