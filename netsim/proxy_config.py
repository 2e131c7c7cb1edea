"""Configuration of the real UDP impairment proxy (`netsim proxy`): one value and its defaults.

What this module owns: `ProxyConfig` (where to listen, where to relay, how to impair each
direction, the bounds), the `Direction` names "up" and "down", the `Address` type and the
defaults of the proxy's bounds. The engine that runs a config is `netsim.proxy`, which
re-exports everything here.

Rules it keeps:

- "up" is client -> server, "down" is server -> client; `ProxyConfig.profile` maps each to its
  `LinkProfile`.
- A config is valid or does not exist: `nat_timeout_s > 0`, `max_clients >= 1` and
  `max_pending_packets >= 1` are checked on construction (`ValueError`).
- The NAT timeout defaults to RFC 4787 REQ-5's two minutes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from netsim.models import LinkProfile

__all__ = [
    "DEFAULT_MAX_CLIENTS",
    "DEFAULT_MAX_PENDING_PACKETS",
    "DEFAULT_NAT_TIMEOUT_S",
    "Address",
    "Direction",
    "ProxyConfig",
]

Address = tuple[str, int]

# RFC 4787 REQ-5: a NAT UDP mapping timer must not expire in less than two minutes.
DEFAULT_NAT_TIMEOUT_S = 120.0
DEFAULT_MAX_CLIENTS = 1024
DEFAULT_MAX_PENDING_PACKETS = 65536


class Direction(enum.StrEnum):
    """Which way a datagram crosses the proxy."""

    UP = "up"  # client -> server
    DOWN = "down"  # server -> client


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Everything `serve_proxy` needs.

    Attributes:
        listen: address the clients send to (port 0 picks a free port).
        target: the server every client is relayed to.
        up: impairments of the client -> server direction (per client).
        down: impairments of the server -> client direction (per client).
        seed: root of every random decision (see `derive_rng`).
        nat_timeout_s: a mapping without client -> server traffic for this long expires
            (`math.inf`: never).
        max_clients: most mappings alive at once.
        max_pending_packets: most deliveries scheduled and not yet sent, both directions.
        upstream_host: address the per-client upstream sockets bind to; `None` picks
            127.0.0.1 for a loopback target and 0.0.0.0 otherwise.
    """

    listen: Address
    target: Address
    up: LinkProfile = field(default_factory=LinkProfile)
    down: LinkProfile = field(default_factory=LinkProfile)
    seed: int = 0
    nat_timeout_s: float = DEFAULT_NAT_TIMEOUT_S
    max_clients: int = DEFAULT_MAX_CLIENTS
    max_pending_packets: int = DEFAULT_MAX_PENDING_PACKETS
    upstream_host: str | None = None

    def __post_init__(self) -> None:
        if not self.nat_timeout_s > 0:
            raise ValueError(f"bad NAT timeout {self.nat_timeout_s!r}: expected a duration > 0")
        for name in ("max_clients", "max_pending_packets"):
            if getattr(self, name) < 1:
                raise ValueError(f"bad {name} {getattr(self, name)!r}: expected at least 1")

    def profile(self, direction: Direction) -> LinkProfile:
        """Return the impairment profile of `direction`."""
        return self.up if direction is Direction.UP else self.down

    def upstream_bind_host(self) -> str:
        """Return the address upstream sockets bind to (see `upstream_host`)."""
        if self.upstream_host is not None:
            return self.upstream_host
        return "127.0.0.1" if self.target[0].startswith("127.") else "0.0.0.0"
