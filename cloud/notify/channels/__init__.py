"""The channels a notification can leave by, behind one interface (``base.Channel``): a GSM
modem, Aliyun SMS, Tencent Cloud SMS and a signed webhook. ``build(kind, name, settings)``
makes one from its settings."""
