"""The small `gridvend provision` commands: the broker folder and its principals, one collector
at a time (``gateway``), key rotation. ``site`` and ``selftest`` have their own modules."""

from __future__ import annotations

import argparse
import json
import sys

from edge.config import ConfigError
from provisioning.broker import BrokerDir, BrokerSetupError
from provisioning.gateway import (
    ProvisionError,
    parse_bus,
    parse_meters_csv,
    provision_gateway,
    rotate_key,
)
from shared import topics


def _reloaded(bd: BrokerDir) -> str:
    if bd.reload():
        return "the running broker reread the password file and the ACL"
    return f"no running broker found ({bd.pid_file}); it reads the files when it starts"


def broker(args: argparse.Namespace) -> int:
    bd = BrokerDir.create(
        args.dir,
        port=args.port,
        host=args.host,
        tls_port=args.tls_port,
        tls_host=args.tls_host,
        names=args.name,
        public_host=args.public_host,
        flavour="system" if args.system else "standalone",
    )
    print(f"broker folder: {bd.folder}")
    print(f"config:        {bd.conf_file}")
    print(f"bridge:        {bd.bridge_env_file} (user {bd.bridge_user}; keep it 0600)")
    if bd.ca_file is not None:
        print(f"CA:            {bd.ca_file} (collectors get a copy in their bundle)")
    print(f"collectors connect to {bd.client_url()}")
    if bd.flavour == "system":
        print(f"next: ln -s {bd.conf_file} /etc/mosquitto/conf.d/gridvend.conf && "
              "systemctl restart mosquitto")  # fmt: skip
    else:
        print(f"next: mosquitto -c {bd.conf_file}")
    return 0


def integrator(args: argparse.Namespace) -> int:
    bd = BrokerDir.open(args.broker_dir)
    password = bd.add_integrator(args.site, args.name)
    bd.save()
    print(json.dumps({
        "username": args.name,
        "password": password,
        "url": bd.client_url(),
        "topics": topics.all_north(args.site),
        "ca_file": str(bd.ca_file) if bd.ca_file else None,
    }, indent=2))  # fmt: skip
    print(_reloaded(bd), file=sys.stderr)  # stdout is the JSON alone, for a script to keep
    return 0


def revoke(args: argparse.Namespace) -> int:
    bd = BrokerDir.open(args.broker_dir)
    role = bd.remove(args.name)
    bd.save()
    print(f"{role} {args.name} removed from the password file and the ACL; {_reloaded(bd)}")
    print("a client already connected stays connected until it reconnects: restart the broker "
          "to cut it off at once")  # fmt: skip
    return 0


def reload(args: argparse.Namespace) -> int:
    bd = BrokerDir.open(args.broker_dir)
    print(_reloaded(bd))
    return 0 if bd.reload() else 1


def gateway(args: argparse.Namespace) -> int:
    bd = BrokerDir.open(args.broker_dir) if args.broker_dir else None
    buses = [parse_bus(spec) for spec in args.bus]
    meters = []
    if args.meters is not None:
        try:
            text = args.meters.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ProvisionError(f"cannot read {args.meters}: {exc.strerror}") from None
        meters = parse_meters_csv(text, [b["name"] for b in buses])
    url = args.broker or (bd.client_url() if bd else "mqtt://127.0.0.1:1883")
    ca = bd.ca_file if bd is not None and url.startswith("mqtts://") else None
    paths = provision_gateway(
        args.site, args.gateway, args.out, buses=buses, meters=meters, broker=url,
        timezone=args.timezone, key_id=args.key_id, force=args.force, ca_file=ca,
    )  # fmt: skip
    for what, path in paths.items():
        print(f"{what}: {path}")
    print(f"meters: {len(meters)}")
    if bd is not None:
        record = json.loads(paths["record"].read_text(encoding="utf-8"))
        bd.add_collector(args.site, args.gateway, record["mqtt_password"])
        bd.save()
        print(f"broker: {args.gateway} added to {bd.folder}; {_reloaded(bd)}")
    else:
        print("broker: add it to the broker with --broker-dir (its password is in edge.toml)")
    print(f"next: import {paths['record'].name} in the cloud; copy edge.toml and the key "
          "to the collector")  # fmt: skip
    return 0


def rotate(args: argparse.Namespace) -> int:
    print(json.dumps(rotate_key(args.key_file)))
    return 0


def run(args: argparse.Namespace) -> int:
    handlers = {
        "broker": broker,
        "integrator": integrator,
        "revoke": revoke,
        "reload": reload,
        "gateway": gateway,
        "rotate-key": rotate,
    }
    try:
        return handlers[args.command](args)
    except (ProvisionError, ConfigError, BrokerSetupError) as exc:
        raise ValueError(str(exc)) from None
