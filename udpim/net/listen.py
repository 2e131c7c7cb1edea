"""Binding the real UDP socket a service listens on, with one-line errors.

Services accept an injected socket (netsim's virtual one in simulations); without one
they call ``open_udp_socket`` here, which turns ``OSError`` into ``ListenError``
("cannot listen on 127.0.0.1:7575: address in use"); ``open_owned_udp_socket`` also
hands the socket to the caller's exit stack to close.

The socket asks the kernel for a receive queue of ``SOCKET_RECEIVE_BUFFER_BYTES``. Linux's
default (``net.core.rmem_default``, usually 208 KiB) holds only about 300 small datagrams,
since each is charged about 700 bytes of kernel bookkeeping: a hub that logs in a
thousand daemons a second, or pauses for a garbage collection, overflows it and the
kernel drops what does not fit (5,525 datagrams while 50,000 sessions logged in, in
``tools/bench idle``). The kernel caps the request at ``net.core.rmem_max``; the
socket still works if it refuses.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from contextlib import AsyncExitStack
from typing import Final

import trio

from udpim.net.errors import ListenError
from udpim.settings import Address, format_address

__all__ = ["SOCKET_RECEIVE_BUFFER_BYTES", "open_owned_udp_socket", "open_udp_socket"]

SOCKET_RECEIVE_BUFFER_BYTES: Final = 4 * 1024 * 1024
"""The receive queue asked of the kernel (see the module docstring)."""

_REASONS = {
    errno.EADDRINUSE: "address in use",
    errno.EADDRNOTAVAIL: "address not available on this machine",
    errno.EACCES: "permission denied",
}


async def open_udp_socket(address: Address) -> trio.socket.SocketType:
    """A trio UDP (IPv4) socket bound to ``address``.

    Raises:
        ListenError: the address cannot be bound (one line naming it and why).
    """
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):  # a smaller queue is a worse socket, not an error
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_RECEIVE_BUFFER_BYTES)
    try:
        await sock.bind(address)
    except (OSError, OverflowError) as exc:
        sock.close()
        code = exc.errno if isinstance(exc, OSError) else None
        reason = _REASONS.get(code or 0) or getattr(exc, "strerror", None) or str(exc)
        raise ListenError(f"cannot listen on {format_address(address)}: {reason}") from None
    return sock


async def open_owned_udp_socket(stack: AsyncExitStack, address: Address) -> trio.socket.SocketType:
    """``open_udp_socket(address)``, closed when ``stack`` closes.

    Raises:
        ListenError: the address cannot be bound.
    """
    sock = await open_udp_socket(address)
    stack.callback(sock.close)
    return sock
