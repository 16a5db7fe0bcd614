"""The test support itself works: a private broker restarts, a pty pair carries bytes."""

from __future__ import annotations

import os
import socket

import pytest

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
