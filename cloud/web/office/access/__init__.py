"""登录管理: operators, roles, the operation log (the login pages are ``office.auth``)."""

from cloud.web.office.security import blueprint

bp = blueprint("office_access", "/office/access")

from cloud.web.office.access import operators, oplog, roles  # noqa: E402, F401  (register views)
