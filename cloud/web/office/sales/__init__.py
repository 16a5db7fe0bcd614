"""售电管理: sell (F20), refund (F22), reversal (F24), sales and refund records (F21, F23), the
cashier's daily close, and every money document's result page and printout (receipts)."""

from cloud.web.office import receipts
from cloud.web.office.security import blueprint

bp = blueprint("office_sales", "/office/sales")
bp.record_once(lambda state: receipts.install(state.app))

from cloud.web.office.sales import (  # noqa: E402, F401  (register views)
    close,
    documents,
    records,
    refund,
    reversal,
    sell,
)
