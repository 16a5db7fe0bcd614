"""A bridge that dies at the worst moment: right after its first transaction that applied
something commits, before a single ack leaves (SIGKILL to itself, no cleanup). The test that runs
it (tests/scale/test_crash.py) starts it as a child process; the bridge code is the real one."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from cloud.bridge.link import Inbound
from cloud.bridge.parts import BridgeSettings
from cloud.bridge.worker import Bridge
from cloud.db import Database
from cloud.uplink import ingest
from shared import logs
from shared.broker import Broker


class CrashingBridge(Bridge):
    """Dies between applying a batch and acking it."""

    def _apply(self, uplinks: list[ingest.Uplink], origin: dict[tuple[str, int], Inbound]) -> None:
        if not uplinks:
            return
        out = self.applier.apply(uplinks)  # committed
        if out.acks:
            print(f"applied {sum(len(v) for v in out.acks.values())} envelopes", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--client-id", required=True)
    args = parser.parse_args(argv)
    logs.setup("warning")
    db = Database(args.database)
    settings = BridgeSettings(
        broker=Broker(url=args.broker),
        client_id=args.client_id,
        publish_north=False,
        lost_contact_every_s=3600,
    )
    CrashingBridge(db, settings).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
