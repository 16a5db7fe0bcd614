"""系统设置: buildings and units, collectors, meters (and their import), tariffs, site defaults."""

from cloud.web.office.security import blueprint

bp = blueprint("office_settings", "/office/settings")

from cloud.web.office.settings import (  # noqa: E402, F401  (register views)
    collectors,
    defaults,
    meter_import,
    meters,
    places,
    tariffs,
)
