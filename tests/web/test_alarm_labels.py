"""Every alarm kind the cloud can raise has one label, in both languages: the board, the customer
pages and the report centre read the same table (they had two copies, one of which called the
collector's alarm by a kind that does not exist)."""

from __future__ import annotations

from flask import Flask
from flask_babel import force_locale

from cloud.monitoring import alarms
from cloud.web import i18n
from cloud.web.office import alarm_labels

RAISED = {raised for raised, _clears in alarms.EVENT_ALARMS.values() if raised} | {
    value for name, value in vars(alarms).items() if name.isupper() and isinstance(value, str)
}


def test_every_kind_the_cloud_raises_has_a_label():
    assert RAISED - set(alarm_labels.ALARMS) == set()


def test_labels_are_chinese_by_default_and_an_sms_channel_is_named():
    app = Flask(__name__)
    i18n.init_app(app)
    with app.test_request_context():
        with force_locale("zh_CN"):
            assert alarm_labels.alarm("gateway_lost_contact") == "管理机失联"
            assert alarm_labels.alarm("sms_down:modem") == "短信通道故障：modem"
        with force_locale("en"):
            assert alarm_labels.alarm("sms_down:aliyun") == "SMS channel down: aliyun"
        assert alarm_labels.alarm("no_such_kind") == "no_such_kind"
