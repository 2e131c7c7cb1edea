"""Simulated hosts and their Trio-style UDP sockets.

What this module owns: the host side of netsim. :class:`Host` holds a host's
current address and NAT, its up/down link directions and its port table;
:class:`VirtualUDPSocket` is everything an application can observe through the
subset of ``trio.socket`` UDP methods it uses (``bind``, ``sendto``,
``recvfrom``, ``getsockname``, ``close`` and the context manager). Topology,
routing and impairment belong to :mod:`netsim.network`, which creates hosts
(``Network.add_host``) and re-exports :class:`Host`.

Rules kept here (each matches a real Linux loopback socket under Trio 0.35, and
tests/netsim/test_socket_conformance.py runs the same test bodies against both):

* ``recvfrom``, ``sendto`` and ``bind`` are checkpoints: they raise
  ``trio.Cancelled`` if already cancelled and otherwise yield once, even when a
  datagram is already queued (Trio's ``checkpoint_if_cancelled`` then
  ``cancel_shielded_checkpoint`` pattern; a completed send is never undone).
* An unbound socket's name is ``("0.0.0.0", 0)``; ``sendto`` on it first binds
  an ephemeral port (32768-60999, drawn from the host's seeded generator), and
  the name becomes ``("0.0.0.0", port)``.
* ``bind`` accepts ``"0.0.0.0"``/``""`` or the host's current address and a port
  0-65535 (0 = ephemeral). Port in use on the host: ``OSError(EADDRINUSE)``;
  bound twice: ``OSError(EINVAL)``; foreign address: ``OSError(EADDRNOTAVAIL)``.
* ``sendto`` of more than 65507 bytes: ``OSError(EMSGSIZE)``; port 0:
  ``OSError(EINVAL)``; port out of range: ``OverflowError``. A datagram to an
  address with no listener vanishes silently (counted as ``port-unreachable``).
* ``recvfrom(bufsize)`` returns at most ``bufsize`` bytes; the rest of that
  datagram is discarded (UDP truncation). Negative ``bufsize``: ``ValueError``.
* Every operation after ``close`` raises ``OSError(EBADF)``; a task blocked in
  ``recvfrom`` when another task closes the socket gets
  ``trio.ClosedResourceError``. ``close`` is idempotent.
* The receive buffer is bounded (``rcvbuf_bytes`` of payload): a datagram
  arriving while more than that is queued is dropped and counted (``rcvbuf``),
  like a full SO_RCVBUF on Linux.

Theory of operation: the network appends ``(data, source)`` to the socket's
deque and unparks one waiter from a FIFO ``trio.lowlevel.ParkingLot``. The woken
task takes the head of the queue when it runs (or parks again if another
receiver took it first), so a cancelled receiver never loses a datagram.
"""

from __future__ import annotations

import errno
import os
import random
from collections import deque
from collections.abc import Callable

import trio

from netsim.closing import Closing
from netsim.models import LinkDirection

__all__ = [
    "DEFAULT_RCVBUF_BYTES",
    "EPHEMERAL_PORT_MAX",
    "EPHEMERAL_PORT_MIN",
    "MAX_DATAGRAM_BYTES",
    "Address",
    "Host",
    "VirtualUDPSocket",
]

Address = tuple[str, int]

MAX_DATAGRAM_BYTES = 65507
"""Largest UDP payload over IPv4 (65535 - 20 IP header - 8 UDP header)."""

DEFAULT_RCVBUF_BYTES = 212992
"""Default receive buffer (Linux ``net.core.rmem_default``), counted as payload bytes."""

EPHEMERAL_PORT_MIN = 32768
EPHEMERAL_PORT_MAX = 60999
ANY_ADDRESS = "0.0.0.0"


def _os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _check_port(port: object, what: str) -> int:
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"{what}(): port must be an integer, not {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{what}(): port must be 0-65535.")
    return port


def _check_address(address: object, what: str) -> Address:
    if not isinstance(address, tuple) or len(address) != 2 or not isinstance(address[0], str):
        raise TypeError(f"{what}(): AF_INET address must be a tuple (host, port)")
    return address[0], _check_port(address[1], what)


