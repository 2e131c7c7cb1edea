"""Scenario topology: the profiles, NATs and hosts of a scenario, validated against each other.

What this module owns: `TopologyBuilder`, which reads the ``[profiles.NAME]``, ``[nats.NAME]``
and ``[hosts.NAME]`` tables into frozen `NatSpec` and `HostSpec` values, and the state those
tables imply (profile mappings, NAT names, each host's link mappings, NAT and address). The
timeline reader (`netsim.scenario_timeline`) resolves its references against that state and
moves it forward in time. `netsim.scenario` re-exports `NatSpec` and `HostSpec`.

Rules it keeps:

* Link profiles stay *mappings* (the TOML form) until they are installed, so a host link can
  start from a named profile (``profile = NAME``) or from the link it overrides and change
  single keys; every mapping is validated as a `LinkProfile` when it is formed.
* A problem is one `ScenarioError` naming the deepest key path it can
  (``hosts.client.up.loss``), with the model's own "bad ... 'key': " prefix removed.
* No two hosts or NAT public sides share an address at any point; names are unique across
  hosts and NATs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netsim.models import LinkProfile
from netsim.nat import NatConfig
from netsim.scenario_fields import ScenarioError, require_address, require_table

__all__ = ["HostSpec", "NatSpec", "TopologyBuilder"]


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


class TopologyBuilder:
    """Validates the sections that refer to each other, keeping the state they imply.

    Call `profiles`, then `nats`, then `hosts` (each may refer to the ones before). The
    attributes are the state at the current point of the scenario; the timeline reader
    updates ``links``, ``addresses`` and ``host_nat`` as it walks forward.

    Args:
        source: what to call the document in messages.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.profile_maps: dict[str, dict[str, Any]] = {}
        self.nat_names: set[str] = set()
        self.links: dict[tuple[str, str], dict[str, Any]] = {}  # (host, "up"|"down") -> mapping
        self.addresses: dict[str, str] = {}  # address -> owner, at the current timeline point
        self.host_nat: dict[str, str | None] = {}  # host -> its NAT, at the current point

    def fail(self, key: str, problem: str) -> ScenarioError:
        """Return (for the caller to raise) the error for ``problem`` at ``key``."""
        return ScenarioError(self.source, key, problem)

    def profiles(self, table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Validate the ``[profiles]`` table; returns each named profile as a mapping."""
        for name, value in table.items():
            mapping = dict(require_table(self.source, f"profiles.{name}", value))
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
        table = dict(require_table(self.source, key, value))
        base = current
        if "profile" in table:
            base = self.named_profile(table.pop("profile"), f"{key}.profile")
        merged = {**base, **table}
        self.profile(merged, key)
        return merged

    def named_profile(self, name: object, key: str) -> Mapping[str, Any]:
        """The mapping of the profile called ``name`` (an error names the known ones)."""
        if not isinstance(name, str) or name not in self.profile_maps:
            known = ", ".join(self.profile_maps) or "none defined"
            raise self.fail(key, f"unknown profile {name!r} (profiles: {known})")
        return self.profile_maps[name]

    def address(self, value: object, key: str, owner: str) -> str:
        """Claim a free address for ``owner`` (``hosts.NAME`` or ``nats.NAME``)."""
        address = require_address(self.source, key, value)
        if address in self.addresses and self.addresses[address] != owner:
            raise self.fail(key, f"address {address} is already used by {self.addresses[address]}")
        self.addresses[address] = owner
        return address

    def nat_ref(self, value: object, key: str) -> str:
        """Return ``value`` if it names a NAT defined so far."""
        if not isinstance(value, str) or value not in self.nat_names:
            known = ", ".join(sorted(self.nat_names)) or "none defined"
            raise self.fail(key, f"unknown NAT {value!r} (nats: {known})")
        return value

    def host_ref(self, value: object, key: str) -> str:
        """Return ``value`` if it names a host defined so far."""
        if not isinstance(value, str) or (value, "up") not in self.links:
            known = ", ".join(sorted({host for host, _ in self.links}))
            raise self.fail(key, f"unknown host {value!r} (hosts: {known})")
        return value

    def nats(self, table: Mapping[str, Any]) -> tuple[NatSpec, ...]:
        """Validate the ``[nats]`` table."""
        specs = []
        for name, value in table.items():
            key = f"nats.{name}"
            config_map = dict(require_table(self.source, key, value))
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
        """Validate the ``[hosts]`` table (at least one host), resolving link profiles."""
        if not table:
            raise self.fail("hosts", "a scenario needs at least one [hosts.NAME] table")
        specs = []
        for name, value in table.items():
            key = f"hosts.{name}"
            host = require_table(self.source, key, value)
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
