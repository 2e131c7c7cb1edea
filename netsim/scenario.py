"""Scenario files: a TOML description of one simulated network and what happens to it.

This module owns the scenario format as a whole: reading a file (``tomllib``), checking its
top-level keys, and assembling the frozen `Scenario` the runner applies. The sections are read
next door: profiles, NATs and hosts by `netsim.scenario_topology` (`HostSpec`, `NatSpec`), the
timeline by `netsim.scenario_timeline` (`TimelineAction`, `TimelineEntry`), single values and the
error type by `netsim.scenario_fields` (`ScenarioError`); all of those names are re-exported
here, so ``netsim.scenario`` is the one import for scenarios. It never touches trio or a network.

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

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netsim.mahimahi import bundled_traces
from netsim.models import LinkProfile
from netsim.scenario_fields import ScenarioError, require_duration, require_table, require_text
from netsim.scenario_timeline import TimelineAction, TimelineEntry, parse_timeline
from netsim.scenario_topology import HostSpec, NatSpec, TopologyBuilder

__all__ = [
    "DEFAULT_DURATION_S",
    "DEFAULT_SEED",
    "SCENARIO_DIR",
    "TOP_KEYS",
    "HostSpec",
    "NatSpec",
    "Scenario",
    "ScenarioError",
    "TimelineAction",
    "TimelineEntry",
    "bundled_scenarios",
    "load_scenario",
    "resolve_scenario_path",
    "scenario_from_data",
]

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
    duration_s = require_duration(source, "duration", data.get("duration", DEFAULT_DURATION_S))
    if duration_s <= 0:
        raise ScenarioError(source, "duration", "must be more than 0s")
    seed = data.get("seed", DEFAULT_SEED)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ScenarioError(source, "seed", f"expected a non-negative integer, got {seed!r}")
    builder = TopologyBuilder(source)
    profiles = builder.profiles(require_table(source, "profiles", data.get("profiles", {})))
    nats = builder.nats(require_table(source, "nats", data.get("nats", {})))
    hosts = builder.hosts(require_table(source, "hosts", data.get("hosts", {})))
    raw_timeline = data.get("timeline", [])
    if not isinstance(raw_timeline, list):
        raise ScenarioError(source, "timeline", "expected an array of tables ([[timeline]])")
    timeline = parse_timeline(builder, raw_timeline, duration_s if strict_end else None)
    return Scenario(
        name=name,
        source=source,
        description=require_text(source, "description", data.get("description", "")),
        duration_s=duration_s,
        seed=seed,
        app=_app_spec(source, data.get("app")),
        hosts=hosts,
        nats=nats,
        timeline=timeline,
        workload=require_table(source, "workload", data.get("workload", {})),
        profiles={key: LinkProfile.from_mapping(value) for key, value in profiles.items()},
        data=data,
    )


def _app_spec(source: str, value: object) -> str | None:
    if value is None:
        return None
    spec = require_text(source, "app", value)
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
