"""Scenario files: a TOML description of one simulated network and what happens to it.

This module owns the scenario format: reading it (``tomllib``), validating every key, and
turning it into frozen values the runner applies (`Scenario`, `HostSpec`, `NatSpec`,
`TimelineEntry`). It never touches trio or a network.

Rules it keeps:

* Every problem is ONE `ScenarioError` line naming the file, the key path and the problem,
  e.g. ``lossy.toml: hosts.client.up.loss: bad ratio '2 percent': ...``. Nothing else escapes.
* Every virtual address lies in 127.0.0.0/8 (project convention: the repository never names an
  address outside loopback), and no two hosts or NAT public sides share one at start.
* The scenario keeps its raw data (`Scenario.data`, JSON-friendly) so a trace header can carry it
  and `scenario_from_data` rebuilds the identical scenario for replay.

Theory of operation: link profiles are handled as *mappings* (the TOML form) until the last
moment, so a host link or a timeline ``set-link`` can start from a named profile or from the
current one and override single keys. The timeline is walked once at load time, in time order,
with the link state it implies; each entry is stored with the complete profiles it installs, so
every error surfaces at load time and the runner only calls the matching `Network` method.
"""

from __future__ import annotations

import enum
import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netsim.mahimahi import bundled_traces
from netsim.models import LinkProfile
from netsim.nat import NatConfig
from netsim.units import parse_duration

SCENARIO_DIR = Path(__file__).parent / "scenarios"
TOP_KEYS = (
    "description",
    "duration",
    "seed",
    "app",
    "profiles",
    "nats",
    "hosts",
    "timeline",
    "workload",
)
DEFAULT_DURATION_S = 60.0
DEFAULT_SEED = 0


