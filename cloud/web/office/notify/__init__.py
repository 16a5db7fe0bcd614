"""短信通知 in the office (issue 13): the outbox with its filters and states and a resend, the
channels' health, the message templates of a site, and a tenant's notification numbers. The
views call ``cloud.notify``'s services; the notifier (``gridvend cloud notify``) sends."""

from cloud.web.office.security import blueprint

bp = blueprint("office_notify", "/office/notify")

from cloud.web.office.notify import outbox, settings  # noqa: E402, F401  (register views)
