"""The report centre's fixture park, built through the real paths: 2 buildings, 6 meters on 2
collectors, a time-of-use tariff whose second version takes effect on 2026-01-25, half-hourly
readings from 2026-01-16 00:00 to 2026-02-15 00:00 (Asia/Shanghai; the month boundary inside),
sales, a refund, a reversal and a pending sale by two cashiers and a supervisor.

Each collector is the real edge bookkeeping (``edge.processor.Processor``: the engine rates
every reading with the tariff the cloud sent it, on a real SQLite store); its outbox goes to
the cloud's real ingest (``cloud.uplink.ingest``) a day at a time, and the cloud's commands come
back through ``cloud.control.dispatch``. So every charge in the reports is one the edge
computed and reported. ``PROFILE`` is the consumption, which ``expected.py`` prices by hand.

After the readings: the days are rolled up, readings before 2026-01-31 are archived to a file
(so January's reports read rollups; the month can be read back), meter ``w2`` lost contact on
its bus at 2026-02-14 18:00, collector ``gw-w`` stopped its heartbeat at 12:00 that day.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cloud.access import auth, operators
from cloud.audit import Actor
from cloud.control import dispatch
from cloud.db import Database
from cloud.models import Gateway, Operator, Sale
from cloud.money import accounts, refunds, reversals, sales
from cloud.monitoring import alarms
from cloud.park import inventory
from cloud.reporting import archive
from cloud.uplink import ingest
from edge.book import MeterBook, MeterInfo
from edge.cache.store import Store
from edge.core import engine
from edge.processor import Processor
from edge.tzrules import zone_rules
from shared.codec import messages

SITE = "fixture"
TZ = ZoneInfo("Asia/Shanghai")
ACTOR = Actor("test")


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=TZ).timestamp())


START = local(2026, 1, 16)  # the first reading (no energy before it)
END = local(2026, 2, 15)  # the last reading
V2_FROM = local(2026, 1, 25)
NOW = local(2026, 2, 15, 0, 10)  # "now" for the reports
ARCHIVE_BEFORE = dt.date(2026, 1, 31)
LOST_AT = local(2026, 2, 14, 18)
HEARTBEAT_STOPPED = local(2026, 2, 14, 12)
SCHEDULE = [["00:00", "deep_valley"], ["06:00", "valley"], ["08:00", "peak"], ["10:00", "sharp"],
            ["12:00", "flat"], ["18:00", "peak"], ["21:00", "flat"], ["23:00", "valley"]]  # fmt: skip
V1 = {"sharp": 1_500_000, "peak": 1_200_000, "flat": 800_000, "valley": 400_000,
      "deep_valley": 200_000}  # fmt: skip
V2 = {"sharp": 1_650_000, "peak": 1_320_000, "flat": 880_000, "valley": 440_000,
      "deep_valley": 220_000}  # fmt: skip
W2_PRICE = 800_000
# meter -> (collector, unit, kind): the consumption of an interval starting at local hour h is
# base + (h % 4) * step Wh (PROFILE).
METERS = {
    "e1": ("gw-e", "E-101", "tou"),
    "e2": ("gw-e", "E-102", "tou"),
    "e3": ("gw-e", "E-201", "tou"),
    "w1": ("gw-w", "W-101", "tou"),
    "w2": ("gw-w", "W-102", "flat"),
    "w3": ("gw-w", "W-102", "plain"),
}
PROFILE = {"e1": (400, 25), "e2": (300, 10), "e3": (250, 40), "w1": (600, 0), "w2": (350, 5),
           "w3": (1000, 50)}  # fmt: skip
FIRST_COUNTER = {m: 1_000_000 * (i + 1) for i, m in enumerate(METERS)}
OPENED = local(2026, 1, 15, 20)
OPENING_SALE = 2_000_000_000  # 2,000 yuan each, cash, by cashier1, when the account opens


@dataclass(frozen=True)
class Money:
    """One money event of the fixture (the hand computation reads the same list)."""

    at: int
    kind: str  # sale | refund | reversal
    meter: str
    amount: int
    method: str
    operator: str
    applied: bool = True
    reverses: int | None = None  # index of the sale in MONEY


MONEY: list[Money] = [
    *(
        Money(OPENED + i, "sale", m, OPENING_SALE, "cash", "cashier1")
        for i, m in enumerate(("e1", "e2", "e3", "w1", "w2"))
    ),
    Money(local(2026, 1, 20, 10), "sale", "e1", 100_000_000, "cash", "cashier1"),
    Money(local(2026, 1, 31, 23, 50), "sale", "e2", 200_000_000, "wechat", "cashier2"),
    Money(local(2026, 2, 1, 0, 10), "sale", "e3", 50_500_000, "cash", "cashier1"),
    Money(local(2026, 2, 3, 9, 0), "sale", "w1", 300_000_000, "wechat", "cashier2"),
    Money(
        local(2026, 2, 3, 9, 20), "reversal", "w1", 300_000_000, "wechat", "supervisor", reverses=8
    ),
    Money(local(2026, 2, 5, 15, 0), "refund", "e1", 80_000_000, "cash", "cashier1"),
    Money(local(2026, 2, 14, 23, 40), "sale", "w1", 20_000_000, "cash", "cashier2", applied=False),
]


def consumption(meter: str, interval_start: int) -> int:
    base, step = PROFILE[meter]
    hour = dt.datetime.fromtimestamp(interval_start, TZ).hour
    return base + (hour % 4) * step


def reading_times(meter: str) -> list[int]:
    last = LOST_AT if meter == "w2" else END
    return list(range(START, last + 1, 1800))


def reads_at(meter: str, t: int) -> bool:
    last = LOST_AT if meter == "w2" else END
    return START <= t <= last and (t - START) % 1800 == 0


@dataclass
class Collector:
    """A collector's real bookkeeping over a real store (see the module docstring)."""

    gateway_id: str
    meters: list[str]
    processor: Processor = field(init=False)
    seen: int = 0
    seq: int = 0
    folder: Any = None

    def __post_init__(self) -> None:
        fast = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.folder = tempfile.TemporaryDirectory(prefix="report-edge-", dir=fast)
        store = Store(Path(self.folder.name) / "edge.sqlite", seq_block=1000)
        ctx = engine.Context(
            tariffs={}, zone_rules=zone_rules("Asia/Shanghai", START - 86400 * 40, END + 86400),
            defaults={},
        )  # fmt: skip
        infos = [MeterInfo(m, "bus1", i + 1, "acrel-dtsy1352") for i, m in enumerate(self.meters)]
        book = MeterBook(store, ctx, infos, {}, report_s=30, now=START - 86400)
        self.processor = Processor(book)

    def outbox(self) -> list[dict[str, Any]]:
        rows = self.processor.store.conn.execute(
            "SELECT id, body FROM outbox WHERE id > ? ORDER BY id", (self.seen,)
        ).fetchall()
        if rows:
            self.seen = rows[-1][0]
        return [json.loads(messages.numbered(body, row_id)) for row_id, body in rows]

    def deliver(self, db: Database, now: int) -> None:
        found = self.outbox()
        if found:
            self.seq += 1
            with db.session() as s:
                ingest.apply_uplink(s, self.gateway_id, self.seq, found, now=now)

    def close(self) -> None:
        self.processor.store.close()
        self.folder.cleanup()


