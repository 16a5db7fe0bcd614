"""``python -m hil`` (``make hil``): the driver catalogue, hardware-in-the-loop.

With ``GRIDVEND_HIL_PORT`` set, runs against a real meter on that serial port (or URL):
``GRIDVEND_HIL_MODEL`` (required), ``GRIDVEND_HIL_BAUD``, ``GRIDVEND_HIL_PARITY``,
``GRIDVEND_HIL_ADDRESS`` (default 1), ``GRIDVEND_HIL_ABSENT`` (an address nobody uses, default
247 / 000000009999) and ``GRIDVEND_HIL_RELAY=1`` to allow switching the relay.

Without it, runs every model against the simulator on a socat pty pair (relay checks and fault
checks included). Prints ``PASS``/``FAIL`` per check; exits 1 if any check failed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from edge.sim import SimThread
from hil.checks import CHECKS, Target

SIM_MODELS = ("acrel-ddsy1352", "acrel-adl400", "dlt645")


class PtyPair:
    """Two linked pseudo-terminals made by socat (like a serial cable)."""

    def __init__(self) -> None:
        if shutil.which("socat") is None:
            raise RuntimeError("socat is not installed (apt-get install socat)")
        self.dir = Path(tempfile.mkdtemp(prefix="gridvend-hil-"))
        self.a, self.b = str(self.dir / "a"), str(self.dir / "b")
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not (os.path.exists(self.a) and os.path.exists(self.b)):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("socat did not create the pty pair")
            time.sleep(0.01)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


async def run_checks(target: Target, label: str, with_sim: bool) -> int:
    failures = 0
    for name, check, sim_only in CHECKS:
        if sim_only and not with_sim:
            continue
        try:
            detail = await check(target)
            print(f"PASS {label}: {name}: {detail}", flush=True)
        except Exception as exc:
            failures += 1
            text = str(exc) or type(exc).__name__
            print(f"FAIL {label}: {name}: {text}", flush=True)
            if os.environ.get("GRIDVEND_HIL_DEBUG"):
                traceback.print_exc()
    await target.client.close()
    return failures


def hardware() -> int:
    port = os.environ["GRIDVEND_HIL_PORT"]
    model = os.environ.get("GRIDVEND_HIL_MODEL")
    if not model:
        print("hil: set GRIDVEND_HIL_MODEL (e.g. acrel-ddsy1352) with GRIDVEND_HIL_PORT")
        return 2
    baud = os.environ.get("GRIDVEND_HIL_BAUD")
    absent = os.environ.get("GRIDVEND_HIL_ABSENT") or ("000000009999" if model == "dlt645" else 247)
    target = Target(
        port,
        model,
        os.environ.get("GRIDVEND_HIL_ADDRESS", "1"),
        absent,
        baud=int(baud) if baud else None,
        parity=os.environ.get("GRIDVEND_HIL_PARITY"),
        relay_allowed=os.environ.get("GRIDVEND_HIL_RELAY") == "1",
    )
    return asyncio.run(run_checks(target, f"{model}@{port}", with_sim=False))


def simulated() -> int:
    failures = 0
    for model in SIM_MODELS:
        pair = PtyPair()
        try:
            # A fast line keeps the run short; the timing itself is the benchmark's business.
            with SimThread(model, 3, listen=(), serial=pair.b, baud=115200) as sim:
                absent = "000000000099" if model == "dlt645" else 99
                with sim.control() as control:
                    target = Target(pair.a, model, 1, absent, baud=115200,
                                    relay_allowed=True, control=control)  # fmt: skip
                    failures += asyncio.run(run_checks(target, f"{model} (simulator, pty)", True))
        finally:
            pair.close()
    return failures


def main() -> int:
    failures = hardware() if os.environ.get("GRIDVEND_HIL_PORT") else simulated()
    print(f"hil: {'all checks passed' if failures == 0 else f'{failures} check(s) failed'}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