class ScenarioError(ValueError):
    """A scenario file (or a trace header's scenario) is unusable; `str()` is one line."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")


class TimelineAction(enum.StrEnum):
    """What a timeline entry does (the ``action`` key)."""

    SET_LINK = "set-link"  # change a host's link profile (single keys or a named profile)
    OUTAGE = "outage"  # the host's link is down from ``at`` until ``until`` / for ``duration``
    REBIND = "rebind"  # a NAT moves every mapping to new external ports (and optional address)
    MOVE = "move"  # a host changes network: new address and NAT (none when omitted)
    PARTITION = "partition"  # only hosts in the same group can reach each other
    HEAL = "heal"  # undo the partition


@dataclass(frozen=True, slots=True)
class NatSpec:
    """One ``[nats.NAME]`` table."""

    name: str
    public_ip: str
    config: NatConfig


@dataclass(frozen=True, slots=True)
class HostSpec:
    """One ``[hosts.NAME]`` table with its resolved link profiles."""

    name: str
    address: str
    nat: str | None
    up: LinkProfile
    down: LinkProfile


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One ``[[timeline]]`` entry, resolved: profiles here are complete, ready to install."""

    at_s: float
    action: TimelineAction
    key: str  # "timeline[3]": position in the file, for messages
    host: str | None = None
    up: LinkProfile | None = None
    down: LinkProfile | None = None
    nat: str | None = None
    address: str | None = None
    public_ip: str | None = None
    groups: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario. Build with `load_scenario` or `scenario_from_data`."""

    name: str
    source: str
    description: str
    duration_s: float
    seed: int
    app: str | None
    hosts: tuple[HostSpec, ...]
    nats: tuple[NatSpec, ...]
    timeline: tuple[TimelineEntry, ...]
    workload: Mapping[str, object]
    profiles: Mapping[str, LinkProfile]
    data: Mapping[str, Any] = field(repr=False)

    def host(self, name: str) -> HostSpec:
        """The host called ``name``. Raises KeyError if there is none."""
        for spec in self.hosts:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def with_overrides(
        self, *, duration_s: float | None = None, seed: int | None = None
    ) -> Scenario:
        """This scenario with another duration and/or seed (as ``--duration``/``--seed`` give)."""
        data = dict(self.data)
        if duration_s is not None:
            data["duration"] = duration_s
        if seed is not None:
            data["seed"] = seed
        return scenario_from_data(data, self.source, name=self.name)

    def to_data(self) -> dict[str, Any]:
        """The scenario as plain JSON-friendly data (what a trace header stores)."""
        return {"name": self.name, **self.data}


def bundled_scenarios() -> list[str]:
    """Names of the scenarios shipped in netsim/scenarios/ (``netsim run NAME``)."""
    return sorted(path.stem for path in SCENARIO_DIR.glob("*.toml"))


def resolve_scenario_path(name_or_path: str | Path) -> Path:
    """A scenario file path from a path or a bundled scenario name.

    Raises:
        ScenarioError: neither a readable file nor a bundled scenario name.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = SCENARIO_DIR / f"{name_or_path}.toml"
    if bundled.is_file():
        return bundled
    names = ", ".join(bundled_scenarios())
    raise ScenarioError(
        str(name_or_path),
        "",
        f"no such file and no bundled scenario of that name (bundled: {names})",
    )


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Read and validate a scenario file (a path or a bundled name such as ``lossy-ping``).

    Raises:
        ScenarioError: the file is missing, unreadable, not TOML, or invalid.
    """
    path = resolve_scenario_path(name_or_path)
    source = path.name if path.parent == SCENARIO_DIR else str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(source, "", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ScenarioError(source, "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, "", f"invalid TOML: {exc}") from None
    _absolutize_trace_paths(data, path.parent)
    return scenario_from_data(data, source, name=path.stem, strict_end=True)


def scenario_from_data(
    data: Mapping[str, Any], source: str, *, name: str | None = None, strict_end: bool = False
) -> Scenario:
    """Validate scenario data (a parsed TOML document or a trace header's copy).

    Args:
        data: the document; a ``name`` key (as `Scenario.to_data` writes) is accepted.
        source: what to call the document in messages (usually the file name).
        name: the scenario's name; defaults to ``data["name"]`` or ``source``.
        strict_end: reject timeline entries after the duration (done for files, not for
            overrides that shorten a run).

    Raises:
        ScenarioError: the first problem found.
    """
    data = dict(data)
    name = str(data.pop("name", None) or name or source)
    _check_json_friendly(source, "", data)
    for key in data:
        if key not in TOP_KEYS:
            raise ScenarioError(source, key, f"unknown key (expected one of {', '.join(TOP_KEYS)})")
    duration_s = _duration(source, "duration", data.get("duration", DEFAULT_DURATION_S))
    if duration_s <= 0:
        raise ScenarioError(source, "duration", "must be more than 0s")
    seed = data.get("seed", DEFAULT_SEED)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ScenarioError(source, "seed", f"expected a non-negative integer, got {seed!r}")
    builder = _Builder(source)
    profiles = builder.profiles(_table(source, "profiles", data.get("profiles", {})))
    nats = builder.nats(_table(source, "nats", data.get("nats", {})))
    hosts = builder.hosts(_table(source, "hosts", data.get("hosts", {})))
    raw_timeline = data.get("timeline", [])
    if not isinstance(raw_timeline, list):
        raise ScenarioError(source, "timeline", "expected an array of tables ([[timeline]])")
    timeline = builder.timeline(raw_timeline, duration_s if strict_end else None)
    return Scenario(
        name=name,
        source=source,
        description=_text(source, "description", data.get("description", "")),
        duration_s=duration_s,
        seed=seed,
        app=_app_spec(source, data.get("app")),
        hosts=hosts,
        nats=nats,
        timeline=timeline,
        workload=_table(source, "workload", data.get("workload", {})),
        profiles={key: LinkProfile.from_mapping(value) for key, value in profiles.items()},
        data=data,
    )


class _Builder:
    """Validates the sections that refer to each other, keeping the state they imply."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.profile_maps: dict[str, dict[str, Any]] = {}
        self.nat_names: set[str] = set()
        self.links: dict[tuple[str, str], dict[str, Any]] = {}  # (host, "up"|"down") -> mapping
        self.addresses: dict[str, str] = {}  # address -> owner, at the current timeline point
        self.host_nat: dict[str, str | None] = {}  # host -> its NAT, at the current point

    def fail(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(self.source, key, problem)

    def profiles(self, table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        for name, value in table.items():
            mapping = dict(_table(self.source, f"profiles.{name}", value))
            self.profile(mapping, f"profiles.{name}")
            self.profile_maps[name] = mapping
        return self.profile_maps

    def profile(self, mapping: Mapping[str, Any], key: str) -> LinkProfile:
        """A LinkProfile from a mapping; the error names the offending key when it can."""
        try:
            return LinkProfile.from_mapping(mapping)
        except ValueError as exc:
            for sub_key, value in mapping.items():
                try:
                    LinkProfile.from_mapping({sub_key: value})
                except ValueError as sub_exc:
                    problem = _unprefixed(str(sub_exc), f"bad link profile {sub_key!r}: ")
                    raise self.fail(f"{key}.{sub_key}", problem) from None
            raise self.fail(key, str(exc)) from None

    def link_mapping(self, value: object, key: str, current: Mapping[str, Any]) -> dict[str, Any]:
        """A profile name, or a table of keys over ``profile = NAME`` (or over ``current``)."""
        if isinstance(value, str):
            return dict(self.named_profile(value, key))
        table = dict(_table(self.source, key, value))
        base = current
        if "profile" in table:
            base = self.named_profile(table.pop("profile"), f"{key}.profile")
        merged = {**base, **table}
        self.profile(merged, key)
        return merged

    def named_profile(self, name: object, key: str) -> Mapping[str, Any]:
        if not isinstance(name, str) or name not in self.profile_maps:
            known = ", ".join(self.profile_maps) or "none defined"
            raise self.fail(key, f"unknown profile {name!r} (profiles: {known})")
        return self.profile_maps[name]

    def address(self, value: object, key: str, owner: str) -> str:
        address = _address(self.source, key, value)
        if address in self.addresses and self.addresses[address] != owner:
            raise self.fail(key, f"address {address} is already used by {self.addresses[address]}")
        self.addresses[address] = owner
        return address

    def nat_ref(self, value: object, key: str) -> str:
        if not isinstance(value, str) or value not in self.nat_names:
            known = ", ".join(sorted(self.nat_names)) or "none defined"
            raise self.fail(key, f"unknown NAT {value!r} (nats: {known})")
        return value

    def host_ref(self, value: object, key: str) -> str:
        if not isinstance(value, str) or (value, "up") not in self.links:
            known = ", ".join(sorted({host for host, _ in self.links}))
            raise self.fail(key, f"unknown host {value!r} (hosts: {known})")
        return value

    def nats(self, table: Mapping[str, Any]) -> tuple[NatSpec, ...]:
        specs = []
        for name, value in table.items():
            key = f"nats.{name}"
            config_map = dict(_table(self.source, key, value))
            public_ip = self.address(config_map.pop("public_ip", None), f"{key}.public_ip", key)
            try:
                config = NatConfig.from_mapping(config_map)
            except ValueError as exc:
                bad = _first_bad_key(NatConfig.from_mapping, config_map)
                problem = _unprefixed(str(exc), f"bad NAT config {bad!r}: ")
                raise self.fail(f"{key}.{bad}" if bad else key, problem) from None
            self.nat_names.add(name)
            specs.append(NatSpec(name, public_ip, config))
        return tuple(specs)

    def hosts(self, table: Mapping[str, Any]) -> tuple[HostSpec, ...]:
        if not table:
            raise self.fail("hosts", "a scenario needs at least one [hosts.NAME] table")
        specs = []
        for name, value in table.items():
            key = f"hosts.{name}"
            host = _table(self.source, key, value)
            if name in self.nat_names:
                raise self.fail(key, f"the name {name!r} is already used by a NAT")
            for sub_key in host:
                if sub_key not in ("address", "nat", "link", "up", "down"):
                    raise self.fail(
                        f"{key}.{sub_key}", "unknown key (expected address, nat, link, up or down)"
                    )
            address = self.address(host.get("address"), f"{key}.address", key)
            nat = self.nat_ref(host["nat"], f"{key}.nat") if "nat" in host else None
            both = self.link_mapping(host["link"], f"{key}.link", {}) if "link" in host else {}
            up = self.link_mapping(host["up"], f"{key}.up", both) if "up" in host else both
            down = self.link_mapping(host["down"], f"{key}.down", both) if "down" in host else both
            self.links[(name, "up")], self.links[(name, "down")] = up, down
            self.host_nat[name] = nat
            specs.append(
                HostSpec(
                    name,
                    address,
                    nat,
                    self.profile(up, f"{key}.up"),
                    self.profile(down, f"{key}.down"),
                )
            )
        return tuple(specs)

    def timeline(self, entries: list[Any], end_s: float | None) -> tuple[TimelineEntry, ...]:
        parsed: list[tuple[float, int, dict[str, Any]]] = []
        for index, value in enumerate(entries):
            key = f"timeline[{index}]"
            entry = dict(_table(self.source, key, value))
            if "at" not in entry:
                raise self.fail(key, "missing key 'at' (when the change happens, e.g. \"60s\")")
            at_s = _duration(self.source, f"{key}.at", entry.pop("at"))
            if end_s is not None and at_s >= end_s:
                problem = f"{at_s:g}s is not before the scenario's end ({end_s:g}s)"
                raise self.fail(f"{key}.at", problem)
            parsed.append((at_s, index, entry))
        parsed.sort(key=lambda item: (item[0], item[1]))  # time order; file order breaks ties
        return tuple(self.timeline_entry(at_s, f"timeline[{i}]", e) for at_s, i, e in parsed)

    def timeline_entry(self, at_s: float, key: str, entry: dict[str, Any]) -> TimelineEntry:
        raw_action = entry.pop("action", None)
        try:
            action = TimelineAction(raw_action)
        except ValueError:
            choices = ", ".join(str(a) for a in TimelineAction)
            raise self.fail(
                f"{key}.action", f"expected one of {choices}, got {raw_action!r}"
            ) from None
        allowed = {
            TimelineAction.SET_LINK: None,  # any profile key
            TimelineAction.OUTAGE: {"host", "direction", "until", "duration"},
            TimelineAction.REBIND: {"nat", "public_ip"},
            TimelineAction.MOVE: {"host", "address", "nat"},
            TimelineAction.PARTITION: {"groups"},
            TimelineAction.HEAL: set(),
        }[action]
        for sub_key in entry:
            if allowed is not None and sub_key not in allowed:
                expected = ", ".join(sorted(allowed)) or "nothing besides at and action"
                raise self.fail(
                    f"{key}.{sub_key}", f"unknown key for {action} (expected {expected})"
                )
        if action in (TimelineAction.SET_LINK, TimelineAction.OUTAGE):
            return self.link_change(at_s, action, key, entry)
        if action is TimelineAction.REBIND:
            return self.rebind(at_s, key, entry)
        if action is TimelineAction.MOVE:
            return self.move(at_s, key, entry)
        if action is TimelineAction.PARTITION:
            groups = self.groups(entry.get("groups"), key)
            return TimelineEntry(at_s, action, key, groups=groups)
        return TimelineEntry(at_s, action, key)

    def rebind(self, at_s: float, key: str, entry: Mapping[str, Any]) -> TimelineEntry:
        nat = self.nat_ref(entry.get("nat"), f"{key}.nat")
        public_ip = entry.get("public_ip")
        if public_ip is not None:
            for address, owner in list(self.addresses.items()):
                if owner == f"nats.{nat}":
                    del self.addresses[address]
            public_ip = self.address(public_ip, f"{key}.public_ip", f"nats.{nat}")
        return TimelineEntry(at_s, TimelineAction.REBIND, key, nat=nat, public_ip=public_ip)

    def move(self, at_s: float, key: str, entry: Mapping[str, Any]) -> TimelineEntry:
        host = self.host_ref(entry.get("host"), f"{key}.host")
        for address, owner in list(self.addresses.items()):
            if owner == f"hosts.{host}":
                del self.addresses[address]
        address = self.address(entry.get("address"), f"{key}.address", f"hosts.{host}")
        nat = self.nat_ref(entry["nat"], f"{key}.nat") if "nat" in entry else None
        self.host_nat[host] = nat
        return TimelineEntry(at_s, TimelineAction.MOVE, key, host=host, address=address, nat=nat)

    def link_change(
        self, at_s: float, action: TimelineAction, key: str, entry: dict[str, Any]
    ) -> TimelineEntry:
        host = self.host_ref(entry.pop("host", None), f"{key}.host")
        direction = entry.pop("direction", "both")
        if direction not in ("up", "down", "both"):
            raise self.fail(f"{key}.direction", f"expected up, down or both, got {direction!r}")
        sides = ("up", "down") if direction == "both" else (direction,)
        outage: list[float] = []
        if action is TimelineAction.OUTAGE:
            if ("until" in entry) == ("duration" in entry):
                raise self.fail(key, "an outage needs exactly one of 'until' or 'duration'")
            if "until" in entry:
                end_s = _duration(self.source, f"{key}.until", entry["until"])
            else:
                end_s = at_s + _duration(self.source, f"{key}.duration", entry["duration"])
            if end_s <= at_s:
                raise self.fail(key, "the outage must end after it starts")
            outage = [at_s, end_s]
        installed: dict[str, LinkProfile] = {}
        for side in sides:
            current = self.links[(host, side)]
            if outage:
                mapping = {**current, "outages": [*current.get("outages", []), outage]}
            else:
                mapping = self.link_mapping(entry, key, current)
            self.links[(host, side)] = mapping
            installed[side] = self.profile(mapping, key)
        return TimelineEntry(
            at_s, action, key, host=host, up=installed.get("up"), down=installed.get("down")
        )

    def groups(self, value: object, key: str) -> tuple[tuple[str, ...], ...]:
        """Partition groups; hosts behind one NAT share its side, so one group holds them all."""
        if not isinstance(value, list) or len(value) < 2:
            raise self.fail(f"{key}.groups", "expected two or more lists of host names")
        side_group: dict[str, int] = {}
        groups = []
        for index, group in enumerate(value):
            if not isinstance(group, list) or not group:
                raise self.fail(f"{key}.groups[{index}]", "expected a non-empty list of host names")
            for name in group:
                self.host_ref(name, f"{key}.groups[{index}]")
                side = self.host_nat[name] or name
                if side_group.setdefault(side, index) != index:
                    what = f"host {name!r}" if side == name else f"NAT {side!r} (of {name!r})"
                    raise self.fail(f"{key}.groups[{index}]", f"{what} is in two groups")
            groups.append(tuple(group))
        return tuple(groups)


def _first_bad_key(parse: Any, mapping: Mapping[str, Any]) -> str | None:
    for sub_key, value in mapping.items():
        try:
            parse({sub_key: value})
        except ValueError:
            return str(sub_key)
    return None


def _unprefixed(problem: str, prefix: str) -> str:
    """Drop a model's own "bad ... 'key': " prefix: the key path already names the key."""
    return problem.removeprefix(prefix)


def _table(source: str, key: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScenarioError(source, key, f"expected a table, got {type(value).__name__}")
    return value


def _text(source: str, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ScenarioError(source, key, f"expected a string, got {type(value).__name__}")
    return value


def _duration(source: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ScenarioError(source, key, f'expected a duration such as "25ms", got {value!r}')
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ScenarioError(source, key, str(exc)) from None


def _address(source: str, key: str, value: object) -> str:
    if value is None:
        raise ScenarioError(source, key, "missing (an IPv4 address in 127.0.0.0/8)")
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ScenarioError(source, key, f"{value!r} is not an IPv4 address") from None
    if not address.is_loopback:
        raise ScenarioError(
            source,
            key,
            f"{address} is outside 127.0.0.0/8 (netsim addresses "
            "stay in the loopback range by convention)",
        )
    return str(address)


def _app_spec(source: str, value: object) -> str | None:
    if value is None:
        return None
    spec = _text(source, "app", value)
    if spec.count(":") != 1 or not all(spec.split(":")):
        raise ScenarioError(source, "app", f"expected MODULE:FACTORY, got {spec!r}")
    return spec


def _check_json_friendly(source: str, key: str, value: object) -> None:
    """Reject TOML dates and times: a trace header must hold the scenario as JSON."""
    if isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            _check_json_friendly(source, f"{key}.{sub_key}" if key else str(sub_key), sub_value)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_friendly(source, f"{key}[{index}]", item)
    elif not isinstance(value, str | int | float | bool):
        raise ScenarioError(source, key, f"unsupported value {value!r} (dates are not allowed)")


def _absolutize_trace_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Make relative ``trace = "file"`` paths absolute, so the data works from anywhere."""
    bundled = set(bundled_traces())

    def visit(node: object) -> None:
        if isinstance(node, dict):
            trace = node.get("trace")
            if isinstance(trace, str) and trace not in bundled and not Path(trace).is_absolute():
                node["trace"] = str((base_dir / trace).resolve())
            for child in node.values():
                visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    for section in ("profiles", "hosts", "timeline"):
        visit(data.get(section))
