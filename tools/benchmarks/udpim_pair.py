"""Two udpim endpoints on real loopback sockets, joined through an impaired link.

What it owns: ``UdpimPair`` — a client ``Endpoint`` and a server ``Endpoint``, each on its
own trio UDP socket driven by ``udpim.net.udp.EndpointDriver``, the client's session
dialled to the server *through* netsim's ``ImpairmentProxy`` — and ``open_udpim_pair``,
which starts all of it in one nursery and returns once both sides are established.

Rules it keeps:

* Everything runs in the caller's Trio run, on the real clock: the latency of a message
  is ``trio.current_time()`` at ``MessageReceived`` (server side) minus the same clock
  just before ``send_message`` (client side). No clock offset exists to correct.
* Keys, connection IDs and handshake randomness come from seeded generators; the
  server's is a ``RecordingRng`` so the capture can be decrypted afterwards
  (``packet_log``). Both sockets are ``CapturingSocket``\\ s for the same reason.
* The server endpoint never asks for cookies (``CookieMode.NEVER``): one client cannot
  put it under load, and a cookie round trip would only slow the handshake down.
* The handshake is not measured: workloads start after ``SessionEstablished`` on both
  sides, and take wire bytes as a difference of ``UdpimPair.wire()`` from that moment.
* After ``connect`` the client driver is flushed once by hand: ``EndpointDriver`` can
  lose a wake-up given before its timer loop first runs, and the dial would then never
  send its initiation (reported for ``udpim/net/udp.py``). Sends are left alone: they
  go through ``send_message`` exactly as an application's do.
* Event handlers only record (they run inside the drivers' receive loops); waiting is
  done by ``wait_for`` on a condition, woken by every event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

import trio

from netsim.proxy import ImpairmentProxy
from tools.benchmarks.capture import CapturingSocket, RecordingRng, bind_loopback_udp
from tools.benchmarks.impaired_link import WireCount, open_impaired_link, wire_count
from tools.benchmarks.link_grid import LinkCell
from udpim.core.config import CookieMode, EndpointConfig, SessionConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import (
    Event,
    MessageDelivered,
    MessageReceived,
    SessionClosed,
    SessionEstablished,
)
from udpim.core.session import Session
from udpim.net.udp import EndpointDriver

__all__ = ["HANDSHAKE_TIMEOUT_S", "PairEvents", "Received", "UdpimPair", "open_udpim_pair"]

HANDSHAKE_TIMEOUT_S: Final = 60.0
"""Give up establishing the pair after this long (30 % loss can cost a few retries)."""


@dataclass(frozen=True, slots=True)
class Received:
    """A message as the server's application saw it."""

    at: float
    message_number: int
    payload_bytes: int


