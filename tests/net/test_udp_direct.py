"""The driver's direct path on real loopback sockets (``udpim.net.udp``, ``directsocket``).

Real trio UDP sockets on 127.0.0.1 only. Results never depend on a sleep: waits are for
events, guarded by ``trio.fail_after``, or, where time must stand still, on a frozen
``MockClock`` with ``wait_all_tasks_blocked`` (loopback delivers a datagram into the
peer's socket buffer within ``sendto``, so "every task blocked" means "quiet").
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from udpim.core.config import CookieMode, EndpointConfig, SessionConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import Event, MessageDelivered, MessageReceived, SessionEstablished
from udpim.core.session import Session
from udpim.net.directsocket import DirectSocket
from udpim.net.udp import RECEIVE_BATCH_DATAGRAMS, EndpointDriver

FOREIGN = b"\x00foreign"  # version bits 0: not udpim version 1


async def bound_socket() -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    return sock


@dataclass(eq=False)
class Seen:
    """What one side's application saw."""

    received: list[bytes] = field(default_factory=list)
    delivered: int = 0
    established: bool = False
    changed: trio.Event = field(default_factory=trio.Event)

    def on_event(self, session: Session, event: Event) -> None:
        if isinstance(event, MessageReceived):
            self.received.append(event.payload)
        elif isinstance(event, MessageDelivered):
            self.delivered += 1
        elif isinstance(event, SessionEstablished):
            self.established = True
        self.changed.set()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self.changed = trio.Event()
            await self.changed.wait()


@dataclass(eq=False)
class Pair:
    client: EndpointDriver
    server: EndpointDriver
    session: Session
    client_seen: Seen
    server_seen: Seen


@asynccontextmanager
async def open_pair(config: SessionConfig | None = None) -> AsyncIterator[Pair]:
    """Two drivers on real loopback sockets, the client's session established."""
    config = config if config is not None else SessionConfig()
    server_key = StaticKey.generate(random.Random(1).randbytes)
    client_seen, server_seen = Seen(), Seen()
    with await bound_socket() as server_sock, await bound_socket() as client_sock:
        server = EndpointDriver(
            Endpoint(
                EndpointConfig(session=config, cookie_mode=CookieMode.NEVER),
                server_key,
                random.Random(2).randbytes,
            ),
            server_sock,
            server_seen.on_event,
        )
        client = EndpointDriver(
            Endpoint(
                EndpointConfig(session=config),
                StaticKey.generate(random.Random(3).randbytes),
                random.Random(4).randbytes,
            ),
            client_sock,
            client_seen.on_event,
        )
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            await nursery.start(client.serve)
            session = client.connect(server_key.public, address)
            await client_seen.wait_until(lambda: client_seen.established)
            yield Pair(client, server, session, client_seen, server_seen)
            nursery.cancel_scope.cancel()


async def test_a_stream_arrives_in_order_exactly_once_and_is_acknowledged() -> None:
    payloads = [i.to_bytes(4, "big") * 50 for i in range(3000)]
    with trio.fail_after(30):
        async with open_pair() as pair:
            for payload in payloads:
                pair.client.send_message(pair.session, payload)
            await pair.server_seen.wait_until(lambda: len(pair.server_seen.received) >= 3000)
            await pair.client_seen.wait_until(lambda: pair.client_seen.delivered >= 3000)
    assert pair.server_seen.received == payloads
    assert pair.client_seen.delivered == 3000
    assert pair.client.send_errors == pair.server.send_errors == 0


class Ticker:
    """Counts scheduler steps: it runs once per checkpoint of every other task."""

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        while True:
            await trio.lowlevel.checkpoint()
            self.ticks += 1


@dataclass(eq=False)
class ForeignLog:
    """An ``on_foreign`` handler that records each datagram and the ticker's count then."""

    ticker: Ticker = field(default_factory=Ticker)
    handled: list[bytes] = field(default_factory=list)
    seen_at: list[int] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    def on_foreign(self, data: bytes, source: tuple[str, int]) -> bytes | None:
        self.handled.append(data)
        self.seen_at.append(self.ticker.ticks)
        self.changed.set()
        return None

    async def wait_for(self, count: int) -> None:
        while len(self.handled) < count:
            self.changed = trio.Event()
            await self.changed.wait()


