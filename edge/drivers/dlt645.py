"""DL/T 645-2007 meters (model ``dlt645``): block reads, 1CH relay control, 08H clock.

A poll reads the DIs in :data:`POLL` (one request each, in order). The energy block is required;
a meter that answers "no data" for another item leaves that part of the reading ``None``.
Relay operations map to 1CH N1 codes (:data:`RELAY_OPS`); ``close`` is a direct close (1CH) or
"close allowed" (1BH, the tenant presses the button) by the ``close_mode`` option. A meter that
refuses 1CH for lack of authorisation (ERR bit 2, ESAM meters) raises Dlt645UnauthorizedError with a
message that says so. Meter clocks run in local time (``utc_offset_s``, default UTC+8).

Options: ``password`` (8 hex digits, PA then P0..P2, default ``02000000``), ``operator``
(8 hex digits, default ``00000000``), ``close_mode`` (``direct`` or ``allowed``),
``command_expiry_s`` (how long a relay command stays valid in the meter, default 600),
``utc_offset_s``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from edge.drivers.base import BANDS, Driver, empty_reading, epoch_to_local, local_to_epoch
from edge.errors import ConfigError
from shared.codec import dlt645 as codec
from shared.codec.errors import Dlt645ErrorReply, Dlt645UnauthorizedError, FrameError

POLL = (
    codec.DI_ENERGY_BLOCK,
    codec.DI_POWER,
    codec.DI_STATUS3,
    codec.DI_VOLTAGES,
    codec.DI_CURRENTS,
    codec.DI_FREQUENCY,
    codec.DI_DATETIME,
)
REQUIRED = (codec.DI_ENERGY_BLOCK,)
RELAY_OPS = {
    "trip": codec.RELAY_TRIP,
    "keep_power": codec.RELAY_KEEP_POWER,
    "release": codec.RELAY_KEEP_POWER_CLEAR,
}


def _hex4(name: str, value: Any) -> bytes:
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raw = b""
    if len(raw) != 4:
        raise ConfigError(f"option {name} must be 8 hex digits (got {value!r})")
    return raw


def _fields(di: int, data: bytes) -> list[int]:
    """Decode a block that may carry fewer fields than the table (a single-phase meter answers
    the voltage block with phase A only)."""
    spec = codec.item(di)
    if spec.kind != "bcd" or not data or len(data) % spec.size:
        return codec.decode_item(di, data)
    return [
        codec.bcd_decode(data[i : i + spec.size], spec.signed)
        for i in range(0, len(data), spec.size)
    ]


class Dlt645(Driver):
    """dlt645: DL/T 645-2007 meters."""

    model = "dlt645"
    protocol = "dlt645"
    default_baud = 2400
    default_parity = "E"
    ops = ("trip", "close", "keep_power", "release")
    option_defaults: ClassVar[dict[str, Any]] = {
        "password": "02000000",
        "operator": "00000000",
        "close_mode": "direct",
        "command_expiry_s": 600,
        "utc_offset_s": 8 * 3600,
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.password = _hex4("password", self.options["password"])
        self.operator = _hex4("operator", self.options["operator"])
        if self.options["close_mode"] not in ("direct", "allowed"):
            raise ConfigError(
                f"option close_mode must be 'direct' or 'allowed' "
                f"(got {self.options['close_mode']!r})"
            )

    def parse_address(self, address: Any) -> str:
        """12 BCD digits; shorter digit strings and ints are zero-padded (5 → 000000000005)."""
        if isinstance(address, str) and address.strip().isdigit() and len(address.strip()) < 12:
            address = int(address)
        try:
            return codec.normalise_address(address)
        except Exception:
            raise ConfigError(
                f"DL/T 645 address must be 12 decimal digits (got {address!r})"
            ) from None

    def poll_exchanges(self) -> list[tuple[int, int]]:
        out = []
        for di in POLL:
            spec = codec.item(di)
            out.append((20, 4 + 12 + 4 + spec.fields * spec.size))
        return out

    async def read(
        self, client: Any, address: Any, *, now: int, retries: int = 0
    ) -> dict[str, Any]:
        values: dict[int, list[int] | None] = {}
        for di in POLL:
            try:
                values[di] = _fields(di, await client.read(address, di, retries=retries))
            except Dlt645ErrorReply:
                if di in REQUIRED:
                    raise
                values[di] = None
        reading = empty_reading(now)
        energy = values[codec.DI_ENERGY_BLOCK] or []
        if len(energy) != 5:
            raise FrameError(f"meter {address}: energy block has {len(energy)} fields, not 5")
        reading["energy_wh"] = energy[0] * 10  # 0.01 kWh
        reading["band_energy_wh"] = {
            band: e * 10 for band, e in zip(BANDS, energy[1:], strict=True)
        }
        power = values[codec.DI_POWER]
        if power:
            # 0.0001 kW = 0.1 W; round half away from zero to whole watts.
            p = power[0]
            reading["power_w"] = (abs(p) + 5) // 10 * (1 if p >= 0 else -1)
        status = values[codec.DI_STATUS3]
        if status:
            reading["relay"] = "open" if status[0] & codec.STATUS3_RELAY_OPEN else "closed"
        reading["voltages_dv"] = values[codec.DI_VOLTAGES]
        reading["currents_ma"] = values[codec.DI_CURRENTS]
        freq = values[codec.DI_FREQUENCY]
        reading["frequency_chz"] = freq[0] if freq else None
        dt = values[codec.DI_DATETIME]
        if dt:
            year, month, day, _weekday, hour, minute, second = dt
            reading["clock"] = local_to_epoch(
                (year, month, day, hour, minute, second), self.options["utc_offset_s"]
            )
        return reading

    async def command(
        self, client: Any, address: Any, op: str, *, now: int, retries: int = 0
    ) -> None:
        self.check_op(op)
        if op == "close":
            n1 = codec.RELAY_DIRECT_CLOSE
            if self.options["close_mode"] == "allowed":
                n1 = codec.RELAY_CLOSE_ALLOWED
        else:
            n1 = RELAY_OPS[op]
        expiry = epoch_to_local(
            now + int(self.options["command_expiry_s"]), self.options["utc_offset_s"]
        )[:6]
        request = codec.relay_request(address, n1, expiry, self.password, self.operator)
        reply = await client.transact(request, retries=retries)
        try:
            codec.check_reply(request, reply)
        except Dlt645UnauthorizedError as exc:
            raise Dlt645UnauthorizedError(
                exc.function,
                exc.err,
                f"meter {address} refused {op}: not authorised (ERR bit 2). This meter wants an "
                "ESAM-encrypted relay command or another password level; plain 1CH cannot "
                "drive it.",
            ) from None

    async def read_address(self, client: Any, *, retries: int = 0) -> str:
        """13H to the wildcard address: the address of the only meter on the line (with more
        than one meter connected the answers collide and nothing useful comes back)."""
        request = codec.read_address_request()
        reply = await client.transact(request, retries=retries)
        data = codec.check_reply(request, reply)
        if len(data) != 6:
            raise FrameError(f"read-address reply carries {len(data)} bytes, not 6")
        return codec.decode_address(data)

    async def sync_clock(self, client: Any, now: int) -> None:
        """08H broadcast time (no reply)."""
        when = epoch_to_local(now, self.options["utc_offset_s"])[:6]
        await client.send(codec.broadcast_time_request(when))
