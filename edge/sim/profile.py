"""Deterministic studio-like load profiles for simulated meters.

A meter's load is piecewise constant per minute of *simulated* time and a pure function of
(seed, meter index, minute): the same seed gives the same loads whatever the speed or the
polling pattern, so energy (the integral) is reproducible too.

The shape (a film-studio lot, mission.md): every meter has a base load (lighting, HVAC, offices:
1.5–5.5 kW by day, 40 % of it at night) with a little per-minute noise; two meters in three are
studios that book 0–2 shooting sessions a day (start 08:00–20:00 local, 2–6 hours, 20–60 kW on
top of the base).
"""

from __future__ import annotations

MINUTE_MS = 60_000
DAY_MINUTES = 1440
_MASK = (1 << 64) - 1


def mix(*values: int) -> int:
    """A 64-bit hash of integers (splitmix64 over each): cheap, stable across runs and Pythons."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & _MASK)) & _MASK
        h = (h + 0x9E3779B97F4A7C15) & _MASK
        z = h
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        h = z ^ (z >> 31)
    return h


class StudioProfile:
    """Load in W for (meter index, minute since the epoch, local). ``utc_offset_s`` places the
    day/night and sessions in local time."""

    def __init__(self, seed: int = 1, utc_offset_s: int = 8 * 3600) -> None:
        self.seed = seed
        self.utc_offset_s = utc_offset_s
        self._sessions: dict[tuple[int, int], list[tuple[int, int, int]]] = {}

    def base_w(self, index: int) -> int:
        return 1500 + mix(self.seed, index, 1) % 4001

    def is_studio(self, index: int) -> bool:
        return mix(self.seed, index, 2) % 3 != 0

    def sessions(self, index: int, day: int) -> list[tuple[int, int, int]]:
        """(start minute of day, end minute of day, extra W) of the day's shooting sessions."""
        key = (index, day)
        found = self._sessions.get(key)
        if found is None:
            found = []
            if self.is_studio(index):
                for k in range(mix(self.seed, index, day, 3) % 3):
                    h = mix(self.seed, index, day, 4, k)
                    start = 480 + h % 721  # 08:00 .. 20:00
                    length = 120 + (h >> 16) % 241  # 2 .. 6 h
                    extra = 20_000 + (h >> 32) % 40_001  # 20 .. 60 kW
                    found.append((start, min(start + length, DAY_MINUTES), extra))
            if len(self._sessions) > 4096:
                self._sessions.clear()
            self._sessions[key] = found
        return found

    def load_w(self, index: int, minute: int) -> int:
        """The load during ``minute`` (minutes since the epoch, UTC)."""
        local = minute + self.utc_offset_s // 60
        day, of_day = divmod(local, DAY_MINUTES)
        base = self.base_w(index)
        if not 7 * 60 <= of_day < 22 * 60:
            base = base * 2 // 5
        noise = mix(self.seed, index, minute, 5) % 201 - 100  # ±10 %
        load = base + base * noise // 1000
        # One studio, one shoot at a time: overlapping bookings do not add up.
        shooting = [
            extra for start, end, extra in self.sessions(index, day) if start <= of_day < end
        ]
        return load + max(shooting, default=0)


# Time-of-use bands by local hour (0..23): valley at night, sharp in the evening peak.
HOUR_BAND = (
    "valley", "valley", "valley", "valley", "valley", "valley", "valley",  # 00-06
    "flat", "flat", "flat",  # 07-09
    "peak", "sharp", "peak", "peak", "peak",  # 10-14
    "flat", "flat", "flat",  # 15-17
    "peak", "sharp", "sharp",  # 18-20
    "flat", "flat",  # 21-22
    "valley",  # 23
)  # fmt: skip
BANDS = ("sharp", "peak", "flat", "valley")
_HOUR_BAND_INDEX = tuple(BANDS.index(band) for band in HOUR_BAND)


def band_of(minute: int, utc_offset_s: int) -> int:
    """Index into BANDS of the band in force during ``minute`` (minutes since the epoch)."""
    local = minute + utc_offset_s // 60
    return _HOUR_BAND_INDEX[(local % DAY_MINUTES) // 60]