async def test_a_queued_burst_is_read_in_batches_without_a_scheduler_step() -> None:
    log = ForeignLog()
    batch = RECEIVE_BATCH_DATAGRAMS
    burst = 2 * batch + 10
    endpoint = Endpoint(EndpointConfig(), StaticKey.generate(bytes), bytes)
    with await bound_socket() as sock, await bound_socket() as sender, trio.fail_after(10):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # hold the whole burst
        for _ in range(burst):  # queued in the kernel before the driver runs
            await sender.sendto(FOREIGN, sock.getsockname())
        driver = EndpointDriver(endpoint, sock, lambda s, e: None, on_foreign=log.on_foreign)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(log.ticker.run)
            await nursery.start(driver.serve)
            await log.wait_for(burst)
            nursery.cancel_scope.cancel()
    assert driver.datagrams_received == burst
    batches = [log.seen_at[:batch], log.seen_at[batch : 2 * batch], log.seen_at[2 * batch :]]
    assert [len(set(ticks)) for ticks in batches] == [1, 1, 1]  # no task ran within a batch
    # Every batch starts with a checkpoint, so other tasks run once per scheduler pass:
    # the ticker ran between the first batch and the third (trio shuffles each pass's
    # order, so not necessarily between two neighbours).
    assert batches[2][0] > batches[0][0]


async def test_foreign_datagrams_are_answered_from_the_direct_path() -> None:
    endpoint = Endpoint(EndpointConfig(), StaticKey.generate(bytes), bytes)
    with await bound_socket() as sock, await bound_socket() as asker, trio.fail_after(10):
        driver = EndpointDriver(
            endpoint, sock, lambda s, e: None, on_foreign=lambda data, source: b"re:" + data
        )
        async with trio.open_nursery() as nursery:
            address = await nursery.start(driver.serve)
            for index in range(3):
                await asker.sendto(FOREIGN + bytes([index]), address)
            answers = [(await asker.recvfrom(100))[0] for _ in range(3)]
            nursery.cancel_scope.cancel()
    assert answers == [b"re:" + FOREIGN + bytes([index]) for index in range(3)]
    assert driver.datagrams_sent == 3


async def test_the_input_gate_is_awaited_before_every_read() -> None:
    log = ForeignLog()
    opened = trio.Event()
    holding = trio.Event()

    async def gate() -> None:
        if len(log.handled) >= 3 and not opened.is_set():
            holding.set()
            await opened.wait()

    endpoint = Endpoint(EndpointConfig(), StaticKey.generate(bytes), bytes)
    with await bound_socket() as sock, await bound_socket() as sender, trio.fail_after(10):
        for index in range(10):
            await sender.sendto(FOREIGN + bytes([index]), sock.getsockname())
        driver = EndpointDriver(
            endpoint, sock, lambda s, e: None, input_gate=gate, on_foreign=log.on_foreign
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.serve)
            await holding.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert len(log.handled) == 3  # the gate held the loop before the 4th read
            opened.set()
            await log.wait_for(10)
            nursery.cancel_scope.cancel()
    assert log.handled == [FOREIGN + bytes([index]) for index in range(10)]


async def test_input_that_brings_a_deadline_forward_moves_the_timer_loop(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Time stands still (rate 0) unless the test jumps it. The server's delayed ACK for
    one message is due ``max_ack_delay_s`` after it arrived, earlier than anything its
    timer loop was waiting for; jumping exactly that far must send the ACK (the client's
    probe timeout, a little later, has not fired: nothing else could deliver it)."""
    config = SessionConfig(max_ack_delay_s=0.010)
    async with open_pair(config) as pair:
        mock_clock.jump(1.0)  # settle the handshake's own short timers
        await trio.testing.wait_all_tasks_blocked()
        before = pair.client_seen.delivered
        pair.client.send_message(pair.session, b"x" * 200)
        await trio.testing.wait_all_tasks_blocked()
        assert pair.server_seen.received == [b"x" * 200]
        assert pair.client_seen.delivered == before  # the ACK is delayed
        mock_clock.jump(0.0105)
        await trio.testing.wait_all_tasks_blocked()
        assert pair.client_seen.delivered == before + 1


async def test_the_socket_is_left_open_and_usable_when_serve_ends() -> None:
    endpoint = Endpoint(EndpointConfig(), StaticKey.generate(bytes), bytes)
    with await bound_socket() as sock, await bound_socket() as peer, trio.fail_after(10):
        driver = EndpointDriver(endpoint, sock, lambda s, e: None)
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.serve)
            nursery.cancel_scope.cancel()
        assert sock.fileno() != -1
        await driver.send_datagram(b"after", peer.getsockname())  # the awaitable path
        assert (await peer.recvfrom(100))[0] == b"after"
        assert driver.datagrams_sent == 1


async def test_a_view_is_not_used_once_its_owner_is_closed() -> None:
    """After the trio socket is closed its descriptor number may name another file."""
    sock = await bound_socket()
    view = DirectSocket.open(sock)
    assert view is not None
    sock.close()
    with pytest.raises(OSError, match="closed") as received:
        view.recvfrom_nowait(100)
    assert received.value.errno == errno.EBADF
    with pytest.raises(OSError, match="closed") as sent:
        view.sendto_nowait(b"x", ("127.0.0.1", 9))
    assert sent.value.errno == errno.EBADF
    view.detach()


async def test_only_an_open_trio_socket_gets_a_view() -> None:
    assert DirectSocket.open(object()) is None
    closed = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    closed.close()
    assert DirectSocket.open(closed) is None
