"""报表中心 (issue 11): live alarms and their history (F25, F33), sales by day, month and year
(F26–F28), lost meters and collectors (F29, F30), energy analysis (F31), plain instruments (F32),
the tenant's monthly statement, the credit runway list (B07), the archive (F03), and the pages
of background exports (F34). Each report: filters in the URL, a chart, a table, totals, 导出
Excel and 打印. The figures are ``cloud.reporting``'s, the same functions the tests check
against a hand computation; ``common.py`` holds what the pages share."""

from flask.blueprints import BlueprintSetupState

from cloud.web.office import receipts
from cloud.web.office.reports import labels
from cloud.web.office.security import blueprint

bp = blueprint("office_reports", "/office/reports")


def _install(state: BlueprintSetupState) -> None:
    receipts.install(state.app)
    labels.install(state.app)


bp.record_once(_install)

from cloud.web.office.reports import (  # noqa: E402, F401  (register views)
    alarms,
    archive,
    energy,
    instruments,
    jobs,
    lost,
    runway,
    sales,
    statement,
)
