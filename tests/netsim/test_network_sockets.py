"""Virtual-socket behaviour beyond the loopback conformance suite: bounded receive
buffer, cancellation safety, FIFO wake-up of receivers, seeded ephemeral ports,
corruption/duplication flags in the trace."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from netsim.models import DropReason, LinkProfile
from netsim.network import open_network
from netsim.trace import Recorder

SERVER = ("127.1.0.1", 9000)


async def test_full_receive_buffer_drops_and_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    async with open_network(seed=1, recorder=recorder) as network:
        network.add_host("client", "127.1.0.2")
        server_host = network.add_host("server", SERVER[0])
        client = network.host("client").socket()
        with server_host.socket(rcvbuf_bytes=2500) as server:
            await server.bind(SERVER)
            for i in range(5):
                await client.sendto(bytes([i]) * 1000, SERVER)
            await trio.sleep(1)
            # Linux rule: accepted while no more than rcvbuf_bytes are queued.
            assert [(await server.recvfrom(2000))[0][0] for _ in range(3)] == [0, 1, 2]
            await client.sendto(b"room again", SERVER)
            assert (await server.recvfrom(2000))[0] == b"room again"
        assert network.statistics().drops == {DropReason.RCVBUF: 2}
    drops = [(e.fields["id"], e.fields["reason"]) for e in recorder.events("drop")]
    assert drops == [(4, "rcvbuf"), (5, "rcvbuf")]


async def test_cancelled_receiver_loses_nothing(autojump_clock: trio.testing.MockClock) -> None:
    async with open_network(seed=2) as network:
        network.add_host("client", "127.1.0.2", up=LinkProfile(delay_s=1.0))
        server_host = network.add_host("server", SERVER[0])
        server = server_host.socket()
        await server.bind(SERVER)
        client = network.host("client").socket()
        await client.sendto(b"arrives at 1.0", SERVER)
        # The receiver's deadline expires in the same pass as the delivery: it is
        # cancelled, and the datagram must stay queued for the next recvfrom.
        with trio.move_on_after(1.0) as scope:
            await server.recvfrom(100)
            pytest.fail("the receive should have been cancelled")
        assert scope.cancelled_caught
        assert (await server.recvfrom(100))[0] == b"arrives at 1.0"


async def test_waiting_receivers_are_woken_in_fifo_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[tuple[str, bytes]] = []
    async with open_network(seed=3) as network:
        network.add_host("client", "127.1.0.2")
        server_host = network.add_host("server", SERVER[0])
        server = server_host.socket()
        await server.bind(SERVER)
        client = network.host("client").socket()

        async def receive(name: str) -> None:
            got.append((name, (await server.recvfrom(10))[0]))

        async with trio.open_nursery() as nursery:
            for name in ("first", "second", "third"):
                nursery.start_soon(receive, name)
                await trio.testing.wait_all_tasks_blocked()
            for data in (b"a", b"b", b"c"):
                await client.sendto(data, SERVER)
    assert got == [("first", b"a"), ("second", b"b"), ("third", b"c")]


async def test_ephemeral_ports_follow_the_seed(autojump_clock: trio.testing.MockClock) -> None:
    async def ports(seed: int) -> list[int]:
        async with open_network(seed=seed) as network:
            host = network.add_host("h", "127.1.0.2")
            socks = [host.socket() for _ in range(4)]
            for sock in socks:
                await sock.bind(("0.0.0.0", 0))
            return [sock.getsockname()[1] for sock in socks]

    first = await ports(10)
    assert first == await ports(10)
    assert first != await ports(11)
    assert all(32768 <= port <= 60999 for port in first)
    assert len(set(first)) == 4


async def test_duplicate_and_corrupt_copies_are_flagged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    async with open_network(seed=4, recorder=recorder) as network:
        network.add_host(
            "client", "127.1.0.2", up=LinkProfile(delay_s=0.1, duplicate=1.0, corrupt=1.0)
        )
        network.add_host("server", SERVER[0])
        server = network.host("server").socket()
        await server.bind(SERVER)
        client = network.host("client").socket()
        await client.sendto(b"\x00" * 8, SERVER)
        first, _ = await server.recvfrom(100)
        second, _ = await server.recvfrom(100)
        assert first == second != b"\x00" * 8
        stats = network.statistics()
        assert (stats.packets_delivered, stats.duplicated, stats.corrupted) == (2, 1, 2)
    delivers = [dict(e.fields) for e in recorder.events("deliver")]
    assert [(d["id"], d.get("dup", False), d["corrupt"], d["delay"]) for d in delivers] == [
        (1, False, True, 0.1),
        (1, True, True, 0.1),
    ]


async def test_socket_closed_before_arrival(autojump_clock: trio.testing.MockClock) -> None:
    async with open_network(seed=5) as network:
        network.add_host("client", "127.1.0.2", up=LinkProfile(delay_s=1.0))
        network.add_host("server", SERVER[0])
        server = network.host("server").socket()
        await server.bind(SERVER)
        client = network.host("client").socket()
        await client.sendto(b"late", SERVER)
        server.close()
        await trio.sleep(2)
        assert network.statistics().drops == {DropReason.PORT_UNREACHABLE: 1}
