"""Statistics of the real UDP impairment proxy: the snapshots it reports, the counters behind them.

What this module owns: the read-only values `ImpairmentProxy.statistics()` and
`ImpairmentProxy.mappings()` return (`ProxyStatistics`, `DirectionStatistics`, `ProxyMapping`)
and `DirectionCounters`, the mutable counters the engine updates on its hot path. `netsim.proxy`
re-exports the three snapshot types.

Rules it keeps:

- Snapshots are frozen and detached: a snapshot never changes after it is taken, however the
  proxy goes on (`DirectionCounters.snapshot` copies the drop counts).
- `DirectionCounters` and `DirectionStatistics` have the same field names, so a snapshot is a
  field-by-field copy.
- `to_mapping` gives JSON-friendly dicts: drop reasons by their trace text, sorted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from netsim.models import DropReason
from netsim.proxy_config import Address, Direction

__all__ = ["DirectionCounters", "DirectionStatistics", "ProxyMapping", "ProxyStatistics"]


@dataclass(frozen=True, slots=True)
class DirectionStatistics:
    """Counters of one direction, summed over every client.

    `packets_out`/`bytes_out` count datagrams handed to the OS. Every datagram received, and
    every extra copy (`duplicated`), is sent, dropped (`drops`), lost to a send error (counted
    in `socket_errors`, as are receive errors) or still pending.
    """

    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    duplicated: int = 0
    corrupted: int = 0
    socket_errors: int = 0
    drops: Mapping[DropReason, int] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        """Total datagrams dropped, every reason."""
        return sum(self.drops.values())

    def to_mapping(self) -> dict[str, object]:
        """Return the counters as a JSON-friendly dict (drop reasons by their trace text)."""
        counts: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        counts["drops"] = {str(reason): count for reason, count in sorted(self.drops.items())}
        return counts


@dataclass(frozen=True, slots=True)
class ProxyStatistics:
    """A snapshot of the proxy's counters.

    Attributes:
        up: client -> server counters.
        down: server -> client counters.
        clients: mappings created so far (a client whose mapping expired counts again).
        active_mappings: mappings alive now.
        mappings_expired: mappings closed by the NAT timeout.
        pending_packets: deliveries scheduled and not yet sent.
    """

    up: DirectionStatistics
    down: DirectionStatistics
    clients: int
    active_mappings: int
    mappings_expired: int
    pending_packets: int

    def direction(self, direction: Direction) -> DirectionStatistics:
        """Return the counters of `direction`."""
        return self.up if direction is Direction.UP else self.down

    def to_mapping(self) -> dict[str, object]:
        """Return the snapshot as a JSON-friendly dict."""
        document: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        return document | {"up": self.up.to_mapping(), "down": self.down.to_mapping()}


@dataclass(frozen=True, slots=True)
class ProxyMapping:
    """A live client mapping: `client` is seen by the server as `upstream`."""

    index: int
    client: Address
    upstream: Address
    expires_at: float


@dataclass(slots=True)
class DirectionCounters:
    """Mutable counters behind one `DirectionStatistics` (same field names)."""

    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    duplicated: int = 0
    corrupted: int = 0
    socket_errors: int = 0
    drops: Counter[DropReason] = field(default_factory=Counter)

    def snapshot(self) -> DirectionStatistics:
        """Return a frozen copy of the counters."""
        counts = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "drops"}
        return DirectionStatistics(**counts, drops=dict(self.drops))
