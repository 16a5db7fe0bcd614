"""Notifications (issue 13): SMS through a GSM modem or a cloud provider, webhooks for
integrators, behind one channel interface (``cloud.notify.channel``)."""
