"""The test support itself works: a private broker restarts, a pty pair carries bytes, the
browser tests' live server closes what a dropped connection was sent."""

from __future__ import annotations

import gc
import os
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.support.browser import LiveServer
from tests.support.services import Mosquitto, PtyPair, wait_port


def test_private_mosquitto_stops_and_restarts_on_its_own_port(mosquitto: Mosquitto) -> None:
    wait_port(mosquitto.port)
    mosquitto.stop()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", mosquitto.port), timeout=0.5),
    ):
        pass
    mosquitto.start()
    wait_port(mosquitto.port)


def test_pty_pair_carries_bytes_both_ways(pty_pair: PtyPair) -> None:
    a = os.open(pty_pair.a, os.O_RDWR | os.O_NOCTTY)
    b = os.open(pty_pair.b, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(a, b"\x01\x03\x02\x00")
        assert os.read(b, 16) == b"\x01\x03\x02\x00"
        os.write(b, b"\xfe\x68")
        assert os.read(a, 16) == b"\xfe\x68"
    finally:
        os.close(a)
        os.close(b)


def test_live_server_closes_a_static_file_when_the_browser_drops_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """werkzeug's own close of the answer runs after a drain that raises on a reset connection:
    the open file of a static asset was left to the garbage collector (a ResourceWarning that
    failed a browser test now and then). 40 requests reset mid-answer leave none."""

    static = Path(__file__).resolve().parents[1] / "cloud" / "web" / "static"
    app = Flask("live-server-test", static_folder=str(static))
    unclosed: list[str] = []

    def hook(unraisable: Any) -> None:
        unclosed.append(repr(unraisable.exc_value))

    monkeypatch.setattr(sys, "unraisablehook", hook)
    request = b"GET /static/vendor/echarts/echarts.common.min.js HTTP/1.1\r\nHost: t\r\n\r\n"
    with LiveServer(app) as server:
        for _ in range(40):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                s.sendall(request)
                assert s.recv(100).startswith(b"HTTP/1.1 200")
                # An RST rather than a FIN, as a browser that gave up on the page sends.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.5)
        gc.collect()
    assert unclosed == []
