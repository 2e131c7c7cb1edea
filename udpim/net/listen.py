"""Binding the real UDP socket a service listens on, with one-line errors.

Services accept an injected socket (netsim's virtual one in simulations); without one
they call ``open_udp_socket`` here, which turns ``OSError`` into ``ListenError``
("cannot listen on 127.0.0.1:7575: address in use"); ``open_owned_udp_socket`` also
hands the socket to the caller's exit stack to close.
"""

from __future__ import annotations

import errno
from contextlib import AsyncExitStack

import trio

from udpim.net.errors import ListenError
from udpim.settings import Address, format_address

__all__ = ["open_owned_udp_socket", "open_udp_socket"]

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
