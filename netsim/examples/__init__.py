"""Example netsim apps: `ping` (naive UDP ping) and `stopwait` (toy stop-and-wait sender).

They never import udpim. Their protocol code takes a socket factory and uses only the UDP
socket subset shared by netsim's `VirtualUDPSocket` and trio's real socket (`DatagramSocket`),
so the same classes run inside a simulation and on loopback. App events go to an `EventSink`
(``sink(event, **fields)``), which the app glue maps to ``SimContext.record``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Address = tuple[str, int]
EventSink = Callable[..., None]


class DatagramSocket(Protocol):
    """The UDP socket subset the examples use (netsim's VirtualUDPSocket and trio's socket)."""

    async def bind(self, address: Address, /) -> None: ...
    async def sendto(self, data: bytes, address: Address, /) -> int: ...
    async def recvfrom(self, bufsize: int, /) -> tuple[bytes, Address]: ...
    def getsockname(self) -> Address: ...
    def close(self) -> None: ...


SocketFactory = Callable[[], DatagramSocket]
