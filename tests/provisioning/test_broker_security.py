"""The broker nobody can abuse: a real Mosquitto running the password file, ACL and TLS material
that provisioning generates (``provisioning.broker``). Each refusal is checked with a control on
the same path: the same client's allowed message published right after the forbidden one
arrives, and only then is the forbidden one's absence asserted (a broker delivers one
publisher's QoS 1 messages in order), so no test passes because nothing works."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioning import tls
from provisioning.broker import BrokerDir, check_password, hash_password
from tests.provisioning.client import Client, Refused
from tests.support.services import Mosquitto, free_port

S1, S2 = "site-1", "site-2"


@dataclass
class Secured:
    dir: BrokerDir
    broker: Mosquitto
    passwords: dict[str, str]

    def client(self, user: str | None, password: str | None = None) -> Client:
        pw = password if password is not None else self.passwords.get(user or "")
        return Client(self.broker.port, user, pw)

    def bridge(self) -> Client:
        return self.client("gridvend-bridge")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    folder = tmp_path_factory.mktemp("broker")
    bd = BrokerDir.create(folder, port=free_port(), tls_port=free_port(), names=["127.0.0.1"])
    passwords = {"gridvend-bridge": bd.bridge_credentials()["GRIDVEND_BROKER_PASSWORD"]}
    for site, gw in ((S1, "gw-a"), (S1, "gw-b"), (S2, "gw-c")):
        passwords[gw] = f"pw-{gw}-0123456789"
        bd.add_collector(site, gw, passwords[gw])
    passwords["int-1"] = bd.add_integrator(S1, "int-1")
    bd.save()
    broker = Mosquitto(port=bd.port, config_file=bd.conf_file).start()
    try:
        yield Secured(bd, broker, passwords)
    finally:
        broker.close()


def up(site: str, gw: str) -> str:
    return f"gridvend/v1/{site}/{gw}/up"


def test_our_hashes_are_mosquitto_passwd_hashes_and_back() -> None:
    hashed = hash_password("s3cret", salt=b"0123456789ab")
    assert hashed.startswith("$7$101$")
    assert check_password("s3cret", hashed)
    assert not check_password("s3cret!", hashed)
    # A line written by mosquitto_passwd itself (2.0.11, "alice" / "secret"):
    theirs = (
        "$7$101$1g810ERJjzGbYIcj$LP+PpDR+WyatBldVEn78xpE48cW+aKqX+eRlG/gL5waAROHdwjm1cPMga4M3oyD7"
        "FBynqQtcDvSFWLnQ1w2j3g=="
    )
    assert check_password("secret", theirs)
    assert not check_password("Secret", theirs)


def test_anonymous_and_wrong_passwords_are_refused(secured: Secured) -> None:
    with pytest.raises(Refused):
        secured.client(None).connect()
    with pytest.raises(Refused):
        secured.client("gw-a", "not-the-password").connect()
    with pytest.raises(Refused):
        secured.client("nobody", "whatever").connect()
    with secured.client("gw-a"):
        pass  # the right password connects


def test_collector_cannot_publish_under_another_collector(secured: Secured) -> None:
    with secured.bridge() as bridge, secured.client("gw-a") as a:
        bridge.subscribe("gridvend/v1/+/+/up", "gridvend/v1/+/+/status")
        a.publish(up(S1, "gw-b"), b"forged uplink")
        a.publish(f"gridvend/v1/{S1}/gw-b/status", b"offline", retain=True)
        a.publish(up(S2, "gw-c"), b"forged uplink")
        a.publish(up(S1, "gw-a"), b"my own")
        bridge.wait_for(up(S1, "gw-a"))
        assert bridge.topics() == [up(S1, "gw-a")]


def test_collector_cannot_read_another_collectors_downlink(secured: Secured) -> None:
    with secured.bridge() as bridge, secured.client("gw-a") as a:
        granted = a.subscribe(f"gridvend/v1/{S1}/gw-b/down", "gridvend/v1/+/+/down", "#")
        assert granted[0] == 128 or granted[0] <= 1  # refused, or granted and filtered
        a.subscribe(f"gridvend/v1/{S1}/gw-a/down")
        bridge.publish(f"gridvend/v1/{S1}/gw-b/down", b"for b")
        bridge.publish(f"gridvend/v1/{S1}/gw-a/down", b"for a")
        a.wait_for(f"gridvend/v1/{S1}/gw-a/down")
        assert set(a.topics()) == {f"gridvend/v1/{S1}/gw-a/down"}
        assert all(p == b"for a" for _, p, _ in a.messages())


def test_only_the_bridge_publishes_north_a_forged_retained_state_never_reaches_a_subscriber(
    secured: Secured,
) -> None:
    state = f"gridvend/v1/{S1}/north/meters/m2/state"
    forged = b'{"balance_micro_yuan": -99000000000000}'
    with secured.client("gw-a") as a, secured.client("int-1") as integrator:
        a.publish(state, forged, retain=True)
        integrator.publish(state, forged, retain=True)
    with secured.bridge() as bridge:
        bridge.publish(f"gridvend/v1/{S1}/north/meters/m3/state", b'{"ok": true}', retain=True)
    with secured.client("int-1") as later:
        later.subscribe(f"gridvend/v1/{S1}/north/#")
        later.wait_for(f"gridvend/v1/{S1}/north/meters/m3/state")
        assert state not in later.topics()
        assert all(p != forged for _, p, _ in later.messages())


def test_forged_retained_status_from_anyone_but_the_collector_never_reaches_the_bridge(
    secured: Secured,
) -> None:
    status = f"gridvend/v1/{S1}/gw-b/status"
    with secured.client("gw-a") as a, secured.client("int-1") as integrator:
        a.publish(status, b"offline", retain=True)
        integrator.publish(status, b"offline", retain=True)
    with secured.client("gw-b") as b:
        b.publish(f"gridvend/v1/{S1}/gw-b/up", b"marker")
    with secured.bridge() as bridge:
        bridge.subscribe("gridvend/v1/+/+/status")
        with secured.client("gw-b") as b:
            b.publish(status, b"online", retain=True)
        bridge.wait_for(status)
        assert [p for t, p, _ in bridge.messages() if t == status] == [b"online"]


def test_a_bridge_hears_the_other_bridges_notices_and_no_collector_can_forge_one(
    secured: Secured,
) -> None:
    notice = "gridvend/v1/bridge/bridge-two"
    with secured.bridge() as bridge:
        bridge.subscribe("gridvend/v1/bridge/+")
        with secured.client("gw-a") as a, secured.client("int-1") as integrator:
            a.publish(notice, b"offline", retain=True)  # as if bridge-two had died
            integrator.publish(notice, b"offline", retain=True)
        with secured.bridge() as two:
            two.publish(notice, b"online", retain=True)
        bridge.wait_for(notice)
        assert [p for t, p, _ in bridge.messages() if t == notice] == [b"online"]
    # A collector reads them (it resends what waits for an ack when a bridge comes online).
    with secured.client("gw-b") as b:
        b.subscribe("gridvend/v1/bridge/+")
        b.wait_for(notice)
        assert [p for t, p, _ in b.messages() if t == notice] == [b"online"]


def test_integrator_reads_only_its_sites_north_and_cannot_publish(secured: Secured) -> None:
    mine = f"gridvend/v1/{S1}/north/events"
    theirs = f"gridvend/v1/{S2}/north/events"
    with secured.client("int-1") as integrator, secured.bridge() as bridge:
        integrator.subscribe("#", f"gridvend/v1/{S2}/north/#", "gridvend/v1/+/+/up")
        integrator.subscribe(f"gridvend/v1/{S1}/north/#")
        with secured.client("gw-a") as a:
            a.publish(up(S1, "gw-a"), b"uplink")
        bridge.publish(theirs, b'{"site": 2}')
        bridge.publish(f"gridvend/v1/{S1}/gw-a/down", b"downlink")
        bridge.publish(mine, b'{"site": 1}')
        integrator.wait_for(mine)
        # Only site 1's north (retained states from earlier tests included), nothing else.
        assert all(t.startswith(f"gridvend/v1/{S1}/north/") for t in integrator.topics())
        assert theirs not in integrator.topics()
        # Publishing: to its own north, to a collector's uplink, to a downlink: all dropped.
        bridge.subscribe("gridvend/v1/+/+/up")
        with secured.client("gw-a") as a:
            a.subscribe(f"gridvend/v1/{S1}/gw-a/down")
            integrator.publish(mine, b"forged")
            integrator.publish(up(S1, "gw-a"), b"forged")
            integrator.publish(f"gridvend/v1/{S1}/gw-a/down", b"forged")
            bridge.publish(f"gridvend/v1/{S1}/gw-a/down", b"real")
            a.wait_for(f"gridvend/v1/{S1}/gw-a/down")
            assert [p for _, p, _ in a.messages()] == [b"real"]
        assert all(p != b"forged" for _, p, _ in integrator.messages())
        assert all(p != b"forged" for _, p, _ in bridge.messages())


def test_a_collector_added_while_the_broker_runs_gets_in_after_a_reload(secured: Secured) -> None:
    bd = BrokerDir.open(secured.dir.folder)
    bd.add_collector(S1, "gw-new", "pw-new-0123456789")
    with pytest.raises(Refused):
        secured.client("gw-new", "pw-new-0123456789").connect()
    bd.save()
    with pytest.raises(Refused):  # saved but not reloaded: the broker has the old files
        secured.client("gw-new", "pw-new-0123456789").connect()
    with secured.client("gw-a") as a:  # a connected client survives the reload
        assert bd.reload(), "the broker's pid file should name a running mosquitto"
        deadline = time.monotonic() + 5
        while True:
            try:
                new = secured.client("gw-new", "pw-new-0123456789").connect()
                break
            except Refused:
                assert time.monotonic() < deadline, "the reload did not take the new collector"
                time.sleep(0.05)
        with secured.bridge() as bridge:
            bridge.subscribe("gridvend/v1/+/+/up")
            new.publish(up(S1, "gw-a"), b"not mine")
            new.publish(up(S1, "gw-new"), b"mine")
            a.publish(up(S1, "gw-a"), b"still here")
            bridge.wait_for(up(S1, "gw-new"))
            bridge.wait_for(up(S1, "gw-a"))
            assert [p for t, p, _ in bridge.messages() if t == up(S1, "gw-a")] == [b"still here"]
        new.close()


def test_tls_listener_verifies_against_the_provisioned_ca_and_refuses_another(
    secured: Secured, tmp_path: Path
) -> None:
    bd = secured.dir
    assert bd.ca_file is not None
    assert bd.tls_port is not None
    pw = secured.passwords["gw-a"]
    with Client(bd.tls_port, "gw-a", pw, ca_file=str(bd.ca_file)) as c:
        c.publish(up(S1, "gw-a"), b"over TLS")
    with pytest.raises(Refused):
        Client(bd.tls_port, "gw-a", "wrong", ca_file=str(bd.ca_file)).connect()
    other = tls.make_ca(tmp_path / "other")
    # What paho's tls_set does (a default context with that CA), with the sockets closed:
    _tls_handshake(bd.tls_port, str(bd.ca_file), "127.0.0.1")  # the control: it verifies
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        _tls_handshake(bd.tls_port, str(other), "127.0.0.1")
    # The name is checked too: the certificate is for 127.0.0.1, not for "localhost".
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _tls_handshake(bd.tls_port, str(bd.ca_file), "localhost")


def _tls_handshake(port: int, ca_file: str, name: str) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name),
    ):
        pass
