"""``gridvend demo`` (``make demo``): the whole system on one machine, on embedded defaults.

It starts, each as the user would run it, in a fresh folder (``--data-dir``, default
``./var/demo``): a private Mosquitto on 127.0.0.1:1884 (``--mqtt-port``) with the password
file and ACL that provisioning generates (anonymous clients refused; persistence in the data
folder; ``demo.broker``); a simulated film-studio park modelled on the case study (11 studios on 2
collectors, 40 meters: prepaid Acrel DDSY1352 meters on Modbus buses, a DL/T 645 bus, four
ADL400 plain meters), one ``gridvend sim`` per bus; the collectors' keys and ``edge.toml``
(``provisioning``); one ``gridvend edge run`` per collector; ``gridvend cloud bridge``; and the
API (``gridvend cloud serve``) on http://127.0.0.1:8000. The tenants' opening balances are
small on purpose: with ``--speed`` (simulated seconds per real second, default 60) alarms and
trips happen within minutes. It prints the operator login, an API token and curl examples,
then runs until ``--duration`` seconds have passed or Ctrl-C; every child process is stopped
(and dies with the demo even if the demo is killed).
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from cloud.errors import ServiceError
from demo.broker import PrivateBroker
from demo.park import BusPlan, GatewayPlan, Park, Plan

SITE = "studio-park"
MARKER = ".gridvend-demo"
OPERATOR = "office"
# Opening balance per studio (yuan): from comfortable to a few minutes of credit at --speed 60.
STUDIO_YUAN = (300, 160, 90, 60, 45, 32, 24, 16, 10, 6, 3)
# The tenant the banner offers for the phone site (seed_people gives studio n phone 1380000nnnn).
TENANT_UNIT, TENANT_PHONE = "S10", "13800000009"
PRICE = 1_200_000  # 1.20 yuan per kWh


def case_study_plan(speed: float) -> Plan:
    """The demo park: 11 studios on 2 collectors, 40 meters."""
    gateways = [
        GatewayPlan(
            "gw-a",
            "Stage building A",
            "1F",
            [BusPlan("a1", "acrel-ddsy1352", 16), BusPlan("a2", "dlt645", 4)],
        ),
        GatewayPlan(
            "gw-b",
            "Stage building B",
            "1F",
            [BusPlan("b1", "acrel-ddsy1352", 16), BusPlan("b2", "acrel-adl400", 4, prepaid=False)],
        ),
    ]
    plan = Plan(
        site=SITE,
        site_name="Film studio park (demo)",
        gateways=gateways,
        speed=speed,
        report_s=5,
        heartbeat_s=10,
        ack_timeout_s=10,
        price_micro_yuan_per_kwh=PRICE,
        edge_defaults={
            "price_override_micro_yuan_per_kwh": PRICE,
            # Simulated time runs `speed` times faster: energy per real second grows with it.
            "rated_power_w": int(200_000 * max(1.0, speed)),
        },
    )
    prepaid = [m for m in plan.meters() if m.prepaid]
    for k, meter in enumerate(prepaid):
        plan.units[meter.id] = f"S{k * len(STUDIO_YUAN) // len(prepaid) + 1:02d}"
    for meter in plan.meters():
        if not meter.prepaid:
            plan.units[meter.id] = "COMMON-B"
    return plan


def studios(plan: Plan) -> dict[str, list[str]]:
    """Studio unit → its prepaid meters."""
    out: dict[str, list[str]] = {}
    for meter in plan.meters():
        if meter.prepaid and meter.unit:
            out.setdefault(meter.unit, []).append(meter.id)
    return out


def seed_people(park: Park, password: str, token: str) -> None:
    """The office operator, its API token, and one tenant account per studio."""
    from cloud.access import auth
    from cloud.audit import Actor
    from cloud.money import accounts

    actor = Actor("demo")
    with park.db.session() as s:
        auth.create_operator(s, OPERATOR, password, "admin", actor, display_name="Park office")
        auth.create_token(s, OPERATOR, actor, name="demo", token=token)
    for n, (unit, meters) in enumerate(sorted(studios(park.plan).items())):
        each = STUDIO_YUAN[n] * 1_000_000 // len(meters)
        spec = [{"meter": m, "transfer_in_micro_yuan": each, "transfer_source": "IC card"}
                for m in meters]  # fmt: skip
        with park.db.session() as s:
            accounts.open_account(
                s, {"name": f"Studio {unit[1:]} productions", "phone": f"1380000{n:04d}"},
                spec, actor, number=f"A-{unit}",
            )  # fmt: skip


def notify_config(folder: Path) -> Path:
    """The demo's notifier settings: texts go to a file of JSON lines (the demo has no GSM modem
    or SMS account; a deployment lists those channels instead, docs/architecture.md)."""
    path = folder / "notify.toml"
    path.write_text(
        f'[events]\nsign = "园区电费"\n\n[channels.sms]\nkind = "file"\n'
        f'path = "{folder / "sms.jsonl"}"\n',
        encoding="utf-8",
    )
    return path


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def fresh_folder(path: Path) -> None:
    """Empty ``path`` if an earlier demo made it; refuse a folder the demo did not make."""
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).exists():
            raise SystemExit(
                f"gridvend demo: {path} is not empty and was not made by the demo; "
                "choose another --data-dir"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("made by gridvend demo; emptied by the next demo\n")


def banner(
    api: str, broker: str, password: str, token: str, plan: Plan, folder: Path, viewer: str
) -> str:
    meter = next(m.id for m in plan.meters() if m.prepaid)
    auth = f'-s -H "Authorization: Bearer {token}"'
    port = broker.rsplit(":", 1)[-1]
    return f"""
