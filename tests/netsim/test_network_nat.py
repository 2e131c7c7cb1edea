"""NAT traversal through the virtual network: outbound mapping, replies, unsolicited
inbound, idle expiry, rebinding, hosts behind one NAT, and the NAT trace events."""

from __future__ import annotations

import trio
import trio.testing

from netsim.models import DropReason, LinkProfile
from netsim.nat import Behaviour, NatConfig
from netsim.network import Network, open_network
from netsim.socket import VirtualUDPSocket
from netsim.trace import Recorder

SERVER = ("127.1.0.1", 9000)
NAT_IP = "127.1.0.100"


def build(network: Network, config: NatConfig = NatConfig()) -> None:  # noqa: B008
    network.add_nat("home", NAT_IP, config)
    network.add_host("client", "127.16.1.2", nat="home", up=LinkProfile(delay_s=0.01))
    network.add_host("server", SERVER[0], down=LinkProfile(delay_s=0.01))
    network.add_host("stranger", "127.1.0.7")


async def bound(network: Network, host: str, port: int) -> VirtualUDPSocket:
    sock = network.host(host).socket()
    await sock.bind(("0.0.0.0", port))
    return sock


async def test_client_behind_nat_reaches_server_and_gets_reply(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    async with open_network(seed=1, recorder=recorder) as network:
        build(network)
        server = await bound(network, "server", SERVER[1])
        client = await bound(network, "client", 5000)
        await client.sendto(b"hello", SERVER)
        data, public = await server.recvfrom(100)
        assert data == b"hello"
        assert public[0] == NAT_IP
        assert public != ("127.16.1.2", 5000)
        await server.sendto(b"welcome", public)
        assert await client.recvfrom(100) == (b"welcome", SERVER)
        (mapping,) = network.nat("home").mappings(trio.current_time())
        assert (mapping.private, mapping.public) == (("127.16.1.2", 5000), public)
    nat_events = [dict(e.fields) for e in recorder.events("nat")]
    assert nat_events == [
        {
            "nat": "home",
            "event": "mapping",
            "private": "127.16.1.2:5000",
            "public": f"{public[0]}:{public[1]}",
        }
    ]
    (deliver,) = [e for e in recorder.events("deliver") if e.fields["id"] == 2]
    assert deliver.fields["dst"] == "127.16.1.2:5000"


async def test_unsolicited_inbound_dropped(autojump_clock: trio.testing.MockClock) -> None:
    async with open_network(seed=2) as network:
        build(network)
        server = await bound(network, "server", SERVER[1])
        stranger = await bound(network, "stranger", 6000)
        client = await bound(network, "client", 5000)
        await stranger.sendto(b"knock", (NAT_IP, 20000))
        await client.sendto(b"hello", SERVER)
        _, public = await server.recvfrom(100)
        await stranger.sendto(b"sneak", public)  # mapping exists, but never sent to stranger
        with trio.move_on_after(10) as scope:
            await client.recvfrom(100)
        assert scope.cancelled_caught
        assert network.statistics().drops == {
            DropReason.NAT_NO_MAPPING: 1,
            DropReason.NAT_FILTERED: 1,
        }


async def test_endpoint_independent_filtering_admits_anyone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_network(seed=2) as network:
        build(network, NatConfig(filtering=Behaviour.ENDPOINT_INDEPENDENT))
        server = await bound(network, "server", SERVER[1])
        stranger = await bound(network, "stranger", 6000)
        client = await bound(network, "client", 5000)
        await client.sendto(b"hello", SERVER)
        _, public = await server.recvfrom(100)
        await stranger.sendto(b"anyone", public)
        assert await client.recvfrom(100) == (b"anyone", ("127.1.0.7", 6000))


async def test_idle_mapping_expires(autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    async with open_network(seed=3, recorder=recorder) as network:
        build(network, NatConfig(timeout_s=30.0))
        server = await bound(network, "server", SERVER[1])
        client = await bound(network, "client", 5000)
        await client.sendto(b"hello", SERVER)
        _, public = await server.recvfrom(100)
        await trio.sleep(29.0)
        await server.sendto(b"in time", public)
        assert (await client.recvfrom(100))[0] == b"in time"
        await trio.sleep(31.0)
        await server.sendto(b"too late", public)
        with trio.move_on_after(10) as scope:
            await client.recvfrom(100)
        assert scope.cancelled_caught
        assert network.statistics().drops == {DropReason.NAT_EXPIRED: 1}
        await client.sendto(b"again", SERVER)
        _, new_public = await server.recvfrom(100)
        assert new_public[0] == NAT_IP
    events = [(e.fields["event"], e.fields.get("public")) for e in recorder.events("nat")]
    assert events == [
        ("mapping", f"{NAT_IP}:{public[1]}"),
        ("expired", f"{NAT_IP}:{public[1]}"),
        ("mapping", f"{NAT_IP}:{new_public[1]}"),
    ]


async def test_rebinding_changes_source_port(autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    async with open_network(seed=4, recorder=recorder) as network:
        build(network)
        server = await bound(network, "server", SERVER[1])
        client = await bound(network, "client", 5000)
        await client.sendto(b"before", SERVER)
        _, before = await server.recvfrom(100)
        network.rebind_nat("home")
        await server.sendto(b"to old port", before)
        await client.sendto(b"after", SERVER)
        _, after = await server.recvfrom(100)
        assert after[0] == before[0]
        assert after[1] != before[1]
        await server.sendto(b"to new port", after)
        assert (await client.recvfrom(100))[0] == b"to new port"
        assert network.statistics().drops == {DropReason.NAT_NO_MAPPING: 1}
        network.rebind_nat("home", "127.1.0.101")
        await client.sendto(b"new address", SERVER)
        _, moved = await server.recvfrom(100)
        assert moved[0] == "127.1.0.101"
        await server.sendto(b"reaches", moved)
        assert (await client.recvfrom(100))[0] == b"reaches"
    rebinds = [
        e.fields["public_ip"] for e in recorder.events("nat") if e.fields["event"] == "rebind"
    ]
    assert rebinds == [NAT_IP, "127.1.0.101"]


async def test_hosts_behind_same_nat_talk_directly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_network(seed=5) as network:
        build(network)
        network.add_host("laptop", "127.16.1.3", nat="home")
        client = await bound(network, "client", 5000)
        laptop = await bound(network, "laptop", 5001)
        await client.sendto(b"lan", ("127.16.1.3", 5001))
        assert await laptop.recvfrom(10) == (b"lan", ("127.16.1.2", 5000))
        assert trio.current_time() == 0.01  # client's up link only
        assert network.nat("home").statistics().packets_out == 0
        network.partition(["client"], ["server"])  # same side: LAN traffic unaffected
        await laptop.sendto(b"still", ("127.16.1.2", 5000))
        assert (await client.recvfrom(10))[0] == b"still"


async def test_private_address_unreachable_from_outside(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_network(seed=6) as network:
        build(network)
        await bound(network, "client", 5000)
        server = await bound(network, "server", SERVER[1])
        await server.sendto(b"direct", ("127.16.1.2", 5000))
        await trio.sleep(1)
        assert network.statistics().drops == {DropReason.NO_ROUTE: 1}