def sync(db: Database, collectors: dict[str, Collector], now: int) -> None:
    """Commands out, answers back, until nothing is left to send."""
    for _ in range(10):
        moved = 0
        for gw, c in collectors.items():
            with db.session() as s:
                msgs = dispatch.next_to_send(s, gw, now=now)
                dispatch.mark_sent(s, [m["id"] for m in msgs], now=now)
            if msgs:
                moved += len(msgs)
                c.processor.commands(msgs, now)
                c.deliver(db, now + 1)
        if not moved:
            return


def _seed(db: Database) -> None:
    with db.session() as s:
        inventory.upsert_site(s, SITE, "测试园区", "Asia/Shanghai")
        for building, floor, unit in (("East", "1F", "E-101"), ("East", "1F", "E-102"),
                                      ("East", "2F", "E-201"), ("West", "1F", "W-101"),
                                      ("West", "1F", "W-102")):  # fmt: skip
            inventory.upsert_unit(s, SITE, building, floor, unit)
        for gw in ("gw-e", "gw-w"):
            inventory.upsert_gateway(s, gw, SITE, "22" * 32)
        day = [list(seg) for seg in SCHEDULE]
        inventory.add_tariff_version(
            s, "tou", {"version": 1, "effective_from": START - 86400 * 30, "bands": V1, "day": day},
            ACTOR, name="分时电价",
        )  # fmt: skip
        inventory.add_tariff_version(
            s, "tou", {"version": 2, "effective_from": V2_FROM, "bands": V2, "day": day}, ACTOR
        )
        for i, (meter, (gw, unit, kind)) in enumerate(METERS.items()):
            extra: dict[str, Any] = {"tariff_id": "tou"} if kind == "tou" else {}
            if kind == "flat":
                extra["price_override_micro_yuan_per_kwh"] = W2_PRICE
            if kind == "plain":
                extra["prepaid"] = False
            inventory.upsert_meter(
                s, meter, gw, "bus1", str(i + 1), "acrel-dtsy1352", unit_no=unit, **extra
            )
        auth.ensure_roles(s)
        for name, role in (("cashier1", "cashier"), ("cashier2", "cashier"),
                           ("supervisor", "supervisor"), ("admin", "admin")):  # fmt: skip
            auth.create_operator(s, name, f"{name}-secret-1", role, ACTOR)


