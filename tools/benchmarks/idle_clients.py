"""The load generator of ``tools/bench idle``: many logged-in idle clients on a few sockets.

What it owns: ``ClientFleet``, which opens sessions to one hub and keeps them alive
with the core's own heartbeats, from ONE process on one thread and without Trio:

* **Sessions come from the sans-IO core directly.** Each UDP socket (bound to
  127.0.0.1, loopback only) carries one ``udpim.core.endpoint.Endpoint`` and up to
  ``sessions_per_socket`` sessions on it (the endpoint tells them apart by connection
  ID). Every session dials with a static key of its own (set on the endpoint just
  before ``connect``), so the hub's per-key state (replay guard, account keys) is per
  session as in production, and concurrent dials never share a key (the hub keeps only
  a few half-open handshakes per key). Sessions use the default ``SessionConfig``, so each sends an
  authenticated PING after 25 s of silence, as a real daemon does.
* **A session is a logged-in IM client.** When its handshake completes it sends a
  ``hello`` frame as user ``idle-N`` (a new name: the open hub binds it to the socket's
  key, trust on first use) and counts as *up* when the hub's ``welcome`` arrives.
  Nothing else is sent: no ``keepalive`` frame (the hub keeps its default liveness), no
  watch, no messages.
* **One ``select.epoll`` loop** (``run_until``): read every ready socket dry, feed the
  datagrams to its endpoint, fire due timers (one heap of per-endpoint deadlines), then
  flush each touched endpoint (events first, then datagrams). A Trio task per socket
  would cost the generator more CPU than the hub spends; this loop keeps it well
  below one core at 100 000 sessions.
* **Dials are paced**: at most ``window`` sessions are between dial and welcome, and at
  most ``handshake_window`` between dial and handshake, so the hub's socket buffer does
  not overflow during the login storm. Stragglers retry by the core's own handshake
  backoff; a session that ends before its welcome (handshake timeout, refused hello) is
  counted and replaced by a new dial, so ``target`` sessions end up logged in.

Rules it keeps: loopback only (the hub's address must be in 127.0.0.0/8); time is
``time.monotonic()`` fed to the core as ``now``; the wall clock only for handshake
timestamps. Nothing here asserts anything: counts are reported, the caller decides.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import os
import random
import select
import socket
import time
from dataclasses import dataclass
from typing import Final

from udpim.core.config import EndpointConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import (
    MessageReceived,
    PeerReachable,
    PeerUnreachable,
    SessionClosed,
    SessionEstablished,
)
from udpim.core.session import Session
from udpim.im.protocol import HelloFrame, encode_frame

__all__ = ["ClientFleet", "FleetCounts"]

Address = tuple[str, int]

CLIENT_HOST: Final = "127.0.0.1"
SOCKET_BUFFER_BYTES: Final = 4 << 20
"""Kernel buffers asked for on each client socket (bursts of acks and welcomes)."""
READ_BYTES: Final = 2048


@dataclass(slots=True)
class FleetCounts:
    """What the fleet saw so far (all monotonic counters)."""

    dialed: int = 0
    established: int = 0
    welcomed: int = 0
    refused: int = 0
    failed: int = 0
    """Sessions that ended before their welcome (each replaced by a new dial)."""
    closed: int = 0
    """Sessions that ended after their welcome."""
    unreachable: int = 0
    reachable: int = 0
    datagrams_sent: int = 0
    datagrams_received: int = 0
    send_errors: int = 0


class _Client:
    """One socket and its endpoint."""

    __slots__ = ("endpoint", "index", "opened", "scheduled", "sock")

    def __init__(self, index: int, sock: socket.socket, endpoint: Endpoint) -> None:
        self.index = index
        self.sock = sock
        self.endpoint = endpoint
        self.opened = 0
        self.scheduled: float | None = None


class ClientFleet:
    """Opens up to ``target`` sessions to a hub and keeps them idle (module docstring).

    Args:
        hub: the hub's UDP address (must be a loopback address).
        hub_public: the hub's static public key.
        sessions_per_socket: sessions per socket (each session has its own static key).
        window: most sessions between dial and welcome.
        handshake_window: most sessions between dial and the end of their handshake.
        seed: seeds the clients' keys, connection IDs and handshake randomness.

    Raises:
        ValueError: the hub is not on loopback.
    """

    def __init__(
        self,
        hub: Address,
        hub_public: bytes,
        *,
        sessions_per_socket: int = 250,
        window: int = 2000,
        handshake_window: int = 100,
        seed: int = 1,
    ) -> None:
        if not ipaddress.ip_address(hub[0]).is_loopback:
            raise ValueError(f"the idle benchmark runs on loopback only, not {hub[0]}")
        self.hub = hub
        self.hub_public = hub_public
        self.sessions_per_socket = sessions_per_socket
        self.window = window
        self.handshake_window = handshake_window
        self.counts = FleetCounts()
        self.target = 0
        self._logging_in: dict[Session, bool] = {}  # dialed, not welcomed: -> established
        self._handshaking = 0  # dialed, handshake not complete
        self._rng = random.Random(seed).randbytes
        self._config = EndpointConfig()
        self._clients: list[_Client] = []
        self._by_fd: dict[int, _Client] = {}
        self._poll = select.epoll()
        self._heap: list[tuple[float, int]] = []  # (deadline, client index); stale skipped
        self._dirty: dict[int, None] = {}

    @property
    def sessions(self) -> int:
        """Sessions logged in (welcomed) and not ended since."""
        return self.counts.welcomed - self.counts.closed

    def close(self) -> None:
        """Close every socket without telling the hub (it sees them go idle)."""
        for client in self._clients:
            self._poll.unregister(client.sock.fileno())
            client.sock.close()
        self._poll.close()

    def run_until(self, deadline: float, *, until_up: bool = False) -> None:
        """Run the loop until ``time.monotonic()`` reaches ``deadline`` (or, with
        ``until_up``, until ``target`` sessions are up)."""
        while True:
            now = time.monotonic()
            if now >= deadline or (until_up and self.sessions >= self.target):
                return
            self._dial(now)
            self._flush(now)
            wake = deadline
            while self._heap:
                due, index = self._heap[0]
                if self._clients[index].scheduled == due:
                    wake = min(wake, due)
                    break
                heapq.heappop(self._heap)
            timeout = max(0.0, wake - now)
            for fd, _ in self._poll.poll(timeout):
                self._read(self._by_fd[fd])
            self._fire_timers(time.monotonic())

    # --- internals -------------------------------------------------------------------

    def _dial(self, now: float) -> None:
        counts = self.counts
        in_flight = len(self._logging_in)
        while (
            self.sessions + in_flight < self.target
            and in_flight < self.window
            and self._handshaking < self.handshake_window
        ):
            client = self._client_with_room()
            # A key of its own for every session, as every real user has (the endpoint
            # dials with whatever key it holds now): the hub's per-key state is then
            # per session, as in production.
            client.endpoint.static_key = StaticKey.generate(self._rng)
            session = client.endpoint.connect(self.hub_public, self.hub, now, time.time_ns())
            self._logging_in[session] = False
            client.opened += 1
            counts.dialed += 1
            in_flight += 1
            self._handshaking += 1
            self._dirty[client.index] = None

    def _client_with_room(self) -> _Client:
        if self._clients and self._clients[-1].opened < self.sessions_per_socket:
            return self._clients[-1]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
        sock.bind((CLIENT_HOST, 0))
        sock.setblocking(False)
        endpoint = Endpoint(self._config, StaticKey.generate(self._rng), self._rng)
        client = _Client(len(self._clients), sock, endpoint)
        self._clients.append(client)
        self._by_fd[sock.fileno()] = client
        self._poll.register(sock.fileno(), select.EPOLLIN)
        return client

    def _read(self, client: _Client) -> None:
        endpoint, sock = client.endpoint, client.sock
        now = time.monotonic()
        received = 0
        while True:
            try:
                data, address = sock.recvfrom(READ_BYTES)
            except BlockingIOError:
                break
            endpoint.receive_datagram(data, address, now)
            received += 1
        self.counts.datagrams_received += received
        self._dirty[client.index] = None

    def _fire_timers(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, index = heapq.heappop(heap)
            client = self._clients[index]
            if client.scheduled != due:
                continue
            client.scheduled = None
            client.endpoint.handle_timer(now)
            self._dirty[index] = None

    def _flush(self, now: float) -> None:
        dirty, self._dirty = self._dirty, {}
        counts = self.counts
        for index in dirty:
            client = self._clients[index]
            endpoint = client.endpoint
            while (item := endpoint.next_event()) is not None:
                session, event = item
                if isinstance(event, MessageReceived):
                    if b'"welcome"' in event.payload and session in self._logging_in:
                        del self._logging_in[session]
                        counts.welcomed += 1
                    elif b'"refused"' in event.payload:
                        counts.refused += 1  # the hub closes the session next
                elif isinstance(event, SessionEstablished):
                    self._logging_in[session] = True
                    self._handshaking -= 1
                    counts.established += 1
                    user = f"idle-{counts.established:06d}"
                    device = os.urandom(8).hex()
                    endpoint.send_message(session, encode_frame(HelloFrame(user, device)), now)
                elif isinstance(event, SessionClosed):
                    established = self._logging_in.pop(session, None)
                    if established is None:
                        counts.closed += 1
                        continue
                    counts.failed += 1
                    if not established:
                        self._handshaking -= 1
                elif isinstance(event, PeerUnreachable):
                    counts.unreachable += 1
                elif isinstance(event, PeerReachable):
                    counts.reachable += 1
            for data, address in endpoint.datagrams_to_send(now):
                try:
                    client.sock.sendto(data, address)
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.ENOBUFS):
                        raise
                    counts.send_errors += 1
                else:
                    counts.datagrams_sent += 1
            deadline = endpoint.get_timer()
            if deadline != client.scheduled:
                client.scheduled = deadline
                if deadline is not None:
                    heapq.heappush(self._heap, (deadline, index))