@dataclass(slots=True, eq=False)
class PairEvents:
    """What both applications saw, recorded by the drivers' event handlers.

    Attributes:
        received: messages the server's application received, in order.
        delivered: ``MessageDelivered`` events at the client (acknowledged messages).
        established: which sides (``"client"``, ``"server"``) saw ``SessionEstablished``.
        closed: the first ``SessionClosed`` of either side, if any.
    """

    received: list[Received] = field(default_factory=list)
    delivered: int = 0
    established: set[str] = field(default_factory=set)
    closed: SessionClosed | None = None
    _changed: trio.Event = field(default_factory=trio.Event)

    async def wait_for(self, condition: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``condition()`` holds (checked after every event) or ``deadline``.

        Returns:
            Whether the condition holds.
        """
        with trio.move_on_at(deadline):
            while not condition():
                self._changed = trio.Event()
                await self._changed.wait()
        return condition()

    def on_client_event(self, session: Session, event: Event) -> None:
        """The client driver's event handler (records only)."""
        if isinstance(event, MessageDelivered):
            self.delivered += 1
        elif isinstance(event, SessionEstablished):
            self.established.add("client")
        elif isinstance(event, SessionClosed) and self.closed is None:
            self.closed = event
        self._changed.set()

    def on_server_event(self, session: Session, event: Event) -> None:
        """The server driver's event handler (records only)."""
        if isinstance(event, MessageReceived):
            now = trio.current_time()
            self.received.append(Received(now, event.message_number, len(event.payload)))
        elif isinstance(event, SessionEstablished):
            self.established.add("server")
        elif isinstance(event, SessionClosed) and self.closed is None:
            self.closed = event
        self._changed.set()


@dataclass(frozen=True, slots=True, eq=False)
class UdpimPair:
    """A running, established client/server pair; see ``open_udpim_pair``.

    Attributes:
        client: the client's driver (the session initiator, the sender).
        server: the server's driver (the receiver).
        session: the client's session.
        proxy: the impairment proxy between them.
        events: what both applications saw.
        client_socket: the client's capturing socket.
        server_socket: the server's capturing socket.
        server_key: the server's static key (to decrypt the capture).
        server_rng: the server's recording rng (to decrypt the capture).
    """

    client: EndpointDriver
    server: EndpointDriver
    session: Session
    proxy: ImpairmentProxy
    events: PairEvents
    client_socket: CapturingSocket
    server_socket: CapturingSocket
    server_key: StaticKey
    server_rng: RecordingRng

    def send(self, payload: bytes) -> float:
        """Send ``payload`` from the client; returns the Trio time just before.

        Raises:
            LocalProtocolError: the session cannot send (closed).
        """
        now = trio.current_time()
        self.client.send_message(self.session, payload)
        return now

    def wire(self) -> WireCount:
        """Datagrams and wire bytes through the proxy so far (both directions)."""
        return wire_count(self.proxy.statistics())


def _endpoint(config: SessionConfig, key: StaticKey, rng: Callable[[int], bytes]) -> Endpoint:
    return Endpoint(EndpointConfig(session=config, cookie_mode=CookieMode.NEVER), key, rng)


@asynccontextmanager
async def open_udpim_pair(
    cell: LinkCell, seed: int, config: SessionConfig | None = None
) -> AsyncIterator[UdpimPair]:
    """Start a server, a proxy for ``cell`` and a client, and dial; yield once established.

    Args:
        cell: the link between them.
        seed: the root of every random choice (keys, handshake, the proxy's drops).
        config: both sides' session tunables (default: ``SessionConfig()``).

    Yields:
        The established pair; everything stops when the block ends.

    Raises:
        TimeoutError: the handshake did not complete within ``HANDSHAKE_TIMEOUT_S``.
        RuntimeError: a side closed the session during the handshake.
        OSError: a socket cannot be bound.
    """
    config = config if config is not None else SessionConfig()
    client_rng, server_rng = RecordingRng(2 * seed + 1), RecordingRng(2 * seed + 2)
    server_key, client_key = StaticKey.generate(server_rng), StaticKey.generate(client_rng)
    events = PairEvents()
    server_socket = CapturingSocket(await bind_loopback_udp())
    client_socket = CapturingSocket(await bind_loopback_udp())
    server = EndpointDriver(
        _endpoint(config, server_key, server_rng), server_socket, events.on_server_event
    )
    client = EndpointDriver(
        _endpoint(config, client_key, client_rng), client_socket, events.on_client_event
    )
    try:
        async with trio.open_nursery() as nursery:
            server_address = await nursery.start(server.serve)
            async with open_impaired_link(cell, server_address, seed) as (proxy, proxy_address):
                await nursery.start(client.serve)
                session = client.connect(server_key.public, proxy_address)
                # Send the initiation now: a wake-up of the driver's timer loop can be
                # lost before that loop first runs (reported), stalling the dial.
                await client.flush()
                await _wait_established(events)
                yield UdpimPair(
                    client,
                    server,
                    session,
                    proxy,
                    events,
                    client_socket,
                    server_socket,
                    server_key,
                    server_rng,
                )
            nursery.cancel_scope.cancel()
    finally:
        client_socket.close()
        server_socket.close()


async def _wait_established(events: PairEvents) -> None:
    deadline = trio.current_time() + HANDSHAKE_TIMEOUT_S
    both = {"client", "server"}
    if not await events.wait_for(
        lambda: events.established >= both or events.closed is not None, deadline
    ):
        raise TimeoutError(f"no session within {HANDSHAKE_TIMEOUT_S:g} s")
    if events.closed is not None:
        raise RuntimeError(f"the session closed during the handshake: {events.closed.reason.name}")
