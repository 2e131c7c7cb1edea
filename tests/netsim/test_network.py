"""The virtual network: delay and loss per direction, routing, partitions, filters,
move_host, statistics, long runs. Virtual time only (autojump_clock)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from netsim.models import DropReason, LinkProfile
from netsim.network import Network, PacketInfo, open_network
from netsim.socket import VirtualUDPSocket
from netsim.trace import Recorder

SERVER = ("127.1.0.1", 9000)


async def echo_server(sock: VirtualUDPSocket) -> None:
    while True:
        data, source = await sock.recvfrom(65535)
        await sock.sendto(data, source)


async def server_socket(network: Network, name: str = "server") -> VirtualUDPSocket:
    sock = network.host(name).socket()
    await sock.bind(("0.0.0.0", SERVER[1]))
    return sock


async def test_delay_applied_exactly(autojump_clock: trio.testing.MockClock) -> None:
    async with open_network(seed=1) as network:
        network.add_host("client", "127.1.0.2", up=LinkProfile(delay_s=0.25))
        network.add_host("server", SERVER[0], down=LinkProfile(delay_s=0.125))
        server = await server_socket(network)
        client = network.host("client").socket()
        start = trio.current_time()
        await client.sendto(b"x", SERVER)
        assert await server.recvfrom(10) == (b"x", ("127.1.0.2", client.getsockname()[1]))
        assert trio.current_time() - start == 0.375
        await server.sendto(b"y", ("127.1.0.2", client.getsockname()[1]))
        await client.recvfrom(10)
        assert trio.current_time() - start == 0.375  # reverse direction unimpaired


async def test_loss_applied(autojump_clock: trio.testing.MockClock) -> None:
    async with open_network(seed=7) as network:
        network.add_host("client", "127.1.0.2", up=LinkProfile(loss=0.3))
        network.add_host("server", SERVER[0])
        server = await server_socket(network)
        client = network.host("client").socket()
        for i in range(1000):
            await client.sendto(i.to_bytes(2, "big"), SERVER)
        await trio.sleep(1)
        received = 0
        with trio.move_on_after(1):
            while True:
                await server.recvfrom(10)
                received += 1
        stats = network.statistics()
        assert 620 < received < 780
        assert stats.packets_delivered == received
        assert stats.drops == {DropReason.LOSS: 1000 - received}
        assert stats.links["client.up"].drops == {DropReason.LOSS: 1000 - received}


async def test_directions_are_independent(autojump_clock: trio.testing.MockClock) -> None:
    async with open_network(seed=2) as network:
        network.add_host("client", "127.1.0.2", up=LinkProfile(loss=1.0), down=LinkProfile())
        network.add_host("server", SERVER[0])
        server = await server_socket(network)
        client = network.host("client").socket()
        await client.bind(("0.0.0.0", 5000))
        await client.sendto(b"lost", SERVER)
        await server.sendto(b"arrives", ("127.1.0.2", 5000))
        assert await client.recvfrom(10) == (b"arrives", SERVER)
        with trio.move_on_after(5) as scope:
            await server.recvfrom(10)
        assert scope.cancelled_caught
        assert network.statistics().drops == {DropReason.LOSS: 1}


async def test_no_route_and_port_unreachable(autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    async with open_network(seed=3, recorder=recorder) as network:
        network.add_host("client", "127.1.0.2")
        network.add_host("server", SERVER[0])
        client = network.host("client").socket()
        await client.sendto(b"a", ("127.1.0.99", 9000))
        await client.sendto(b"b", ("127.1.0.1", 9999))
        await trio.sleep(1)
        assert network.statistics().drops == {
            DropReason.NO_ROUTE: 1,
            DropReason.PORT_UNREACHABLE: 1,
        }
    drops = [(e.fields["reason"], e.fields["where"]) for e in recorder.events("drop")]
    assert drops == [("no-route", "net"), ("port-unreachable", "host:server")]


async def test_partition_and_heal(autojump_clock: trio.testing.MockClock) -> None:
    async with open_network(seed=4) as network:
        network.add_host("client", "127.1.0.2")
        network.add_host("other", "127.1.0.3")
        network.add_host("server", SERVER[0])
        server = await server_socket(network)
        client = network.host("client").socket()
        other = network.host("other").socket()
        network.partition(["client"], ["server"])
        await client.sendto(b"cut", SERVER)
        await other.sendto(b"unlisted", SERVER)
        assert (await server.recvfrom(10))[0] == b"unlisted"
        await trio.sleep(1)
        assert network.statistics().drops == {DropReason.PARTITION: 1}
        network.heal()
        await client.sendto(b"healed", SERVER)
        assert (await server.recvfrom(10))[0] == b"healed"


async def test_partition_rejects_conflicting_groups(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_network(seed=4) as network:
        network.add_host("a", "127.1.0.2")
        with pytest.raises(ValueError, match="two partition groups"):
            network.partition(["a"], ["a"])
        with pytest.raises(KeyError):
            network.partition(["nobody"])


async def test_filter_drops_with_its_reason(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[tuple[PacketInfo, float]] = []

    def no_big_packets(info: PacketInfo, now: float) -> DropReason | None:
        seen.append((info, now))
        return DropReason.FILTER if info.size > 3 else None

    async with open_network(seed=5) as network:
        network.add_host("client", "127.1.0.2", up=LinkProfile(delay_s=0.5))
        network.add_host("server", SERVER[0])
        server = await server_socket(network)
        client = network.host("client").socket()
        await client.bind(("0.0.0.0", 4000))
        network.add_filter(no_big_packets)
        await client.sendto(b"big!", SERVER)
        await client.sendto(b"ok", SERVER)
        assert (await server.recvfrom(10))[0] == b"ok"
        assert network.statistics().drops == {DropReason.FILTER: 1}
    assert [(i.id, i.src, i.dst, i.size, i.sent_at, now) for i, now in seen] == [
        (1, ("127.1.0.2", 4000), SERVER, 4, 0.0, 0.5),
        (2, ("127.1.0.2", 4000), SERVER, 2, 0.0, 0.5),
    ]


async def test_move_host_changes_source_address(autojump_clock: trio.testing.MockClock) -> None:
    async with open_network(seed=6) as network:
        network.add_nat("carrier", "127.1.0.200")
        network.add_host("phone", "127.1.0.2")
        network.add_host("server", SERVER[0])
        server = await server_socket(network)
        phone = network.host("phone").socket()
        await phone.bind(("0.0.0.0", 7000))
        await phone.sendto(b"wifi", SERVER)
        assert await server.recvfrom(10) == (b"wifi", ("127.1.0.2", 7000))
        network.move_host("phone", "127.16.9.9", nat="carrier")
        assert (network.host("phone").address, network.host("phone").nat) == (
            "127.16.9.9",
            "carrier",
        )
        assert phone.getsockname() == ("0.0.0.0", 7000)
        await phone.sendto(b"cell", SERVER)
        data, source = await server.recvfrom(10)
        assert data == b"cell"
        assert source[0] == "127.1.0.200"
        await server.sendto(b"reply", source)
        assert await phone.recvfrom(10) == (b"reply", SERVER)


async def test_move_host_drops_packets_in_flight(autojump_clock: trio.testing.MockClock) -> None:
    async with open_network(seed=6) as network:
        network.add_host("phone", "127.1.0.2", down=LinkProfile(delay_s=1.0))
        network.add_host("server", SERVER[0], up=LinkProfile(delay_s=1.0))
        server = await server_socket(network)
        phone = network.host("phone").socket()
        await phone.bind(("0.0.0.0", 7000))
        await server.sendto(b"in core", ("127.1.0.2", 7000))
        await trio.sleep(1.5)
        await server.sendto(b"on uplink", ("127.1.0.2", 7000))
        await trio.sleep(0.1)
        network.move_host("phone", "127.1.0.3")
        await trio.sleep(5)
        assert network.statistics().drops == {DropReason.NO_ROUTE: 2}
        await server.sendto(b"new address", ("127.1.0.3", 7000))
        assert (await phone.recvfrom(20))[0] == b"new address"


async def test_topology_errors(autojump_clock: trio.testing.MockClock) -> None:
    async with open_network(seed=8) as network:
        network.add_nat("home", "127.1.0.100")
        network.add_host("a", "127.1.0.2")
        with pytest.raises(ValueError, match="already used"):
            network.add_host("a", "127.1.0.3")
        with pytest.raises(ValueError, match="already used"):
            network.add_host("b", "127.1.0.100")
        with pytest.raises(ValueError, match="unknown NAT"):
            network.add_host("c", "127.16.0.2", nat="nope")
        network.add_host("d", "127.16.0.2", nat="home")
        with pytest.raises(ValueError, match="already used"):
            network.add_host("e", "127.16.0.2", nat="home")
        with pytest.raises(ValueError, match="already used"):
            network.move_host("a", "127.1.0.100")
        with pytest.raises(KeyError):
            network.host("zzz")


async def test_bind_foreign_address_fails(autojump_clock: trio.testing.MockClock) -> None:
    async with open_network(seed=8) as network:
        host = network.add_host("a", "127.1.0.2")
        with host.socket() as sock, pytest.raises(OSError, match="assign"):
            await sock.bind(("127.1.0.3", 0))


async def test_set_link_takes_effect_now(autojump_clock: trio.testing.MockClock) -> None:
    async with open_network(seed=9) as network:
        network.add_host("client", "127.1.0.2", up=LinkProfile(delay_s=0.5))
        network.add_host("server", SERVER[0])
        server = await server_socket(network)
        client = network.host("client").socket()
        await client.sendto(b"slow", SERVER)
        network.set_link("client", up=LinkProfile(delay_s=2.0))
        await client.sendto(b"slower", SERVER)
        await server.recvfrom(10)
        assert trio.current_time() == 0.5
        await server.recvfrom(10)
        assert trio.current_time() == 2.0


async def test_on_progress_reports_advancing_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    times: list[float] = []
    async with open_network(seed=10) as network:
        network.on_progress = times.append
        network.add_host("client", "127.1.0.2", up=LinkProfile(delay_s=0.5))
        network.add_host("server", SERVER[0])
        server = await server_socket(network)
        client = network.host("client").socket()
        for _ in range(3):
            await client.sendto(b"x", SERVER)
            await server.recvfrom(10)
    assert times == [0.5, 1.0, 1.5]


async def test_body_exception_is_not_wrapped(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with open_network(seed=11):
            raise RuntimeError("boom")


async def test_an_hour_of_pings(autojump_clock: trio.testing.MockClock) -> None:
    rtts: list[float] = []
    async with open_network(seed=12) as network:
        network.add_host("client", "127.1.0.2", up=LinkProfile(delay_s=0.02, jitter_s=0.005))
        network.add_host("server", SERVER[0], down=LinkProfile(delay_s=0.03, loss=0.01))
        server = await server_socket(network)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_server, server)
            with network.host("client").socket() as client:
                for _ in range(3600):
                    sent_at = trio.current_time()
                    await client.sendto(b"ping", SERVER)
                    with trio.move_on_after(1):
                        await client.recvfrom(10)
                        rtts.append(trio.current_time() - sent_at)
                        await trio.sleep_until(sent_at + 1)
            nursery.cancel_scope.cancel()
        stats = network.statistics()
    assert 3500 < len(rtts) < 3600
    assert all(0.045 <= rtt <= 0.055 for rtt in rtts)
    assert stats.packets_sent == 3600 + len(rtts)
    assert stats.drops[DropReason.LOSS] == 3600 - len(rtts)
    assert trio.current_time() == pytest.approx(3600, abs=1e-6)
