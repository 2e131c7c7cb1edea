"""What keeps a busy relay pipelined: datagrams leave in packet-number order however many
tasks flush at once, and the action runner answers a whole group commit in one step.

Both were found by ``tools/bench relay``: interleaved sends reordered packets on loopback
(the peer's acks then declared the overtaken ones lost: a collapsed congestion window and
FEC on a lossless link), and answering one store op per scheduler step let the
completion task, not the disk, set the pace. Virtual time only; nothing here measures
speed.
"""

from __future__ import annotations

import random
from typing import Any

import trio
import trio.testing

from netsim.network import open_network
from tests.net.test_parts import HeldStore, NullSocket, server_and_client
from udpim.core.config import EndpointConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import Event as SessionEvent
from udpim.core.events import MessageReceived, SessionEstablished
from udpim.core.session import Session
from udpim.im.actions import Action, Store
from udpim.im.ops import OutboxCounts
from udpim.net.actions import ActionRunner
from udpim.net.udp import DatagramSocket, EndpointDriver

MESSAGES = 400


class SlowSendSocket:
    """A socket whose ``sendto`` yields a few times first, as a busy kernel or a full
    socket buffer would: other tasks run in the middle of a flush."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def sendto(self, data: bytes, address: Any, /) -> int:
        for _ in range(3):
            await trio.lowlevel.checkpoint()
        return int(await self._inner.sendto(data, address))

    async def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]:
        data, source = await self._inner.recvfrom(bufsize)
        return bytes(data), source

    def getsockname(self) -> Any:
        return self._inner.getsockname()

    def close(self) -> None:
        self._inner.close()


async def test_concurrent_flushes_keep_packet_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Three extra tasks flush while the loops do: no packet may overtake an earlier one,
    so a lossless link shows no loss and every message arrives."""
    async with open_network(seed=3) as network:
        server_key, server_sock, client_sock = await server_and_client(network)
        established = trio.Event()
        received: list[bytes] = []
        all_received = trio.Event()

        def on_server_event(session: Session, event: SessionEvent) -> None:
            if isinstance(event, MessageReceived):
                received.append(event.payload)
                if len(received) == MESSAGES:
                    all_received.set()

        def on_client_event(session: Session, event: SessionEvent) -> None:
            if isinstance(event, SessionEstablished):
                established.set()

        server = EndpointDriver(
            Endpoint(EndpointConfig(), server_key, random.Random(1).randbytes),
            SlowSendSocket(server_sock),
            on_server_event,
        )
        client_endpoint = Endpoint(
            EndpointConfig(), StaticKey.generate(bytes), random.Random(2).randbytes
        )
        client_socket: DatagramSocket = SlowSendSocket(client_sock)
        client = EndpointDriver(client_endpoint, client_socket, on_client_event)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            await nursery.start(client.serve)
            session = client.connect(server_key.public, ("127.1.0.1", 7000))
            with trio.fail_after(5):
                await established.wait()

            async def flusher() -> None:
                while not all_received.is_set():
                    await client.flush()
                    await server.flush()
                    await trio.sleep(0.001)  # lets the virtual clock move on

            for _ in range(3):
                nursery.start_soon(flusher)
            for n in range(MESSAGES):
                client.send_message(session, n.to_bytes(2, "big") * 300)
                if n % 8 == 7:
                    await trio.lowlevel.checkpoint()
            with trio.fail_after(60):
                await all_received.wait()
            nursery.cancel_scope.cancel()
    assert received == [n.to_bytes(2, "big") * 300 for n in range(MESSAGES)]
    stats = session.statistics()
    assert (stats.packets_lost, stats.frames_retransmitted, stats.fec_parities_sent) == (0, 0, 0)


class TickingCore:
    """Records, with each store outcome, how many scheduler steps a ticker task made."""

    def __init__(self) -> None:
        self.ticks = 0
        self.seen_at: list[int] = []

    async def tick(self, steps: int) -> None:
        for _ in range(steps):
            await trio.lowlevel.checkpoint()
            self.ticks += 1

    def on_store_result(self, token: int, result: object) -> list[Action]:
        del token, result
        self.seen_at.append(self.ticks)
        return []

    def on_store_error(self, token: int, error: Exception) -> list[Action]:
        raise AssertionError(f"unexpected store error {error}")


async def test_a_finished_group_of_ops_is_answered_in_one_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, core = HeldStore(), TickingCore()
    endpoint = Endpoint(EndpointConfig(), StaticKey.generate(lambda n: b"\x01" * n), bytes)
    driver = EndpointDriver(endpoint, NullSocket(), lambda s, e: None)
    runner = ActionRunner(core, driver, store, on_notify=lambda event: None)
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.serve)
        runner.run([Store(token, OutboxCounts()) for token in range(40)])
        await trio.testing.wait_all_tasks_blocked()
        for pending in store.pendings[:30]:  # one group commit finishes: 30 ops at once
            pending.released.set()
        await core.tick(100)
        assert runner.store_backlog == 10
        for pending in store.pendings[30:]:
            pending.released.set()
        await core.tick(100)
        nursery.cancel_scope.cancel()
    assert len(core.seen_at) == 40
    assert len(set(core.seen_at[:30])) == 1  # no scheduler step between them
    assert len(set(core.seen_at[30:])) == 1
    assert runner.store_backlog == 0
