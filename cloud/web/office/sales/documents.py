"""A money document's result page, its live delivery state, and its printout.

- ``document``: the result of a sale, refund, reversal, transfer-in or settlement: the receipt
  as it prints, the delivery state and the meter's balance, which the page polls (htmx, every
  second) until the collector has applied or refused it. While the collector or the meter is
  out of contact it says so: the money is booked and goes out by itself when they are back.
- ``document_print`` (POST): counts the print (a print after the first is a reprint, 补打,
  logged with the count) and opens the printout, which prints itself.
- ``document_printout``: the receipt alone with the print CSS: the 80 mm till receipt for sales
  and transfers-in, the A5 slip for refunds, reversals and settlements; as many copies as the
  site's defaults say.

Other screens link here for their documents (``url_for('office_sales.document', kind=…,
record_id=…)``): opening an account's first purchase, a close-account settlement slip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from sqlalchemy import select

from cloud.errors import ServiceError
from cloud.models import Meter
from cloud.money import receipts
from cloud.web.office.sales import bp
from cloud.web.office.security import current, db, page

SLIP_KINDS = frozenset({"refund", "reversal", "settlement"})


def _document(kind: str, record_id: int) -> receipts.Document:
    if kind not in receipts.MODELS:
        abort(404)
    try:
        doc = receipts.document(db(), kind, record_id)
    except ServiceError:
        abort(404)
    scope = current().scope
    if not scope.everything:
        in_scope = (
            db().scalars(scope.meters(select(Meter.id)).where(Meter.id == doc.meter_id)).first()
        )
        if in_scope is None:
            abort(404)
    return doc


@dataclass(frozen=True)
class Links:
    """A document's own addresses: its result page, its delivery state (which the page polls)
    and its print (POST)."""

    page: str
    state: str
    print: str


def links(kind: str, record_id: int, page: str | None = None) -> Links:
    """``Links`` from one ``url_for`` (none when ``page``, the result page's address, is
    known): the state and the print are the page's address and their own last segment, as
    the routes below are (``tests/web/test_receipts.py`` checks them against ``url_for``)."""
    if page is None:
        page = url_for("office_sales.document", kind=kind, record_id=record_id)
    return Links(page, page + "/state", page + "/print")


def result_page(doc: receipts.Document, url: str | None = None) -> str:
    """The result page of a document. With ``url`` (the page's own address) only its
    ``<main>`` and title, for an htmx answer that replaces the page's ``<main>`` and puts ``url``
    in the address bar: the sale form's confirm (the header and the menu are already there)."""
    own = links(doc.kind, doc.record_id, url)
    if url is None:
        return render_template(
            "office/sales/result.html", doc=doc, slip=doc.kind in SLIP_KINDS, links=own
        )
    return render_template(
        "office/sales/result.html",
        doc=doc,
        slip=doc.kind in SLIP_KINDS,
        links=own,
        layout="htmx_main.html",
        next_url=url,
    )


@page(bp, "/documents/<kind>/<int:record_id>", "sales.read")
def document(kind: str, record_id: int) -> Any:
    return result_page(_document(kind, record_id))


@page(bp, "/documents/<kind>/<int:record_id>/state", "sales.read")
def document_state(kind: str, record_id: int) -> Any:
    """The delivery state and balance alone (the result page polls it). Once decided the part
    comes back without its polling trigger, so the page stops asking."""
    doc = _document(kind, record_id)
    return render_template(
        "office/sales/_dispatch.html", doc=doc, links=links(doc.kind, doc.record_id)
    )


@page(bp, "/documents/<kind>/<int:record_id>/print", "sales.sell", methods=("POST",))
def document_print(kind: str, record_id: int) -> Any:
    doc = _document(kind, record_id)
    receipts.printed(db(), doc.kind, doc.record_id, current().actor)
    back = request.form.get("back", "")
    target = url_for("office_sales.document_printout", kind=kind, record_id=record_id, auto=1)
    if back.startswith("/office/") and "//" not in back:
        target = url_for(
            "office_sales.document_printout", kind=kind, record_id=record_id, auto=1, back=back
        )
    return redirect(target, code=303)


@page(bp, "/documents/<kind>/<int:record_id>/printout", "sales.read")
def document_printout(kind: str, record_id: int) -> Any:
    doc = _document(kind, record_id)
    back = request.args.get("back", "")
    if not (back.startswith("/office/") and "//" not in back):
        back = url_for("office_sales.document", kind=kind, record_id=record_id)
    return render_template(
        "receipts/printout.html",
        doc=doc,
        slip=kind in SLIP_KINDS,
        auto=request.args.get("auto") == "1",
        back=back,
    )