class VirtualUDPSocket(Closing):
    """A UDP socket on a simulated host; create it with ``Host.socket()``.

    Mirrors ``trio.socket.socket(AF_INET, SOCK_DGRAM)`` for ``bind``,
    ``sendto``, ``recvfrom``, ``getsockname``, ``close`` and ``with``.

    Args:
        host: the owning host.
        rcvbuf_bytes: receive buffer limit in payload bytes.
    """

    def __init__(self, host: Host, *, rcvbuf_bytes: int = DEFAULT_RCVBUF_BYTES) -> None:
        if rcvbuf_bytes < 0:
            raise ValueError(f"rcvbuf_bytes must be >= 0, got {rcvbuf_bytes}")
        self._host = host
        self._rcvbuf_bytes = rcvbuf_bytes
        self._queue: deque[tuple[bytes, Address]] = deque()
        self._queued_bytes = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._bound_ip = ANY_ADDRESS
        self._port = 0
        self._closed = False

    # -- application API (trio.socket subset) ---------------------------------

    async def bind(self, address: Address) -> None:
        """Bind to ``(ip, port)``: ip ``"0.0.0.0"``/``""`` or the host's address.

        Raises:
            OSError: EBADF (closed), EINVAL (already bound), EADDRNOTAVAIL
                (not this host's address), EADDRINUSE (port taken on this host).
            OverflowError: port outside 0-65535.
            TypeError: malformed address.
        """
        ip, port = _check_address(address, "bind")
        await trio.lowlevel.checkpoint()
        self._check_open()
        if self._port != 0:
            raise _os_error(errno.EINVAL)
        if ip not in ("", ANY_ADDRESS, self._host.address):
            raise _os_error(errno.EADDRNOTAVAIL)
        self._port = self._host._bind_socket(self, port)
        self._bound_ip = ip or ANY_ADDRESS

    async def sendto(self, data: bytes | bytearray | memoryview, address: Address) -> int:
        """Send one datagram; binds an ephemeral port first if unbound.

        Args:
            data: the payload (at most 65507 bytes).
            address: destination ``(ip, port)``.

        Returns:
            The number of bytes sent (always ``len(data)``).

        Raises:
            OSError: EBADF (closed), EMSGSIZE (too large), EINVAL (port 0).
            OverflowError: port outside 0-65535.
            TypeError: data not bytes-like or malformed address.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            payload = bytes(memoryview(data))
            dst = _check_address(address, "sendto")
            self._check_open()
            if len(payload) > MAX_DATAGRAM_BYTES:
                raise _os_error(errno.EMSGSIZE)
            if dst[1] == 0:
                raise _os_error(errno.EINVAL)
            if self._port == 0:
                self._port = self._host._bind_socket(self, 0)
            src_ip = self._host.address if self._bound_ip == ANY_ADDRESS else self._bound_ip
            self._host._send_datagram((src_ip, self._port), payload, dst)
            return len(payload)
        finally:
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def recvfrom(self, bufsize: int) -> tuple[bytes, Address]:
        """Receive one datagram, waiting until one arrives.

        Args:
            bufsize: maximum bytes to return; the rest of the datagram is lost.

        Returns:
            ``(data, source_address)``; the source is as seen after NAT.

        Raises:
            OSError: EBADF if the socket is closed.
            trio.ClosedResourceError: if another task closes it while waiting.
            ValueError: negative ``bufsize``.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._queue or self._closed or bufsize < 0:
            try:
                return self._take(bufsize)
            finally:
                await trio.lowlevel.cancel_shielded_checkpoint()
        while not self._queue:
            await self._lot.park()
            if self._closed:
                raise trio.ClosedResourceError("another task closed this socket")
        return self._take(bufsize)

    def getsockname(self) -> Address:
        """Return the bound ``(ip, port)``; ``("0.0.0.0", 0)`` when unbound.

        Raises:
            OSError: EBADF if the socket is closed.
        """
        self._check_open()
        return self._bound_ip, self._port

    def close(self) -> None:
        """Close the socket (idempotent); queued datagrams are discarded."""
        if self._closed:
            return
        self._closed = True
        if self._port != 0:
            self._host._unbind_socket(self, self._port)
        self._queue.clear()
        self._queued_bytes = 0
        self._lot.unpark_all()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._bound_ip}:{self._port}"
        return f"<VirtualUDPSocket {state}>"

    # -- network side -----------------------------------------------------------

    def accepts(self, ip: str) -> bool:
        """Return whether a datagram addressed to ``ip`` matches this socket's binding."""
        return self._bound_ip == ANY_ADDRESS or self._bound_ip == ip

    def enqueue(self, data: bytes, source: Address) -> bool:
        """Queue a delivered datagram and wake one receiver (called by the network).

        Args:
            data: the payload.
            source: the sender's address as seen by this socket.

        Returns:
            False (and nothing queued) if the receive buffer is full: like
            Linux, a datagram is accepted while the bytes already queued do not
            exceed ``rcvbuf_bytes``, so the last one accepted may overshoot it.
        """
        if self._queued_bytes > self._rcvbuf_bytes:
            return False
        self._queue.append((data, source))
        self._queued_bytes += len(data)
        self._lot.unpark()
        return True

    # -- internals --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise _os_error(errno.EBADF)

    def _take(self, bufsize: int) -> tuple[bytes, Address]:
        self._check_open()
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        data, source = self._queue.popleft()
        self._queued_bytes -= len(data)
        return data[:bufsize], source


