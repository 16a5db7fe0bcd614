"""客户管理: the open-account wizard (F14) and a meter added later, account queries open and
closed (F15, F17), the tenant's page, closing with its settlement (F16), reading history
(F19) and the meter swap (B06). The meter board is ``office.board``."""

from flask.blueprints import BlueprintSetupState

from cloud.web.office import receipts
from cloud.web.office.board import labels
from cloud.web.office.security import blueprint

bp = blueprint("office_customers", "/office/customers")


def _install(state: BlueprintSetupState) -> None:
    receipts.install(state.app)
    labels.install(state.app)


bp.record_once(_install)

from cloud.web.office.customers import (  # noqa: E402, F401  (register views)
    accounts,
    closing,
    detail,
    opening,
    readings,
    swapping,
)
