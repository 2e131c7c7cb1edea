"""An impaired link between two loopback sockets: netsim's real UDP proxy, as a library.

What it owns: building the ``ProxyConfig`` of a grid cell (``proxy_config``), running the
proxy inside the benchmark's own Trio run (``open_impaired_link``), and the wire-byte
account (``WireCount``, ``wire_count``).

Rules it keeps:

* The proxy listens on ``127.0.0.1:0`` and relays to one target; the same ``LinkProfile``
  impairs each direction independently, seeded by ``seed`` (netsim derives one generator
  per direction), so a cell, a seed and the same datagrams give the same drops.
* Wire bytes are counted **at the proxy's input**, over both directions: every datagram
  the client or the server sent (lost or not) costs its UDP payload plus
  ``IP_UDP_HEADER_BYTES`` (20 bytes of IPv4 header and 8 of UDP header). TARGETS.md counts
  the TCP and QUIC rows the same way, with their own IP/TCP or IP/UDP headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import trio

from netsim.proxy import ImpairmentProxy, ProxyConfig, ProxyStatistics
from tools.benchmarks.capture import LOOPBACK
from tools.benchmarks.link_grid import LinkCell

__all__ = [
    "IP_UDP_HEADER_BYTES",
    "Address",
    "WireCount",
    "open_impaired_link",
    "proxy_config",
    "wire_count",
]

IP_UDP_HEADER_BYTES: Final = 28
"""IPv4 (20 bytes, no options) + UDP (8 bytes) headers, charged to every datagram."""

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class WireCount:
    """Datagrams and bytes that entered the proxy, both directions together.

    Attributes:
        datagrams: how many datagrams.
        wire_bytes: their UDP payloads plus ``IP_UDP_HEADER_BYTES`` each.
    """

    datagrams: int = 0
    wire_bytes: int = 0

    def __sub__(self, earlier: WireCount) -> WireCount:
        return WireCount(self.datagrams - earlier.datagrams, self.wire_bytes - earlier.wire_bytes)


def wire_count(statistics: ProxyStatistics) -> WireCount:
    """The wire account of a proxy snapshot (see the module docstring).

    Args:
        statistics: ``ImpairmentProxy.statistics()``.

    Returns:
        Datagrams and wire bytes received by the proxy so far, both directions.
    """
    datagrams = statistics.up.packets_in + statistics.down.packets_in
    payload_bytes = statistics.up.bytes_in + statistics.down.bytes_in
    return WireCount(datagrams, payload_bytes + IP_UDP_HEADER_BYTES * datagrams)


def proxy_config(cell: LinkCell, target: Address, seed: int) -> ProxyConfig:
    """The proxy configuration of ``cell``: listen on loopback, relay to ``target``.

    Args:
        cell: the link to emulate (its profile goes to both directions).
        target: the server's address.
        seed: the root of the proxy's random decisions.
    """
    return ProxyConfig(
        listen=(LOOPBACK, 0),
        target=target,
        up=cell.profile,
        down=cell.profile,
        seed=seed,
    )


@asynccontextmanager
async def open_impaired_link(
    cell: LinkCell, target: Address, seed: int
) -> AsyncIterator[tuple[ImpairmentProxy, Address]]:
    """Run a proxy impairing the way to ``target`` for the duration of the block.

    Args:
        cell: the link to emulate.
        target: where the proxy relays (the server).
        seed: the root of the proxy's random decisions.

    Yields:
        The proxy (read ``statistics()`` at any time) and the address clients send to.

    Raises:
        OSError: the proxy cannot bind its socket.
    """
    proxy = ImpairmentProxy(proxy_config(cell, target, seed))
    async with trio.open_nursery() as nursery:
        address: Address = await nursery.start(proxy.serve)
        yield proxy, address
        nursery.cancel_scope.cancel()
