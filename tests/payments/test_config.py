"""The providers a cloud is configured with (``cloud.payments.config``: what ``gridvend cloud
serve`` and the payment jobs build from ``<instance>/payments.json``) really talk to their
provider: Alipay's gateway and WeChat Pay's API are played by an HTTP server on 127.0.0.1 that
answers as they do (signed with the provider key), and the configured providers reach it over
the network, the way production reaches the real ones."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cloud.db import Database
from cloud.payments import config as payment_config
from cloud.payments.orders import Payments
from cloud.payments.provider import PAID, PayRequest
from cloud.payments.transport import HttpRequest
from tests.payments.players import (
    FakeGateway,
    alipay_settings,
    wechat_settings,
    wechat_transaction,
)


class Played:
    """One provider's API on a loopback port, answering through a ``FakeGateway``."""

    def __init__(self, gateway: FakeGateway) -> None:
        self.gateway = gateway
        played = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                url = f"http://127.0.0.1:{played.port}{self.path}"
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = played.gateway.send(HttpRequest(self.command, url, headers, body))
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = _answer  # noqa: N815 (http.server's names)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def alipay_api() -> Iterator[Played]:
    played = Played(FakeGateway("alipay", time.time))
    try:
        yield played
    finally:
        played.close()


@pytest.fixture
def wechat_api() -> Iterator[Played]:
    played = Played(FakeGateway("wechat", time.time))
    try:
        yield played
    finally:
        played.close()


def configured(tmp_path: Path, settings: dict[str, object]) -> Payments:
    """The ``Payments`` a cloud builds from ``<instance>/payments.json``."""
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / payment_config.FILE).write_text(json.dumps(settings), encoding="utf-8")
    db = Database(f"sqlite:///{tmp_path / 'unused.db'}")
    return payment_config.payments(db, payment_config.settings(instance))


def test_configured_providers_call_their_provider_over_http(
    tmp_path: Path, alipay_api: Played, wechat_api: Played
) -> None:
    alipay_api.gateway.routes["alipay.trade.query"] = lambda r: (
        200,
        alipay_api.gateway.alipay_answer(
            "alipay_trade_query_response",
            {
                "code": "10000",
                "msg": "Success",
                "trade_no": "2026030122001424330501234567",
                "out_trade_no": "GV20260301000001",
                "trade_status": "TRADE_SUCCESS",
                "total_amount": "12.30",
            },
        ),
    )
    wechat_api.gateway.routes["POST /v3/pay/transactions/h5"] = lambda r: (
        200,
        b'{"h5_url":"https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx1"}',
    )
    wechat_api.gateway.routes["GET /v3/pay/transactions/out-trade-no/GV2"] = lambda r: (
        200,
        json.dumps(wechat_transaction("GV2", 5000)).encode(),
    )
    payments = configured(
        tmp_path,
        {
            "alipay": alipay_settings(gateway=f"{alipay_api.url}/gateway.do"),
            "wechat": wechat_settings(api=wechat_api.url),
        },
    )
    providers = payments.providers
    event = providers["alipay"].query("GV20260301000001")
    assert (event.state, event.amount_fen) == (PAID, 1230)
    action = providers["wechat"].create(
        PayRequest("GV2", 5000, "电费充值 m-101", "https://cloud.example/pay/notify/wechat")
    )
    assert action.url.startswith("https://wx.tenpay.com/")
    assert providers["wechat"].query("GV2").state == PAID
    assert [r.url.split("?")[0] for r in wechat_api.gateway.requests] == [
        f"{wechat_api.url}/v3/pay/transactions/h5",
        f"{wechat_api.url}/v3/pay/transactions/out-trade-no/GV2",
    ]
    assert len(alipay_api.gateway.requests) == 1
