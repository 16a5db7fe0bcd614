"""Sales, refunds, reversals and accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cloud.models import Account, Meter, Refund, Sale, now_ts
from cloud.money import accounts, checks, records, refunds, reversals, sales, settlement, swap
from cloud.money.accounts import MAX_METERS_PER_REQUEST
from cloud.reporting import usage
from cloud.values import EMAIL_MAX, ID_NUMBER_MAX, NAME_MAX, NOTE_MAX, SHORT_NOTE_MAX
from cloud.web.api import Ctx, Param, endpoint
from cloud.web.api.schemas import (
    AMOUNT,
    ID_STR,
    IDEMPOTENCY_KEY,
    LIMIT_5000,
    PHONE,
    RECORD_ID,
    WHEN,
    array,
    enum,
    integer,
    line,
    note,
    nullable,
    obj,
    ref,
)

KEY_TEXT = (
    "a unique key per request: resending the same key and body returns the same record "
    "(200), the same key with another body is 409"
)
_MONEY_BODY = {
    **obj(
        {"amount_micro_yuan": AMOUNT, "method": enum(*checks.CASHIER_METHODS)},
        ["amount_micro_yuan"],
    ),
    "examples": [{"amount_micro_yuan": 100_000_000, "method": "cash"}],
}
_ACCOUNT_ID = {"account_id": "$response.body#/id"}


@endpoint(
    "/meters/<meter_id>/sales",
    "POST",
    "sales.sell",
    "Sell credit to a meter (F20). Pending until the collector applies it. Refused (409, "
    "field amount_micro_yuan) above the site's per-sale limit (max_sale_micro_yuan, out of the "
    "box 10,000 yuan) or when the meter would pass its hoarding cap; the message says the limit.",
    tag="sales",
    params=[Param("Idempotency-Key", IDEMPOTENCY_KEY, KEY_TEXT, required=True, where="header")],
    body=_MONEY_BODY,
    response=ref("Sale"),
    status=201,
    also={200: ("the same key and body again: the sale made the first time", None)},
    links={
        "GetSale": ("get_sale", {"sale_id": "$response.body#/id"}),
        "ReverseSale": ("reverse", {"sale_id": "$response.body#/id"}),
    },
)
def sell(ctx: Ctx, meter_id: str) -> Any:
    sale, created = sales.sell(
        ctx.session,
        meter_id,
        ctx.body["amount_micro_yuan"],
        ctx.body.get("method", "cash"),
        ctx.actor,
        idempotency_key=ctx.params["Idempotency-Key"],
    )
    return records.sale_to_dict(sale), 201 if created else 200


_STATUS = enum(*reversals.STATUSES)
_LIST_PARAMS = [
    Param("meter", ID_STR, "only this meter"),
    Param("account", RECORD_ID, "only this account"),
    Param("status", _STATUS, "only this status"),
    Param("from", WHEN, "created at or after (epoch seconds or ISO 8601)"),
    Param("to", WHEN, "created before (epoch seconds or ISO 8601)"),
    Param("limit", LIMIT_5000, "at most this many (default 500, max 5000)"),
]


def _list(ctx: Ctx, model: Any) -> list[Any]:
    p = ctx.params
    q = select(model).order_by(model.id.desc())
    if "meter" in p:
        q = q.where(model.meter_id == p["meter"])
    if "account" in p:
        q = q.where(model.account_id == p["account"])
    if "status" in p:
        q = q.where(model.status == p["status"])
    if "from" in p:
        q = q.where(model.created_ts >= ctx.ts_arg("from"))
    if "to" in p:
        q = q.where(model.created_ts < ctx.ts_arg("to"))
    return list(ctx.session.scalars(q.limit(p.get("limit", 500))))


def _sales(ctx: Ctx, rows: list[Sale]) -> list[dict[str, Any]]:
    reversed_by = records.reversals_of(ctx.session, [s.id for s in rows])
    return [records.sale_to_dict(s, reversed_by.get(s.id)) for s in rows]


@endpoint(
    "/sales",
    "GET",
    "sales.read",
    "Sales query (F21), newest first; each sale shows its reversal",
    tag="sales",
    params=_LIST_PARAMS,
    response=obj({"sales": array(ref("Sale"))}, ["sales"]),
)
def list_sales(ctx: Ctx) -> Any:
    return {"sales": _sales(ctx, _list(ctx, Sale))}


@endpoint(
    "/sales/<int:sale_id>",
    "GET",
    "sales.read",
    "One sale (the printable receipt's content), with its reversal if it has one",
    tag="sales",
    response=ref("Sale"),
)
def get_sale(ctx: Ctx, sale_id: int) -> Any:
    sale = reversals.get_sale(ctx.session, sale_id)
    return _sales(ctx, [sale])[0]


@endpoint(
    "/sales/<int:sale_id>/reversal",
    "POST",
    "sales.reverse",
    "Reverse (correct) a sale the collector applied (F24). Two-phase: money goes back when the "
    "collector confirms. Asking again returns the same reversal (200).",
    tag="sales",
    body=obj({"note": note(SHORT_NOTE_MAX)}),
    body_required=False,
    response=ref("Reversal"),
    status=201,
    also={200: ("the sale's reversal made before (a sale has at most one)", None)},
    links={"GetReversal": ("get_reversal", {"reversal_id": "$response.body#/id"})},
)
def reverse(ctx: Ctx, sale_id: int) -> Any:
    item, created = reversals.reverse(
        ctx.session, sale_id, ctx.actor, note=ctx.body.get("note", "")
    )
    return records.reversal_to_dict(item), 201 if created else 200


@endpoint(
    "/reversals",
    "GET",
    "sales.read",
    "Reversals (F24), newest first",
    tag="sales",
    params=[
        Param("meter", ID_STR, "only this meter"),
        Param("sale", RECORD_ID, "only the reversal of this sale"),
        Param("status", _STATUS, "only this status"),
        Param("from", WHEN, "created at or after (epoch seconds or ISO 8601)"),
        Param("to", WHEN, "created before (epoch seconds or ISO 8601)"),
        Param("limit", LIMIT_5000, "at most this many (default 500, max 5000)"),
    ],
    response=obj({"reversals": array(ref("Reversal"))}, ["reversals"]),
)
def list_reversals(ctx: Ctx) -> Any:
    p = ctx.params
    rows = reversals.list_reversals(
        ctx.session,
        meter=p.get("meter"),
        sale=p.get("sale"),
        status=p.get("status"),
        start_ts=ctx.ts_arg("from"),
        end_ts=ctx.ts_arg("to"),
        limit=p.get("limit", 500),
    )
    return {"reversals": [records.reversal_to_dict(r) for r in rows]}


@endpoint(
    "/reversals/<int:reversal_id>",
    "GET",
    "sales.read",
    "One reversal",
    tag="sales",
    response=ref("Reversal"),
)
def get_reversal(ctx: Ctx, reversal_id: int) -> Any:
    return records.reversal_to_dict(reversals.get(ctx.session, reversal_id))


@endpoint(
    "/meters/<meter_id>/refunds",
    "POST",
    "sales.refund",
    "Refund credit from a meter (F22). Two-phase: the money counts as returned only when the "
    "collector confirms; a refund it rejects returns nothing. Refused (409) above what the "
    "meter holds less the refunds still pending.",
    tag="sales",
    params=[Param("Idempotency-Key", IDEMPOTENCY_KEY, KEY_TEXT, where="header")],
    body=_MONEY_BODY,
    response=ref("Refund"),
    status=201,
    also={200: ("the same key and body again: the refund made the first time", None)},
)
def refund(ctx: Ctx, meter_id: str) -> Any:
    item, created = refunds.refund(
        ctx.session,
        meter_id,
        ctx.body["amount_micro_yuan"],
        ctx.actor,
        method=ctx.body.get("method", "cash"),
        idempotency_key=ctx.params.get("Idempotency-Key"),
    )
    return records.refund_to_dict(item), 201 if created else 200


@endpoint(
    "/refunds",
    "GET",
    "sales.read",
    "Refund query (F23), newest first",
    tag="sales",
    params=_LIST_PARAMS,
    response=obj({"refunds": array(ref("Refund"))}, ["refunds"]),
)
def list_refunds(ctx: Ctx) -> Any:
    return {"refunds": [records.refund_to_dict(r) for r in _list(ctx, Refund)]}


_METER_SPEC = obj(
    {
        "meter": ID_STR,
        "transfer_in_micro_yuan": integer(
            0, checks.MAX_AMOUNT_MICRO_YUAN, "an opening balance moved from the tenant's old meter"
        ),
        "transfer_source": line(NAME_MAX, "where the transfer-in comes from"),
    },
    ["meter"],
)
_CUSTOMER = {
    "oneOf": [
        {**RECORD_ID, "description": "an existing customer id"},
        obj(
            {
                "name": line(NAME_MAX),
                "phone": nullable(PHONE),
                "id_number": nullable(line(ID_NUMBER_MAX)),
                "email": nullable(line(EMAIL_MAX)),
                "note": nullable(note(NOTE_MAX)),
            },
            ["name"],
        ),
    ]
}


@endpoint(
    "/accounts",
    "POST",
    "accounts.manage",
    "Open an account (F14): the tenant, their meters (each an id or {meter, "
    "transfer_in_micro_yuan}), an opening transfer-in per meter. A meter listed twice, a plain "
    "meter or one at another site is refused (409); one that does not exist is 404.",
    tag="accounts",
    body={
        **obj(
            {
                "customer": _CUSTOMER,
                "meters": array(
                    {"oneOf": [ID_STR, _METER_SPEC]}, min_items=1, max_items=MAX_METERS_PER_REQUEST
                ),
                "number": line(64, "the account number (default: A000123 from its id)"),
                "note": note(NOTE_MAX),
            },
            ["customer", "meters"],
        ),
        "examples": [
            {
                "customer": {"name": "Red Lantern Films", "phone": "13900000000"},
                "meters": [{"meter": "m-101", "transfer_in_micro_yuan": 12_000_000}],
            }
        ],
    },
    response=ref("Account"),
    status=201,
    links={
        "GetAccount": ("get_account", _ACCOUNT_ID),
        "AddMeter": ("add_meter", _ACCOUNT_ID),
        "CloseAccount": ("close_account", _ACCOUNT_ID),
    },
)
def open_account(ctx: Ctx) -> Any:
    account = accounts.open_account(
        ctx.session,
        ctx.body["customer"],
        ctx.body["meters"],
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
        Param("status", enum(accounts.OPEN, accounts.CLOSING, accounts.CLOSED), "only this status"),
        Param("limit", LIMIT_5000, "at most this many (default 500, max 5000)"),
    ],
    response=obj({"accounts": array(ref("Account"))}, ["accounts"]),
)
def list_accounts(ctx: Ctx) -> Any:
    q = select(Account).order_by(Account.id.desc())
    if "status" in ctx.params:
        q = q.where(Account.status == ctx.params["status"])
    rows = ctx.session.scalars(q.limit(ctx.params.get("limit", 500)))
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
    account = accounts.add_meter(
        ctx.session,
        account_id,
        ctx.body["meter"],
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
    account = settlement.close_account(ctx.session, account_id, ctx.actor)
    return accounts.to_dict(account, ctx.session), 202


@endpoint(
    "/accounts/<int:account_id>/swap",
    "POST",
    "accounts.manage",
    "Swap a meter of an open account for a free one (B06): the new meter joins the account, "
    "the old one is settled by its collector and its balance moves to the new meter as a "
    "transfer-in. final_energy_wh: the old register typed by hand when the meter cannot be "
    "read (at least the collector's last reading; the energy past it is charged at the "
    "price in force now and taken from what moves). Money still on its way to the old meter "
    "is 409",
    tag="accounts",
    body=obj(
        {
            "old_meter": ID_STR,
            "new_meter": ID_STR,
            "final_energy_wh": integer(0, swap.MAX_REGISTER_WH, "the old register, in Wh"),
            "note": note(500),
        },
        ["old_meter", "new_meter"],
    ),
    response=ref("MeterSwap"),
    status=201,
    links={"GetSwap": ("get_swap", {"swap_id": "$response.body#/id"})},
)
def swap_meter(ctx: Ctx, account_id: int) -> Any:
    final = ctx.body.get("final_energy_wh")
    price = None
    if final is not None:
        old = ctx.session.get(Meter, ctx.body["old_meter"])
        price = usage.price_now(ctx.session, old, now_ts()) if old is not None else None
    item = swap.start(
        ctx.session,
        account_id,
        ctx.body["old_meter"],
        ctx.body["new_meter"],
        ctx.actor,
        final_energy_wh=final,
        price_micro_yuan_per_kwh=price,
        note=ctx.body.get("note") or "",
    )
    return swap.to_dict(ctx.session, item), 201


@endpoint(
    "/swaps/<int:swap_id>",
    "GET",
    "accounts.read",
    "A meter swap and where it stands (closing → moving → done; rejected: the collector "
    "refused to settle the old meter)",
    tag="accounts",
    response=ref("MeterSwap"),
)
def get_swap(ctx: Ctx, swap_id: int) -> Any:
    return swap.to_dict(ctx.session, swap.get(ctx.session, swap_id))