def _actor(db: Database, username: str) -> Actor:
    with db.session(readonly=True) as s:
        op = s.scalars(select(Operator).where(Operator.username == username)).one()
        return operators.actor_of(op)


def _money(db: Database, collectors: dict[str, Collector], event: Money) -> None:
    actor = _actor(db, event.operator)
    with db.session() as s:
        if event.kind == "sale":
            sales.sell(s, event.meter, event.amount, event.method, actor, now=event.at,
                       idempotency_key=f"fixture-{event.at}-{event.meter}")  # fmt: skip
        elif event.kind == "refund":
            refunds.refund(s, event.meter, event.amount, actor, method=event.method, now=event.at)
        else:
            original = MONEY[event.reverses or 0]
            sale = s.scalars(
                select(Sale).where(Sale.meter_id == original.meter, Sale.created_ts == original.at)
            ).one()
            reversals.reverse(s, sale.id, actor, note="wrong meter", now=event.at)
    if event.applied:
        sync(db, collectors, event.at + 2)


def build(db: Database, archive_dir: Path) -> None:
    """The whole fixture (see the module docstring), on a migrated empty database."""
    _seed(db)
    collectors = {
        "gw-e": Collector("gw-e", ["e1", "e2", "e3"]),
        "gw-w": Collector("gw-w", ["w1", "w2", "w3"]),
    }
    try:
        _run(db, collectors)
    finally:
        for c in collectors.values():
            c.close()
    with db.session() as s:
        for gw, beat in (("gw-e", NOW - 60), ("gw-w", HEARTBEAT_STOPPED)):
            found = s.get(Gateway, gw)
            assert found is not None
            found.last_heartbeat_ts = beat
            found.online = True
        alarms.evaluate_lost_contact(s, now=NOW)
    with db.session() as s:
        day = dt.date(2026, 1, 16)
        while day <= dt.date(2026, 2, 12):  # Feb 13, 14 and 15 stay for the live path
            archive.rollup_day(s, SITE, day, NOW)
            day += dt.timedelta(days=1)
    with db.session() as s:
        keep = (dt.date(2026, 2, 15) - ARCHIVE_BEFORE).days
        runs = archive.archive_readings(s, archive_dir, now=NOW, keep_days=keep)
        assert runs, "January's readings should have been archived"


def _run(db: Database, collectors: dict[str, Collector]) -> None:
    with db.session() as s:
        for i, m in enumerate(("e1", "e2", "e3", "w1", "w2")):
            accounts.open_account(
                s, {"name": f"租户{m}", "phone": f"1380000000{i}"}, [m], ACTOR,
                number=f"AC-{m}", now=OPENED + i,
            )  # fmt: skip
    sync(db, collectors, OPENED + 10)
    pending = sorted(MONEY, key=lambda e: e.at)
    counters = dict(FIRST_COUNTER)
    for t in sorted({t for m in METERS for t in reading_times(m)}):
        while pending and pending[0].at < t:
            for c in collectors.values():
                c.deliver(db, pending[0].at - 1)
            _money(db, collectors, pending.pop(0))
        for gw, c in collectors.items():
            _read(db, gw, c, t, counters)
        if t % 86400 == START % 86400 or t == END:  # a day's envelopes at local midnight
            for c in collectors.values():
                c.deliver(db, t + 5)
    while pending:
        _money(db, collectors, pending.pop(0))
    for c in collectors.values():
        c.deliver(db, END + 10)


def _read(db: Database, gw: str, c: Collector, t: int, counters: dict[str, int]) -> None:
    """One poll of a collector's meters at ``t`` (w2's bus loses it at ``LOST_AT``)."""
    batch = []
    for m in c.meters:
        if not reads_at(m, t):
            continue
        if t > START:
            counters[m] += consumption(m, t - 1800)
        reading = {"ts": t, "energy_wh": counters[m], "power_w": 1000, "relay": None,
                   "band_energy_wh": None}  # fmt: skip
        batch.append((m, reading))
    if batch:
        c.processor.readings(batch, t)
    if t == LOST_AT and gw == "gw-w":
        c.processor.contact("w2", False, t + 60)
        c.deliver(db, t + 65)
