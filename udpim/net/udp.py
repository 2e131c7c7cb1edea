"""The Trio driver around an ``Endpoint``: one socket, one receive loop, one timer loop.

Rules (../shared/STYLE.md section C):

* No task per session: a hub holds 100 000 sessions on one endpoint, and the endpoint
  keeps all their deadlines in one heap. This driver runs exactly two tasks.
* After every input (a datagram, a timer, an application call) the driver drains the
  endpoint's events to the handler at once, and then *flushes* the way aioquic's
  ``transmit()`` does: drain events, send every datagram the endpoint has, re-read
  the deadline.
* Datagrams leave in the order the endpoint numbered them: whoever sends takes
  ``datagrams_to_send`` and sends it all under one FIFO lock. (Two tasks interleaving
  their sends reordered packets on the wire; the peer's acks then declared the
  overtaken packets lost, collapsing the congestion window and switching on FEC, with
  no loss at all on the link.)
* Under load, inputs coalesce: the datagrams read in one go are answered by one
  flush, with their frames and acknowledgements packed into fewer datagrams.
* Time comes only from ``trio.current_time()``, so the same code runs on a real clock
  and on Trio's ``MockClock`` (netsim). The wall clock is read only for the handshake
  timestamp, through an injectable function.
* The socket is injected and typed by ``DatagramSocket``, a Protocol named after trio's
  own socket methods, so a real trio UDP socket and netsim's virtual socket both fit
  without udpim importing netsim.
* The event handler is synchronous and must not block: it runs inside the receive
  loop. Work that needs to wait (disk) is handed to another task by the handler.
* Backpressure: an optional ``input_gate`` is awaited before every read from the
  socket, so an owner whose downstream work (the store) is backlogged stops reading;
  the socket buffer then fills and the kernel drops, which the sessions' loss recovery
  repairs. (A gate that is open returns without yielding, so awaiting it per datagram
  costs nothing.)
* Datagrams that are not udpim version 1 (``on_foreign``) may be answered by the owner
  itself (the hub-key query of ``udpim.net.keyquery``); by default they go to the
  endpoint, which drops and counts them.
* Cancellation: a cancelled driver loses at most the datagrams it was about to send
  (the session's loss recovery resends their frames) and never a datagram it has read:
  a datagram is fed to the endpoint in the same step that reads it.

Theory of operation. Two paths, chosen when ``serve`` starts:

* **Direct** (a real ``trio.socket.SocketType``; ``udpim.net.directsocket``). The
  receive loop waits for the socket to be readable, then reads datagrams with
  non-blocking ``recvfrom`` until the kernel has no more or ``RECEIVE_BATCH_DATAGRAMS``
  were read, feeding each to the endpoint and draining its events; then it flushes
  once itself (non-blocking ``sendto``; only a full send buffer makes it await
  ``wait_writable``), and if the endpoint's next deadline moved earlier, pulls the
  timer loop's wait forward by setting its cancel scope's deadline: no wake-up, task
  switch or ``trio.Event`` per datagram. Every batch starts with that wait, a
  checkpoint, so a flood cannot starve the other tasks. The timer loop wakes only for
  deadlines and application calls. If the input gate holds the loop in the middle of
  a batch, the replies to the datagrams read so far wait for the end of the batch or
  the timer loop's next flush, whichever comes first.
* **Awaitable** (any other ``DatagramSocket``, e.g. netsim's virtual socket): one
  ``await recvfrom`` per datagram; the receive loop drains events and wakes the timer
  loop, which flushes with one ``await sendto`` per datagram, so datagrams read while
  the timer loop is still sending are answered together by its next flush. This is the
  path tests/net and tests/sim run in virtual time; it is unchanged, so they stay
  deterministic.

``flush``, ``send_datagram`` and ``aclose`` use the direct path while ``serve`` runs
and the awaitable one otherwise (``aclose`` after ``serve`` ended, for instance).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, final

import trio

from udpim.core.endpoint import Endpoint
from udpim.core.errors import LocalProtocolError
from udpim.core.events import Event
from udpim.core.frames import CloseReason
from udpim.core.session import Session
from udpim.core.wire import VERSION
from udpim.net.directsocket import DirectSocket

__all__ = ["DatagramSocket", "EndpointDriver", "EventHandler", "ForeignHandler"]

log = logging.getLogger("udpim.net.udp")

Address = tuple[str, int]
EventHandler = Callable[[Session, Event], None]
ForeignHandler = Callable[[bytes, Address], bytes | None]
"""Called with a datagram that is not udpim version 1 and its source; a returned reply is
sent back to the source. Must not block."""

RECEIVE_BUFFER_BYTES = 65536
"""Largest datagram read from the socket; bigger ones are truncated and then dropped."""

RECEIVE_BATCH_DATAGRAMS = 64
"""Most datagrams the direct path reads before it flushes and lets other tasks run."""

CLOSE_TIMEOUT_S = 1.0
"""How long ``aclose`` waits to flush CLOSE frames before giving up."""


class DatagramSocket(Protocol):
    """The part of trio's UDP socket API the driver uses.

    The methods are declared as returning awaitables (not as ``async def``) so that
    ``trio.socket.SocketType``, whose stubs say ``Awaitable``, fits as well as netsim's
    coroutine methods.
    """

    def sendto(self, data: bytes, address: Any, /) -> Awaitable[int]: ...

    def recvfrom(self, bufsize: int, /) -> Awaitable[tuple[bytes, Any]]: ...

    def getsockname(self) -> Any: ...

    def close(self) -> None: ...


@final
class EndpointDriver:
    """Runs an ``Endpoint`` on a socket under Trio.

    Args:
        endpoint: the sans-IO endpoint.
        sock: a bound UDP socket (real or virtual).
        on_event: called with every ``(session, event)``; must not block.
        wall_clock_ns: wall-clock source for handshake timestamps.
        input_gate: awaited before each read from the socket (backpressure).
        on_foreign: handles datagrams that are not udpim version 1 (see ``ForeignHandler``).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        sock: DatagramSocket,
        on_event: EventHandler,
        *,
        wall_clock_ns: Callable[[], int] = time.time_ns,
        input_gate: Callable[[], Awaitable[None]] | None = None,
        on_foreign: ForeignHandler | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._sock = sock
        self._on_event = on_event
        self._wall_clock_ns = wall_clock_ns
        self._input_gate = input_gate
        self._on_foreign = on_foreign
        self._wake = trio.Event()
        self._send_lock = trio.Lock()
        self._direct: DirectSocket | None = None  # set while ``serve`` runs on a real socket
        self._timer_scope: trio.CancelScope | None = None  # the timer loop's wait, if waiting
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.send_errors = 0

    @property
    def address(self) -> Address:
        """The socket's bound address."""
        host, port = self._sock.getsockname()[:2]
        return (str(host), int(port))

    async def serve(
        self, *, task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the receive and timer loops until cancelled; reports the bound address."""
        direct = DirectSocket.open(self._sock)
        self._direct = direct
        try:
            async with trio.open_nursery() as nursery:
                if direct is None:
                    nursery.start_soon(self._receive_loop)
                else:
                    nursery.start_soon(self._receive_batches, direct)
                nursery.start_soon(self._timer_loop)
                task_status.started(self.address)
        finally:
            self._direct = None
            if direct is not None:
                direct.detach()

    # --- the application's calls (synchronous; the timer loop flushes) -----------------

    def connect(self, peer_public: bytes, address: Address) -> Session:
        """Start a session to ``peer_public`` at ``address``; see ``Endpoint.connect``."""
        session = self.endpoint.connect(
            peer_public, address, trio.current_time(), self._wall_clock_ns()
        )
        self._wake.set()
        return session

    def send_message(self, session: Session, payload: bytes) -> int:
        """Queue a message; see ``Endpoint.send_message``."""
        number = self.endpoint.send_message(session, payload, trio.current_time())
        self._wake.set()
        return number

    def close_session(
        self, session: Session, code: CloseReason = CloseReason.NORMAL, text: str = ""
    ) -> None:
        """Close one session; see ``Endpoint.close_session``."""
        self.endpoint.close_session(session, trio.current_time(), code, text)
        self._wake.set()

    async def send_datagram(self, data: bytes, address: Address) -> None:
        """Send one datagram outside any session (e.g. a hub-key query); errors are counted."""
        direct = self._direct
        try:
            if direct is None:
                await self._sock.sendto(data, address)
            else:
                while True:
                    try:
                        direct.sendto_nowait(data, address)
                        break
                    except BlockingIOError:
                        await direct.wait_writable()
            self.datagrams_sent += 1
        except OSError as exc:
            self.send_errors += 1
            log.debug("send to %s failed: %s", address, exc)

    def request_flush(self) -> None:
        """Ask the timer loop to flush soon (after events were consumed elsewhere)."""
        self._wake.set()

    async def aclose(self, code: CloseReason = CloseReason.SHUTDOWN) -> None:
        """Send CLOSE on every open session and flush, within ``CLOSE_TIMEOUT_S``."""
        now = trio.current_time()
        for session in self.endpoint.sessions():
            try:
                self.endpoint.close_session(session, now, code)
            except LocalProtocolError:  # already closing or closed: nothing to say
                continue
        with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
            scope.shield = True
            await self.flush()

    # --- loops -----------------------------------------------------------------------

    async def flush(self) -> None:
        """Drain events to the handler, send every pending datagram, then let the timer
        loop re-read the deadline."""
        await self._drain_and_send()
        self._wake.set()

    def _drain_events(self) -> None:
        endpoint = self.endpoint
        while (item := endpoint.next_event()) is not None:
            self._on_event(*item)

    async def _drain_and_send(self) -> None:
        self._drain_events()
        lock = self._send_lock
        if self._direct is None:
            async with lock:  # FIFO: datagrams leave in packet-number order
                for data, address in self.endpoint.datagrams_to_send(trio.current_time()):
                    await self.send_datagram(data, address)
            return
        try:  # the direct path yields only if another task is sending or the buffer is full
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            for data, address in self.endpoint.datagrams_to_send(trio.current_time()):
                await self.send_datagram(data, address)
        finally:
            lock.release()

    def _pull_timer_forward(self) -> None:
        """After a flush outside the timer loop: make its wait end by the new deadline."""
        scope = self._timer_scope
        if scope is None:
            return  # not waiting: it re-reads the deadline before it waits again
        deadline = self.endpoint.get_timer()
        if deadline is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def _address(self, source: Any) -> Address:
        return (str(source[0]), int(source[1]))

    async def _receive_loop(self) -> None:
        """The awaitable path: one ``await recvfrom`` per datagram; the timer loop sends."""
        endpoint = self.endpoint
        gate = self._input_gate
        while True:
            if gate is not None:
                await gate()
            data, source = await self._sock.recvfrom(RECEIVE_BUFFER_BYTES)
            self.datagrams_received += 1
            address = self._address(source)
            if self._on_foreign is not None and data and data[0] >> 6 != VERSION:
                reply = self._on_foreign(data, address)
                if reply is not None:
                    await self.send_datagram(reply, address)
                continue
            endpoint.receive_datagram(data, address, trio.current_time())
            self._drain_events()
            self._wake.set()

    async def _receive_batches(self, direct: DirectSocket) -> None:
        """The direct path: read until the kernel has no more (or a batch is full), then
        flush once; see the module docstring."""
        endpoint = self.endpoint
        gate = self._input_gate
        on_foreign = self._on_foreign
        recvfrom_nowait = direct.recvfrom_nowait
        while True:
            # Always a checkpoint (it parks until epoll reports the socket), so a flood
            # cannot starve the other tasks: they run between two batches.
            await direct.wait_readable()
            read = 0
            while read < RECEIVE_BATCH_DATAGRAMS:
                if gate is not None:
                    await gate()
                try:
                    data, source = recvfrom_nowait(RECEIVE_BUFFER_BYTES)
                except BlockingIOError:
                    break
                read += 1
                self.datagrams_received += 1
                address = self._address(source)
                if on_foreign is not None and data and data[0] >> 6 != VERSION:
                    reply = on_foreign(data, address)
                    if reply is not None:
                        await self.send_datagram(reply, address)
                    continue
                endpoint.receive_datagram(data, address, trio.current_time())
                self._drain_events()
            if read:
                await self._drain_and_send()
                self._pull_timer_forward()

    async def _timer_loop(self) -> None:
        endpoint = self.endpoint
        while True:
            deadline = endpoint.get_timer()
            with trio.move_on_at(math.inf if deadline is None else deadline) as scope:
                self._timer_scope = scope
                try:
                    await self._wake.wait()
                finally:
                    self._timer_scope = None
            # Re-arm before flushing, not at the top of the loop: a wake from now on (an
            # application call, another task's flush) makes the next wait return at once,
            # and a wake set before this loop first ran (a ``connect`` right after
            # ``serve`` started) is not lost.
            self._wake = trio.Event()
            now = trio.current_time()
            deadline = endpoint.get_timer()
            if deadline is not None and now >= deadline:
                endpoint.handle_timer(now)
            await self._drain_and_send()
