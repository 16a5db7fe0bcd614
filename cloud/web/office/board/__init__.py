"""表计监控 / 批量操作 (F18, F35, F36, B03): the meter board (tiles and list, legend with
counts, filters in the URL, live refresh, export), one meter's panel with its row actions, the
batch actions and the command status page (per meter pending → sent → applied → verified,
retry of the failed), and the list of batches (设备操作)."""

from cloud.web.office.board import labels
from cloud.web.office.security import blueprint

bp = blueprint("office_board", "/office/board")
bp.record_once(lambda state: labels.install(state.app))

from cloud.web.office.board import commands, views  # noqa: E402, F401  (register views)
