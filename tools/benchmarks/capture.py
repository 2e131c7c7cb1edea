"""What the benchmarks record while they run: datagrams at each socket, and random draws.

What it owns: ``CapturingSocket`` (a trio UDP socket that remembers every datagram it sent
and received, with the Trio time), ``RecordingRng`` (a seeded ``rng`` for udpim's core
that remembers its draws) and ``bind_loopback_udp``.

Rules it keeps:

* Loopback only: sockets bind ``127.0.0.1`` port 0.
* Recording is an append of ``(trio.current_time(), bytes)`` to a list: no copy, no
  parsing, so it costs the measured code well under a microsecond per datagram. The
  analysis (``packet_log``) runs after the workload.
* A sent datagram is recorded before ``sendto`` (the proxy may see it before ``sendto``
  returns); a received one after ``recvfrom`` returns, before udpim sees it.
* ``CapturingSocket`` satisfies ``udpim.net.udp.DatagramSocket`` structurally, so an
  ``EndpointDriver`` runs on it unchanged.
"""

from __future__ import annotations

import contextlib
import random
import socket
from dataclasses import dataclass, field
from typing import Any, Final

import trio

__all__ = [
    "LOOPBACK",
    "SOCKET_BUFFER_BYTES",
    "CapturingSocket",
    "Datagram",
    "RecordingRng",
    "bind_loopback_udp",
]

LOOPBACK: Final = "127.0.0.1"
SOCKET_BUFFER_BYTES: Final = 4 * 1024 * 1024
"""Kernel buffers asked for (the OS may cap them): a 1 MiB burst must not overflow them,
or the kernel would add loss the benchmark did not ask for."""

Datagram = tuple[float, bytes]
"""``(trio time, datagram bytes)``."""


async def bind_loopback_udp() -> trio.socket.SocketType:
    """A UDP socket bound to ``127.0.0.1:0`` with large kernel buffers.

    Raises:
        OSError: the socket cannot be created or bound.
    """
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):  # the OS may refuse or cap the size
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
    try:
        await sock.bind((LOOPBACK, 0))
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(slots=True, eq=False)
class CapturingSocket:
    """A trio UDP socket that records every datagram, for the tail-latency profile.

    Attributes:
        sent: every datagram handed to ``sendto``, in order.
        received: every datagram ``recvfrom`` returned, in order.
    """

    sock: trio.socket.SocketType
    sent: list[Datagram] = field(default_factory=list)
    received: list[Datagram] = field(default_factory=list)

    async def sendto(self, data: bytes, address: Any, /) -> int:
        """Record ``data``, then send it (trio's ``sendto``)."""
        self.sent.append((trio.current_time(), data))
        return await self.sock.sendto(data, address)

    async def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]:
        """Receive one datagram (trio's ``recvfrom``) and record it."""
        data, source = await self.sock.recvfrom(bufsize)
        self.received.append((trio.current_time(), data))
        return data, source

    def getsockname(self) -> Any:
        """The bound address."""
        return self.sock.getsockname()

    def close(self) -> None:
        """Close the socket; the records stay readable."""
        self.sock.close()


class RecordingRng:
    """A seeded ``rng(n) -> bytes`` for udpim's core that keeps every draw.

    The responder's handshake draws its ephemeral key as one 32-byte call; replaying
    that draw lets ``packet_log`` rebuild the session's secrets from the captured
    handshake, and so decrypt the capture.

    Args:
        seed: the generator's seed.
    """

    __slots__ = ("_random", "draws")

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self.draws: list[bytes] = []

    def __call__(self, count: int) -> bytes:
        """``count`` random bytes (recorded)."""
        data = self._random.randbytes(count)
        self.draws.append(data)
        return data
