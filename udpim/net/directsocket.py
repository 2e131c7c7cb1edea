"""``DirectSocket``: synchronous, non-blocking calls on a real trio UDP socket's descriptor.

What it owns: a stdlib ``socket.socket`` *view* of the file descriptor of a bound
``trio.socket.SocketType``, for ``EndpointDriver``'s fast path (``udpim.net.udp``), and
the two waits that go with it.

Why: trio's ``await sock.recvfrom()`` / ``await sock.sendto()`` yield to the scheduler
on every call, even when the kernel has a datagram ready or room to send: a scheduler
pass and an ``epoll_wait`` per datagram, which on a busy endpoint cost as much as the
driver's own work. Here the driver calls ``recvfrom_nowait`` until the kernel says
``BlockingIOError``, then ``await wait_readable()``; it calls ``sendto_nowait`` and
only on ``BlockingIOError`` awaits ``wait_writable()``. The waits are trio's own
(``trio.lowlevel.wait_readable`` / ``wait_writable`` on the trio socket), so closing
the trio socket still wakes them (``notify_closing``).

Rules it keeps:

* The trio socket owns the descriptor. The view never closes it: ``detach`` releases
  it, and ``open`` is only called by a running driver, which detaches in a ``finally``
  (a view collected without ``detach`` would close the owner's descriptor).
* Only a real ``trio.socket.SocketType`` with an open descriptor gets a view; anything
  else (netsim's virtual socket, a recording wrapper) gets None and the driver keeps
  the awaitable path, unchanged, so simulations stay deterministic.
* The calls never yield: callers provide their own checkpoints for fairness.
* Once the owner is closed (by another task, while the driver waits on something
  else), the view is not used again: its descriptor number may already belong to
  another file. The calls raise ``OSError(EBADF)``, as trio's own methods would.
"""

from __future__ import annotations

import errno
import socket
from typing import Any, final

import trio

__all__ = ["DirectSocket"]


@final
class DirectSocket:
    """Non-blocking stdlib calls on the descriptor of a trio UDP socket (see module doc).

    Use ``DirectSocket.open``; call ``detach`` when done.
    """

    __slots__ = ("_owner", "_recvfrom", "_sendto", "_view")

    def __init__(self, owner: trio.socket.SocketType, view: socket.socket) -> None:
        self._owner = owner
        self._view = view
        self._recvfrom = view.recvfrom
        self._sendto = view.sendto

    @classmethod
    def open(cls, sock: object) -> DirectSocket | None:
        """A view of ``sock``'s descriptor, or None if ``sock`` is not an open trio socket."""
        if not isinstance(sock, trio.socket.SocketType):
            return None
        fd = sock.fileno()
        if fd < 0:
            return None
        view = socket.socket(sock.family, sock.type, sock.proto, fileno=fd)
        view.setblocking(False)  # trio's descriptor already is; make the view agree
        return cls(sock, view)

    def recvfrom_nowait(self, bufsize: int) -> tuple[bytes, Any]:
        """One queued datagram and its source.

        Raises:
            BlockingIOError: no datagram is queued.
            OSError: a socket error; EBADF once the owner is closed (the view's
                descriptor number may name another file by then, so it is not used).
        """
        if self._owner.fileno() < 0:
            raise OSError(errno.EBADF, "the socket was closed")
        return self._recvfrom(bufsize)

    def sendto_nowait(self, data: bytes, address: Any) -> int:
        """Send one datagram.

        Raises:
            BlockingIOError: the send buffer is full.
            OSError: a socket error; EBADF once the owner is closed.
        """
        if self._owner.fileno() < 0:
            raise OSError(errno.EBADF, "the socket was closed")
        return self._sendto(data, address)

    async def wait_readable(self) -> None:
        """Wait until a datagram is queued (trio's ``wait_readable`` on the owner).

        Raises:
            trio.ClosedResourceError: the owner was closed meanwhile.
        """
        await trio.lowlevel.wait_readable(self._owner)

    async def wait_writable(self) -> None:
        """Wait until the send buffer has room (trio's ``wait_writable`` on the owner).

        Raises:
            trio.ClosedResourceError: the owner was closed meanwhile.
        """
        await trio.lowlevel.wait_writable(self._owner)

    def detach(self) -> None:
        """Release the descriptor without closing it (the trio socket owns it)."""
        self._view.detach()
