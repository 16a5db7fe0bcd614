"""The tenant's records (缴费记录) and electronic receipts.

Records: every money document of the tenant's accounts on the meter (purchases at the till and
online, refunds, reversals; ``cloud.money.documents``, the office's own list), newest first,
and the online orders not credited yet (waiting, paid, failed, held). A purchase has its
electronic receipt: the till receipt's fields (``cloud.money.receipts.document``), the amount in
capitals, printed by the office's own till-receipt macro (``templates/receipts/macros.html``).
"""

from __future__ import annotations

from typing import Any

from flask import g, render_template
from sqlalchemy import select

from cloud.models import Meter, PaymentOrder, Sale
from cloud.money import documents, receipts
from cloud.payments import lifecycle as lc
from cloud.web.tenant.security import current, db, page

LATEST = 50
_OPEN_ORDERS = (lc.CREATED, lc.PAID, lc.CREDITING, lc.CREDIT_FAILED, lc.HELD, lc.REFUNDING)


@page("/m/<meter_id>/records", "meter")
def records(meter_id: str) -> Any:
    meter: Meter = g.meter
    who = current()
    stmt = documents.statement(
        documents.Filter(kinds=("sale", "refund", "reversal"), meter_id=meter.id)
    )
    cols = stmt.selected_columns
    stmt = stmt.where(cols.account_id.in_(who.account_ids))
    rows = db().execute(stmt.order_by(cols.created_ts.desc(), cols.record_id.desc()).limit(LATEST))
    orders = db().scalars(
        select(PaymentOrder)
        .where(
            PaymentOrder.meter_id == meter.id,
            PaymentOrder.account_id.in_(who.account_ids),
            PaymentOrder.state.in_(_OPEN_ORDERS),
        )
        .order_by(PaymentOrder.id.desc())
        .limit(LATEST)
    )
    return render_template("tenant/records.html", meter=meter, rows=list(rows), orders=list(orders))


@page("/receipts/<int:sale_id>", "sale")
def receipt(sale_id: str) -> Any:
    sale: Sale = g.sale
    doc = receipts.document(db(), "sale", sale.id)
    return render_template("tenant/receipt.html", doc=doc, meter_id=sale.meter_id)
