"""Scenario timeline: the ``[[timeline]]`` entries, resolved at load time into ready changes.

What this module owns: `TimelineAction` (what an entry does), `TimelineEntry` (one resolved
entry) and `parse_timeline`, which reads the entries against the topology a
`netsim.scenario_topology.TopologyBuilder` has built. `netsim.scenario` re-exports the two
value types.

Rules it keeps:

* Entries are walked once, in time order (file order breaks ties), with the link state, NATs
  and addresses they imply at each point; so an entry can refer to the state an earlier entry
  left (a host that moved, a link that changed) and every error surfaces at load time.
* Each ``set-link`` or ``outage`` entry stores the complete profiles it installs, and ``move``
  and ``rebind`` entries the addresses they claim: the runner only calls the matching
  `Network` method.
* ``set-link`` takes any profile key (over ``profile = NAME`` or the current link); the other
  actions take only their own keys. A problem is one `ScenarioError` naming the key path
  (``timeline[3].host``), where ``timeline[N]`` is the entry's position in the file.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netsim.models import LinkProfile
from netsim.scenario_fields import require_duration, require_table
from netsim.scenario_topology import TopologyBuilder

__all__ = ["TimelineAction", "TimelineEntry", "parse_timeline"]


class TimelineAction(enum.StrEnum):
    """What a timeline entry does (the ``action`` key)."""

    SET_LINK = "set-link"  # change a host's link profile (single keys or a named profile)
    OUTAGE = "outage"  # the host's link is down from ``at`` until ``until`` / for ``duration``
    REBIND = "rebind"  # a NAT moves every mapping to new external ports (and optional address)
    MOVE = "move"  # a host changes network: new address and NAT (none when omitted)
    PARTITION = "partition"  # only hosts in the same group can reach each other
    HEAL = "heal"  # undo the partition


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


def parse_timeline(
    topo: TopologyBuilder, entries: list[Any], end_s: float | None
) -> tuple[TimelineEntry, ...]:
    """Resolve the ``[[timeline]]`` entries against the topology, in time order.

    Args:
        topo: the builder that read the scenario's profiles, NATs and hosts; its state is moved
            forward to the end of the timeline.
        entries: the raw ``timeline`` array.
        end_s: reject entries at or after this time (None: no limit).

    Returns:
        The resolved entries, sorted by time (file order breaks ties).

    Raises:
        ScenarioError: the first problem found.
    """
    parsed: list[tuple[float, int, dict[str, Any]]] = []
    for index, value in enumerate(entries):
        key = f"timeline[{index}]"
        entry = dict(require_table(topo.source, key, value))
        if "at" not in entry:
            raise topo.fail(key, "missing key 'at' (when the change happens, e.g. \"60s\")")
        at_s = require_duration(topo.source, f"{key}.at", entry.pop("at"))
        if end_s is not None and at_s >= end_s:
            problem = f"{at_s:g}s is not before the scenario's end ({end_s:g}s)"
            raise topo.fail(f"{key}.at", problem)
        parsed.append((at_s, index, entry))
    parsed.sort(key=lambda item: (item[0], item[1]))  # time order; file order breaks ties
    return tuple(_timeline_entry(topo, at_s, f"timeline[{i}]", e) for at_s, i, e in parsed)


def _timeline_entry(
    topo: TopologyBuilder, at_s: float, key: str, entry: dict[str, Any]
) -> TimelineEntry:
    raw_action = entry.pop("action", None)
    try:
        action = TimelineAction(raw_action)
    except ValueError:
        choices = ", ".join(str(a) for a in TimelineAction)
        raise topo.fail(f"{key}.action", f"expected one of {choices}, got {raw_action!r}") from None
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
            raise topo.fail(f"{key}.{sub_key}", f"unknown key for {action} (expected {expected})")
    if action in (TimelineAction.SET_LINK, TimelineAction.OUTAGE):
        return _link_change(topo, at_s, action, key, entry)
    if action is TimelineAction.REBIND:
        return _rebind(topo, at_s, key, entry)
    if action is TimelineAction.MOVE:
        return _move(topo, at_s, key, entry)
    if action is TimelineAction.PARTITION:
        groups = _groups(topo, entry.get("groups"), key)
        return TimelineEntry(at_s, action, key, groups=groups)
    return TimelineEntry(at_s, action, key)


def _rebind(
    topo: TopologyBuilder, at_s: float, key: str, entry: Mapping[str, Any]
) -> TimelineEntry:
    nat = topo.nat_ref(entry.get("nat"), f"{key}.nat")
    public_ip = entry.get("public_ip")
    if public_ip is not None:
        for address, owner in list(topo.addresses.items()):
            if owner == f"nats.{nat}":
                del topo.addresses[address]
        public_ip = topo.address(public_ip, f"{key}.public_ip", f"nats.{nat}")
    return TimelineEntry(at_s, TimelineAction.REBIND, key, nat=nat, public_ip=public_ip)


def _move(topo: TopologyBuilder, at_s: float, key: str, entry: Mapping[str, Any]) -> TimelineEntry:
    host = topo.host_ref(entry.get("host"), f"{key}.host")
    for address, owner in list(topo.addresses.items()):
        if owner == f"hosts.{host}":
            del topo.addresses[address]
    address = topo.address(entry.get("address"), f"{key}.address", f"hosts.{host}")
    nat = topo.nat_ref(entry["nat"], f"{key}.nat") if "nat" in entry else None
    topo.host_nat[host] = nat
    return TimelineEntry(at_s, TimelineAction.MOVE, key, host=host, address=address, nat=nat)


def _link_change(
    topo: TopologyBuilder, at_s: float, action: TimelineAction, key: str, entry: dict[str, Any]
) -> TimelineEntry:
    host = topo.host_ref(entry.pop("host", None), f"{key}.host")
    direction = entry.pop("direction", "both")
    if direction not in ("up", "down", "both"):
        raise topo.fail(f"{key}.direction", f"expected up, down or both, got {direction!r}")
    sides = ("up", "down") if direction == "both" else (direction,)
    outage: list[float] = []
    if action is TimelineAction.OUTAGE:
        if ("until" in entry) == ("duration" in entry):
            raise topo.fail(key, "an outage needs exactly one of 'until' or 'duration'")
        if "until" in entry:
            end_s = require_duration(topo.source, f"{key}.until", entry["until"])
        else:
            end_s = at_s + require_duration(topo.source, f"{key}.duration", entry["duration"])
        if end_s <= at_s:
            raise topo.fail(key, "the outage must end after it starts")
        outage = [at_s, end_s]
    installed: dict[str, LinkProfile] = {}
    for side in sides:
        current = topo.links[(host, side)]
        if outage:
            mapping = {**current, "outages": [*current.get("outages", []), outage]}
        else:
            mapping = topo.link_mapping(entry, key, current)
        topo.links[(host, side)] = mapping
        installed[side] = topo.profile(mapping, key)
    return TimelineEntry(
        at_s, action, key, host=host, up=installed.get("up"), down=installed.get("down")
    )


def _groups(topo: TopologyBuilder, value: object, key: str) -> tuple[tuple[str, ...], ...]:
    """Partition groups; hosts behind one NAT share its side, so one group holds them all."""
    if not isinstance(value, list) or len(value) < 2:
        raise topo.fail(f"{key}.groups", "expected two or more lists of host names")
    side_group: dict[str, int] = {}
    groups = []
    for index, group in enumerate(value):
        if not isinstance(group, list) or not group:
            raise topo.fail(f"{key}.groups[{index}]", "expected a non-empty list of host names")
        for name in group:
            topo.host_ref(name, f"{key}.groups[{index}]")
            side = topo.host_nat[name] or name
            if side_group.setdefault(side, index) != index:
                what = f"host {name!r}" if side == name else f"NAT {side!r} (of {name!r})"
                raise topo.fail(f"{key}.groups[{index}]", f"{what} is in two groups")
        groups.append(tuple(group))
    return tuple(groups)