SendFunction = Callable[["Host", Address, bytes, Address], None]


class Host:
    """A simulated machine: one address, a port table, an up and a down link.

    Create hosts with ``Network.add_host``; the network moves them with
    ``Network.move_host`` (sockets keep their ports).

    Attributes:
        name: unique host name.
    """

    def __init__(
        self,
        name: str,
        address: str,
        nat: str | None,
        *,
        links: tuple[LinkDirection, LinkDirection],
        port_rng: random.Random,
        send: SendFunction,
    ) -> None:
        self.name = name
        self._address = address
        self._nat = nat
        self._up, self._down = links
        self._port_rng = port_rng
        self._send = send
        self._sockets: dict[int, VirtualUDPSocket] = {}

    @property
    def address(self) -> str:
        """The host's current address (private if behind a NAT)."""
        return self._address

    @property
    def nat(self) -> str | None:
        """Name of the NAT the host is behind, or None for a public host."""
        return self._nat

    def socket(self, *, rcvbuf_bytes: int = DEFAULT_RCVBUF_BYTES) -> VirtualUDPSocket:
        """Create an unbound UDP socket on this host (like ``trio.socket.socket()``).

        Args:
            rcvbuf_bytes: receive buffer size in payload bytes.

        Raises:
            ValueError: negative ``rcvbuf_bytes``.
        """
        return VirtualUDPSocket(self, rcvbuf_bytes=rcvbuf_bytes)

    def __repr__(self) -> str:
        return f"<Host {self.name} {self._address} nat={self._nat}>"

    # -- package internals (sockets and the network) ----------------------------

    def _bind_socket(self, sock: VirtualUDPSocket, port: int) -> int:
        if port == 0:
            port = self._ephemeral_port()
        elif port in self._sockets:
            raise _os_error(errno.EADDRINUSE)
        self._sockets[port] = sock
        return port

    def _ephemeral_port(self) -> int:
        for _ in range(64):
            port = self._port_rng.randint(EPHEMERAL_PORT_MIN, EPHEMERAL_PORT_MAX)
            if port not in self._sockets:
                return port
        for port in range(EPHEMERAL_PORT_MIN, EPHEMERAL_PORT_MAX + 1):
            if port not in self._sockets:
                return port
        raise _os_error(errno.EADDRINUSE)

    def _unbind_socket(self, sock: VirtualUDPSocket, port: int) -> None:
        if self._sockets.get(port) is sock:
            del self._sockets[port]

    def _send_datagram(self, src: Address, data: bytes, dst: Address) -> None:
        self._send(self, src, data, dst)

    def _listener(self, address: Address) -> VirtualUDPSocket | None:
        """Return the socket that receives datagrams addressed to ``address``."""
        sock = self._sockets.get(address[1])
        return sock if sock is not None and sock.accepts(address[0]) else None
