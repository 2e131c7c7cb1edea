"""NAT models in RFC 4787 vocabulary: mapping, filtering, timeouts, port allocation, rebinding.

What this module owns
---------------------
``Nat``: the translation table of one NAT with one public IPv4 address, as a pure object. The
network layer calls ``outbound`` for every packet leaving the private side and ``inbound`` for
every packet arriving at the public address; no Trio, no clock (``now`` is passed in), the only
randomness is the injected ``random.Random`` (``derive_rng(seed, "nat", name)``). Its
configuration (``NatConfig``, ``Behaviour``, ``PortAllocation``) is defined in
``netsim.nat_config`` and re-exported here; the sections below say what each setting means.

Mapping behaviour (RFC 4787 section 4.1) - which outbound packets share an external endpoint
--------------------------------------------------------------------------------------------
A mapping binds a private endpoint to an external port on ``public_ip``. It is looked up by:

- ``ENDPOINT_INDEPENDENT`` (EIM): the private endpoint alone; every destination sees the same
  external endpoint (what hole punching needs).
- ``ADDRESS_DEPENDENT`` (ADM): private endpoint and destination IP.
- ``ADDRESS_AND_PORT_DEPENDENT`` (APDM, "symmetric NAT"): private endpoint and destination
  IP and port; each destination gets its own external port.

Filtering behaviour (RFC 4787 section 5) - which inbound packets a mapping lets in
----------------------------------------------------------------------------------
Each mapping keeps *permissions*, set and refreshed by its outbound packets:

- ``ENDPOINT_INDEPENDENT`` (EIF): any source may send to a live mapping.
- ``ADDRESS_DEPENDENT`` (ADF): only IPs this mapping has sent to.
- ``ADDRESS_AND_PORT_DEPENDENT`` (APDF): only IP:port endpoints this mapping has sent to.

A permission lasts ``timeout_s`` from the last outbound packet to that remote (or, with
``refresh_on_inbound``, from the last inbound packet it let in).

Timeouts (RFC 4787 section 4.3)
-------------------------------
A mapping is dead when ``now - last_refresh >= timeout_s``. Every outbound packet using it
refreshes it; with ``refresh_on_inbound`` every inbound packet it lets in does too. Expiry is
lazy, evaluated at use time: the first inbound packet that finds its mapping dead is dropped with
``NAT_EXPIRED`` and the mapping is removed, so later ones get ``NAT_NO_MAPPING``; an outbound
packet that finds its mapping dead removes it and creates a fresh one (usually on a new port).
Dead mappings are also reclaimed when their port is needed and by an occasional sweep (when the
table has doubled since the last one) that bounds memory; each expiry is counted once.

Port allocation (RFC 4787 section 4.2.1)
----------------------------------------
External ports come from ``port_min..port_max`` and a port held by a live mapping is never handed
out again. ``SEQUENTIAL`` takes the next free port after the last one allocated (wrapping);
``RANDOM`` draws uniformly from the range (after 32 taken draws it scans from a random point);
``PRESERVE`` keeps the private port if it is inside the range and free, else falls back to
sequential. If every port is held, the least recently refreshed mapping is evicted (counted in
``evicted``) and its port reused, so ``outbound`` never drops.

Rebinding
---------
``rebind`` models a carrier NAT renumbering its sessions: every live mapping moves to a new
external port (allocated while the old ones are still held, so it differs from every old one),
and to ``new_public_ip`` if given. Permissions and timers carry over. Packets to the old
external endpoints get ``NAT_NO_MAPPING`` (until a later mapping reuses the port); the peer
learns the new endpoint from the next outbound packet. If the range cannot hold the new ports,
the mappings that do not fit are dropped (counted in ``evicted``).

Not modelled: hairpinning, ICMP, port parity or contiguity, more than one public address at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

from netsim.models import DropReason
from netsim.nat_config import Behaviour, NatConfig, PortAllocation

__all__ = [
    "Address",
    "Behaviour",
    "MappingInfo",
    "Nat",
    "NatConfig",
    "NatStatistics",
    "PortAllocation",
]

Address = tuple[str, int]

_RANDOM_TRIES: Final = 32
_MIN_SWEEP_AT: Final = 64


@dataclass(frozen=True, slots=True)
class MappingInfo:
    """A live mapping as reported by ``Nat.mappings``."""

    private: Address
    public: Address
    last_refresh: float
    expires_at: float


@dataclass(slots=True)
class NatStatistics:
    """Counters of one NAT; ``drops`` counts inbound drops by reason."""

    mappings_created: int = 0
    expired: int = 0
    evicted: int = 0
    rebinds: int = 0
    packets_out: int = 0
    packets_in: int = 0
    drops: dict[DropReason, int] = field(default_factory=dict)


# Mapping keys: (private endpoint, remote IP or "", remote port or -1) per mapping behaviour;
# permission keys: (remote IP, remote port or -1) per filtering behaviour.
_Key = tuple[Address, str, int]


class _Mapping:
    __slots__ = ("key", "last_refresh", "permissions", "private", "prune_at", "public_port")

    def __init__(self, key: _Key, private: Address, public_port: int, now: float) -> None:
        self.key = key
        self.private = private
        self.public_port = public_port
        self.last_refresh = now
        self.permissions: dict[Address, float] = {}
        self.prune_at = 16  # prune dead permissions when the table reaches this size


class Nat:
    """One NAT with one public IPv4 address (see the module docstring for the behaviours).

    Args:
        name: the NAT's name (for traces and errors).
        public_ip: its external address (changes on ``rebind`` with a new address).
        config: its behaviours.
        rng: its own generator (``derive_rng(seed, "nat", name)``), used by RANDOM allocation.
    """

    def __init__(self, name: str, public_ip: str, config: NatConfig, rng: random.Random) -> None:
        self.name = name
        self.public_ip = public_ip
        self.config = config
        self._rng = rng
        self._by_key: dict[_Key, _Mapping] = {}
        self._by_port: dict[int, _Mapping] = {}
        self._reserved: set[int] = set()  # ports that must not be allocated (during rebind)
        self._next_port = config.port_min
        self._sweep_at = _MIN_SWEEP_AT
        self._stats = NatStatistics()

    def outbound(self, src: Address, dst: Address, now: float) -> Address:
        """Translate a packet leaving the private side. Never drops.

        Args:
            src: the private source endpoint.
            dst: the public destination endpoint.
            now: the time in seconds.

        Returns:
            The external source endpoint to use. The mapping is created or refreshed, and so is
            the filtering permission for ``dst``.
        """
        self._stats.packets_out += 1
        mapping_mode = self.config.mapping
        if mapping_mode is Behaviour.ENDPOINT_INDEPENDENT:
            key: _Key = (src, "", -1)
        elif mapping_mode is Behaviour.ADDRESS_DEPENDENT:
            key = (src, dst[0], -1)
        else:
            key = (src, dst[0], dst[1])
        mapping = self._by_key.get(key)
        if mapping is not None and self._is_dead(mapping, now):
            self._remove(mapping, expired=True)
            mapping = None
        if mapping is None:
            mapping = self._create(key, src, now)
        mapping.last_refresh = now
        permission = self._permission_key(dst)
        if permission is not None:
            permissions = mapping.permissions
            permissions[permission] = now
            if len(permissions) >= mapping.prune_at:
                self._prune_permissions(mapping, now)
        return self.public_ip, mapping.public_port

    def inbound(self, public_dst: Address, src: Address, now: float) -> Address | DropReason:
        """Translate a packet arriving at the public side.

        Args:
            public_dst: the external destination endpoint (this NAT's IP and a port).
            src: the remote source endpoint.
            now: the time in seconds.

        Returns:
            The private destination endpoint, or ``NAT_NO_MAPPING`` (no mapping on that
            endpoint), ``NAT_EXPIRED`` (its mapping was found dead now) or ``NAT_FILTERED``
            (the mapping's filter refuses ``src``).
        """
        self._stats.packets_in += 1
        mapping = self._by_port.get(public_dst[1]) if public_dst[0] == self.public_ip else None
        if mapping is None:
            return self._drop(DropReason.NAT_NO_MAPPING)
        if self._is_dead(mapping, now):
            self._remove(mapping, expired=True)
            return self._drop(DropReason.NAT_EXPIRED)
        permission = self._permission_key(src)
        if permission is not None:
            granted = mapping.permissions.get(permission)
            if granted is None or now - granted >= self.config.timeout_s:
                return self._drop(DropReason.NAT_FILTERED)
        if self.config.refresh_on_inbound:
            mapping.last_refresh = now
            if permission is not None:
                mapping.permissions[permission] = now
        return mapping.private

    def rebind(self, now: float, new_public_ip: str | None = None) -> None:
        """Move every live mapping to a new external port (and to ``new_public_ip`` if given).

        Packets to the old external endpoints are dropped with ``NAT_NO_MAPPING`` afterwards.
        """
        self._stats.rebinds += 1
        for mapping in list(self._by_key.values()):
            if self._is_dead(mapping, now):
                self._remove(mapping, expired=True)
        old_ports = {mapping.public_port: mapping for mapping in self._by_key.values()}
        self._reserved = set(old_ports)
        self._by_port = {}
        try:
            for mapping in old_ports.values():
                port = self._allocate_port(mapping.private[1], now, evict=False)
                if port is None:
                    del self._by_key[mapping.key]
                    self._stats.evicted += 1
                    continue
                mapping.public_port = port
                self._by_port[port] = mapping
        finally:
            self._reserved = set()
        if new_public_ip is not None:
            self.public_ip = new_public_ip

    def mappings(self, now: float) -> list[MappingInfo]:
        """Return the live mappings at ``now``, oldest first (does not change any state)."""
        timeout = self.config.timeout_s
        return [
            MappingInfo(
                private=mapping.private,
                public=(self.public_ip, mapping.public_port),
                last_refresh=mapping.last_refresh,
                expires_at=mapping.last_refresh + timeout,
            )
            for mapping in self._by_key.values()
            if not self._is_dead(mapping, now)
        ]

    def statistics(self) -> NatStatistics:
        """Return a snapshot of the counters."""
        stats = self._stats
        return NatStatistics(
            mappings_created=stats.mappings_created,
            expired=stats.expired,
            evicted=stats.evicted,
            rebinds=stats.rebinds,
            packets_out=stats.packets_out,
            packets_in=stats.packets_in,
            drops=dict(stats.drops),
        )

    # --- internals -------------------------------------------------------------------------

    def _is_dead(self, mapping: _Mapping, now: float) -> bool:
        return now - mapping.last_refresh >= self.config.timeout_s

    def _permission_key(self, remote: Address) -> Address | None:
        filtering = self.config.filtering
        if filtering is Behaviour.ENDPOINT_INDEPENDENT:
            return None
        if filtering is Behaviour.ADDRESS_DEPENDENT:
            return remote[0], -1
        return remote

    def _prune_permissions(self, mapping: _Mapping, now: float) -> None:
        timeout = self.config.timeout_s
        live = {key: t for key, t in mapping.permissions.items() if now - t < timeout}
        mapping.permissions = live
        mapping.prune_at = max(16, 2 * len(live))

    def _drop(self, reason: DropReason) -> DropReason:
        drops = self._stats.drops
        drops[reason] = drops.get(reason, 0) + 1
        return reason

    def _remove(self, mapping: _Mapping, *, expired: bool) -> None:
        del self._by_key[mapping.key]
        if self._by_port.get(mapping.public_port) is mapping:
            del self._by_port[mapping.public_port]
        if expired:
            self._stats.expired += 1
        else:
            self._stats.evicted += 1

    def _create(self, key: _Key, src: Address, now: float) -> _Mapping:
        if len(self._by_key) >= self._sweep_at:
            for mapping in list(self._by_key.values()):
                if self._is_dead(mapping, now):
                    self._remove(mapping, expired=True)
            self._sweep_at = max(_MIN_SWEEP_AT, 2 * len(self._by_key))
        port = self._allocate_port(src[1], now, evict=True)
        assert port is not None  # evict=True always finds a port
        mapping = _Mapping(key, src, port, now)
        self._by_key[key] = mapping
        self._by_port[port] = mapping
        self._stats.mappings_created += 1
        return mapping

    def _port_free(self, port: int, now: float) -> bool:
        """True if ``port`` may be allocated; a dead mapping holding it is reclaimed."""
        if port in self._reserved:
            return False
        holder = self._by_port.get(port)
        if holder is None:
            return True
        if self._is_dead(holder, now):
            self._remove(holder, expired=True)
            return True
        return False

    def _allocate_port(self, private_port: int, now: float, *, evict: bool) -> int | None:
        config = self.config
        low, high = config.port_min, config.port_max
        mode = config.port_allocation
        preserve = mode is PortAllocation.PRESERVE and low <= private_port <= high
        if preserve and self._port_free(private_port, now):
            return private_port
        start = self._next_port
        if mode is PortAllocation.RANDOM:
            for _ in range(_RANDOM_TRIES):
                port = self._rng.randint(low, high)
                if self._port_free(port, now):
                    return port
            start = self._rng.randint(low, high)
        span = high - low + 1
        for step in range(span):
            port = low + (start - low + step) % span
            if self._port_free(port, now):
                if mode is not PortAllocation.RANDOM:
                    self._next_port = low + (port - low + 1) % span
                return port
        if not evict or not self._by_port:
            return None
        oldest = min(self._by_port.values(), key=lambda mapping: mapping.last_refresh)
        self._remove(oldest, expired=False)
        return oldest.public_port
