"""The `--system` broker folder as the Debian Mosquitto service uses it: Debian's stock main
config (pid file, persistence, log, ``include_dir``) with the generated snippet in its
``conf.d``, Mosquitto started as root and dropping to the ``mosquitto`` user, which reads the
password file, the ACL and the server key through their group (root:mosquitto 0640) and nothing
else. No ``user root`` here: this is the permission model of a real install."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.broker import BrokerDir
from tests.provisioning.client import Client, Refused
from tests.support.services import free_port, wait_port

DEBIAN_MAIN = """pid_file {root}/run/mosquitto.pid
persistence true
persistence_location {root}/lib/
log_dest file {root}/log/mosquitto.log
include_dir {root}/conf.d
"""


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A folder the ``mosquitto`` user can traverse (pytest's tmp_path is 0700 root)."""
    if os.geteuid() != 0:
        pytest.fail("this test checks the root → mosquitto permission drop: run it as root")
    try:
        gid = grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        pytest.fail("the mosquitto group is missing (apt-get install mosquitto)")
    root = Path(tempfile.mkdtemp(prefix="gridvend-sysbroker-", dir="/tmp"))
    root.chmod(0o755)
    for sub in ("run", "lib", "log", "conf.d"):
        (root / sub).mkdir()
        os.chown(root / sub, 0, gid)
        (root / sub).chmod(0o775)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_system_snippet_runs_under_debians_main_config_as_the_mosquitto_user(
    public_tmp: Path,
) -> None:
    port, tls_port = free_port(), free_port()
    bd = BrokerDir.create(public_tmp / "broker", port=port, tls_port=tls_port,
                          tls_host="127.0.0.1", names=["127.0.0.1"], flavour="system")  # fmt: skip
    bd.add_collector("s1", "gw-a", "pw-gw-a-0123456789")
    bd.save()
    gid = grp.getgrnam("mosquitto").gr_gid
    for path in (bd.passwd_file, bd.acl_file, bd.tls_dir / "server.key"):
        st = path.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid, 0o640), path
    assert (bd.tls_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    assert bd.bridge_env_file.stat().st_mode & 0o777 == 0o600
    conf = bd.conf_file.read_text()
    for option in ("pid_file", "persistence_location", "log_dest", "user "):
        assert option not in conf  # the main config's; a duplicate would stop Mosquitto
    (public_tmp / "conf.d" / "gridvend.conf").symlink_to(bd.conf_file)
    main = public_tmp / "mosquitto.conf"
    main.write_text(DEBIAN_MAIN.format(root=public_tmp))
    proc = subprocess.Popen(["mosquitto", "-c", str(main)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        try:
            wait_port(port, 10)
            wait_port(tls_port, 10)
        except TimeoutError:
            proc.kill()
            out = proc.communicate()[0].decode(errors="replace")
            log = (public_tmp / "log" / "mosquitto.log").read_text(errors="replace")
            pytest.fail(f"mosquitto did not start:\n{out}\n{log}")
        creds = bd.bridge_credentials()
        with Client(port, creds["GRIDVEND_BROKER_USERNAME"], creds["GRIDVEND_BROKER_PASSWORD"]):
            pass
        with Client(tls_port, "gw-a", "pw-gw-a-0123456789", ca_file=str(bd.ca_file)) as c:
            c.publish("gridvend/v1/s1/gw-a/up", b"over TLS as the mosquitto user")
        with pytest.raises(Refused):
            Client(port).connect()
        pid = int((public_tmp / "run" / "mosquitto.pid").read_text())
        assert Path(f"/proc/{pid}").stat().st_uid == pwd.getpwnam("mosquitto").pw_uid
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
