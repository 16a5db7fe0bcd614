"""The Context: what every meter of a site shares (tariffs, zone rules, site defaults).

Built once by the agent (and again when a tariff arrives: ``add_tariff_version``). Everything is
validated here; the compiled tariffs and the rating caches live here, never in a meter's state,
so a state stays plain JSON.
"""

from edge.core.compat import Any
from edge.core.errors import SettingsError
from edge.core.rating import Timeline
from edge.core.settings import DEFAULTS, check_consistent, validate
from edge.core.tariff import compile_tariff, compile_version, flat_version
from edge.core.tz import ZoneRules
from edge.core.windows import compile_windows, parse_holidays


class Context:
    """What every meter of a site shares: tariffs, the zone's offset rules, site defaults.

    ``tariffs``: ``{tariff_id: [version, ...]}`` (tariff.py); ``zone_rules``:
    ``[[utc_from, offset_s], ...]`` (edge.tzrules builds them); ``defaults``: site settings over
    the engine's defaults (settings.py). Everything is validated here; compiled forms and the
    rating caches live here, never in a meter's state.
    """

    def __init__(
        self,
        tariffs: dict[str, list[dict[str, Any]]] | None = None,
        zone_rules: list[list[int]] | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        if zone_rules is None:
            raise SettingsError(
                "Context needs zone_rules, the site's UTC-offset rules [[utc_from, offset_s], "
                "...]; build them with edge.tzrules.zone_rules(zone_name, start, end)"
            )
        self.zone = ZoneRules(zone_rules)
        self.zone_rules = self.zone.to_list()
        validate(defaults if defaults is not None else {}, "site defaults")
        merged = dict(DEFAULTS)
        for name in defaults or {}:
            merged[name] = defaults[name]  # type: ignore[index]
        check_consistent(merged, "site defaults")
        self.defaults = merged
        if tariffs is None:
            tariffs = {}
        if not isinstance(tariffs, dict):
            raise SettingsError("tariffs: expected {tariff_id: [version, ...]}")
        self.tariffs: dict[str, list[dict[str, Any]]] = {}
        self._timelines: dict[Any, Timeline] = {}
        for tariff_id in tariffs:
            versions = compile_tariff(tariff_id, tariffs[tariff_id])
            self.tariffs[tariff_id] = [v.raw for v in versions]  # type: ignore[misc]
            self._timelines[tariff_id] = Timeline(versions, self.zone)
        self._windows: dict[Any, Any] = {}

    def add_tariff_version(self, tariff_id: str, version: dict[str, Any]) -> None:
        """Add (or replace, by version number) one version of a tariff, validated first."""
        compile_version(tariff_id, version)
        kept = [v for v in self.tariffs.get(tariff_id, []) if v["version"] != version["version"]]
        kept.append(version)
        versions = compile_tariff(tariff_id, kept)
        self.tariffs[tariff_id] = [v.raw for v in versions]  # type: ignore[misc]
        self._timelines[tariff_id] = Timeline(versions, self.zone)

    def get(self, state: dict[str, Any], name: str) -> Any:
        """A meter's effective setting: its own value, else the site default."""
        own = state["settings"]
        if name in own:
            return own[name]
        return self.defaults[name]

    def settings(self, state: dict[str, Any]) -> dict[str, Any]:
        """All of a meter's effective settings."""
        out = dict(self.defaults)
        own = state["settings"]
        for name in own:
            out[name] = own[name]
        return out

    def timeline(self, state: dict[str, Any]) -> Timeline | None:
        """The rating timeline for a meter: its price override, else its tariff, else None."""
        price = self.get(state, "price_override_micro_yuan_per_kwh")
        if price is not None:
            tl = self._timelines.get(("override", price))
            if tl is None:
                tl = Timeline([flat_version(price)], self.zone)
                self._timelines[("override", price)] = tl
            return tl
        return self._timelines.get(self.get(state, "tariff_id"))

    def friendly(self, state: dict[str, Any]) -> tuple[Any, Any]:
        """The meter's compiled friendly windows and holidays (cached by their JSON text)."""
        raw_windows = self.get(state, "friendly_windows")
        raw_holidays = self.get(state, "holidays")
        key = (repr(raw_windows), repr(raw_holidays))
        hit = self._windows.get(key)
        if hit is None:
            if len(self._windows) > 256:
                self._windows = {}
            hit = (
                compile_windows(raw_windows, "friendly_windows"),
                parse_holidays(raw_holidays, "holidays"),
            )
            self._windows[key] = hit
        return hit