gridvend demo is running: {len(plan.meters())} simulated meters on {len(plan.gateways)} \
collectors, 11 studios, time x{plan.speed:g}.

  API          {api}/api/v1   (OpenAPI: {api}/api/v1/openapi.json)
  office UI    {api}/office/   (sign in as the operator below; 中文 / English)
  tenant site  {api}/t/   (phone-sized; sign in with unit {TENANT_UNIT}, phone {TENANT_PHONE})
               the one-time code arrives as a text in {folder / "sms.jsonl"} (a few
               seconds); top-ups go through the sandbox provider (no money)
  SMS texts    {folder / "sms.jsonl"}   (the notifier's alarms, trips, top-ups and sign-in
               codes, one JSON line a text: the demo's stand-in for a GSM modem or cloud SMS)
  MQTT broker  {broker}   (Mosquitto; anonymous clients are refused)
  integrator   demo-viewer / {viewer}   (reads gridvend/v1/{plan.site}/north/# only)
  operator     {OPERATOR} / {password}
  API token    {token}
  state        {folder}   (logs in {folder / "logs"})

Try:
  curl {auth} {api}/api/v1/meters
  curl {auth} "{api}/api/v1/meters?state=arrears"
  curl {auth} "{api}/api/v1/alarms?active=true"
  curl {auth} -X POST -H "Content-Type: application/json" -H "Idempotency-Key: demo-sale-1" \\
       -d '{{"amount_micro_yuan": 100000000, "method": "cash"}}' {api}/api/v1/meters/{meter}/sales
  curl {auth} {api}/api/v1/meters/{meter}
  mosquitto_sub -p {port} -u demo-viewer -P {viewer} -t 'gridvend/v1/{plan.site}/north/#' -v

Ctrl-C stops everything.
"""


STATUS_EVERY_S = 15.0


def park_status(db: Any) -> str:
    """One line on how the park is doing, from the cloud database (what the office would see)."""
    from sqlalchemy import func, select

    from cloud.models import Alarm, Meter, Sale

    with db.session(readonly=True) as s:
        states = dict(
            s.execute(
                select(Meter.display_state, func.count())
                .where(Meter.prepaid.is_(True))
                .group_by(Meter.display_state)
            )
            .tuples()
            .all()
        )
        plain = s.scalar(select(func.count()).where(Meter.prepaid.is_(False)))
        total = sum(states.values()) + plain
        seen = s.scalar(select(func.count()).where(Meter.last_seen_ts.is_not(None)))
        tripped = s.scalar(select(func.count()).where(Meter.relay == "open"))
        alarms = s.scalar(select(func.count()).select_from(Alarm).where(Alarm.active.is_(True)))
        sales = s.scalar(select(func.count()).select_from(Sale).where(Sale.status == "applied"))
    shown = ", ".join(
        f"{states[name]} {name.replace('_', ' ')}"
        for name in ("opened", "alarm1", "alarm2", "arrears", "lost_contact", "not_opened")
        if states.get(name)
    )
    if plain:
        shown += f", {plain} plain"
    return (
        f"meters reporting {seen}/{total} ({shown}); relays open {tripped}; "
        f"active alarms {alarms}; sales applied {sales}"
    )


def _watch(park: Park, broker: PrivateBroker, stop: threading.Event, duration: float | None) -> int:
    """Print the park's status line when it changes, until Ctrl-C, ``duration`` or a child
    exits (1)."""
    deadline = time.monotonic() + duration if duration else None
    last_line, next_status = "", time.monotonic() + STATUS_EVERY_S
    while not stop.is_set():
        if time.monotonic() >= next_status:
            # A line when something changed: the park's alarms and trips as they happen.
            line = park_status(park.db)
            if line != last_line:
                print(time.strftime("%H:%M:%S ") + line, flush=True)
                last_line = line
            next_status = time.monotonic() + STATUS_EVERY_S
        if deadline is not None and time.monotonic() >= deadline:
            break
        dead = park.check_alive()
        if not broker.alive():
            dead.append("mosquitto exited: see " + str(broker.dir.log_file))
        if dead:
            print("gridvend demo: a process stopped:\n" + "\n".join(dead), file=sys.stderr)
            return 1
        stop.wait(1.0)
    return 0


def run(args: argparse.Namespace) -> int:
    folder = Path(args.data_dir).resolve()
    for port, option in ((args.port, "--port"), (args.mqtt_port, "--mqtt-port")):
        if not _port_free(port):
            print(
                f"gridvend demo: port {port} is in use; pick another with {option}",
                file=sys.stderr,
            )
            return 2
    fresh_folder(folder)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    plan = case_study_plan(args.speed)
    password = "demo-" + secrets.token_hex(4)
    token = args.api_token or "gv-demo-" + secrets.token_urlsafe(24)
    park: Park | None = None
    broker: PrivateBroker | None = None
    status = 0
    try:
        print(f"gridvend demo: preparing {folder} ...", flush=True)
        broker = PrivateBroker.create(folder / "broker", args.mqtt_port)
        viewer = broker.dir.add_integrator(plan.site, "demo-viewer")
        park = Park(plan, folder, f"sqlite:///{folder / 'cloud.db'}", broker.url, broker.dir)
        park.seed_inventory()
        park.start_simulators()
        park.provision()  # every collector's password and ACL lines go into the broker folder
        broker.start()
        seed_people(park, password, token)
        park.start_bridge("--instance", str(folder))
        # A tenant's one-time code goes out as a text, as on a site: into sms.jsonl.
        api = park.start_api(args.port, "--login-codes", "sms")
        park.start_payments()
        park.start_notifier(notify_config(folder))
        park.start_agents()
        pids = {c.name: c.proc.pid for c in park.children.items}
        if broker.proc is not None:
            pids["mosquitto"] = broker.proc.pid
        (folder / "pids.json").write_text(json.dumps(pids, indent=2) + "\n")
        print(banner(api, broker.url, password, token, plan, folder, viewer), flush=True)
        status = _watch(park, broker, stop, args.duration)
    except (RuntimeError, OSError, ValueError, ServiceError) as exc:
        print(f"gridvend demo: {exc}", file=sys.stderr)
        status = 1
    finally:
        print("gridvend demo: stopping ...", flush=True)
        if park is not None:
            park.stop()
        if broker is not None:
            broker.stop()
        print("gridvend demo: stopped", flush=True)
    return status


def main(argv: list[str], prog: str = "gridvend demo") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="var/demo", help="all state (emptied at start)")
    parser.add_argument("--port", type=int, default=8000, help="the API's port")
    parser.add_argument(
        "--mqtt-port", type=int, default=1884, help="the demo's Mosquitto port (127.0.0.1)"
    )
    parser.add_argument("--speed", type=float, default=60.0, help="simulated s per real s")
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--api-token", default=None, help="use this API token (20+ chars)")
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be more than 0")
    if args.api_token is not None and len(args.api_token) < 20:
        parser.error("--api-token needs at least 20 characters")
    return run(args)
