"""VirtualUDPSocket is a verified fake: every test here runs against a real trio
UDP socket on 127.0.0.1 (real clock, trio.fail_after) and against netsim's
virtual socket on an unimpaired network (MockClock with autojump)."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing

from netsim.network import open_network

VIRTUAL_IP = "127.1.0.1"
LOOPBACK_IP = "127.0.0.1"


@dataclass
class Stack:
    """How a test body makes sockets: same calls for both implementations."""

    kind: str
    ip: str
    host: Any = None  # netsim Host for the virtual stack

    def socket(self) -> Any:
        if self.host is not None:
            return self.host.socket()
        return trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)

    async def bound(self) -> Any:
        sock = self.socket()
        await sock.bind((self.ip, 0))
        return sock

    def deadline(self) -> AbstractContextManager[trio.CancelScope]:
        return trio.fail_after(5)


@pytest.fixture(params=["loopback", "netsim"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock(kind: str) -> trio.testing.MockClock | None:
    return trio.testing.MockClock(autojump_threshold=0) if kind == "netsim" else None


@pytest.fixture
async def stack(kind: str) -> AsyncIterator[Stack]:
    if kind == "loopback":
        yield Stack(kind, LOOPBACK_IP)
        return
    async with open_network(seed=1) as network:
        host = network.add_host("h", VIRTUAL_IP)
        yield Stack(kind, VIRTUAL_IP, host)


async def test_unbound_name_then_bind(stack: Stack, clock: object) -> None:
    with stack.deadline(), stack.socket() as sock:
        assert sock.getsockname() == ("0.0.0.0", 0)
        await sock.bind((stack.ip, 0))
        ip, port = sock.getsockname()
        assert ip == stack.ip
        assert 0 < port <= 65535


async def test_bind_any_address(stack: Stack, clock: object) -> None:
    with stack.deadline(), stack.socket() as sock:
        await sock.bind(("0.0.0.0", 0))
        ip, port = sock.getsockname()
        assert ip == "0.0.0.0"
        assert port > 0


async def test_sendto_auto_binds_ephemeral_port(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as receiver, stack.socket() as sender:
        assert await sender.sendto(b"hello", receiver.getsockname()) == 5
        ip, port = sender.getsockname()
        assert ip == "0.0.0.0"
        assert port != 0
        data, source = await receiver.recvfrom(100)
        assert data == b"hello"
        assert source == (stack.ip, port)


async def test_round_trip_with_source_address(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as a, await stack.bound() as b:
        await a.sendto(b"ping", b.getsockname())
        data, source = await b.recvfrom(1024)
        assert (data, source) == (b"ping", a.getsockname())
        await b.sendto(b"pong", source)
        assert await a.recvfrom(1024) == (b"pong", b.getsockname())


async def test_bufsize_truncates_datagram(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as a, await stack.bound() as b:
        await a.sendto(b"abcdef", b.getsockname())
        await a.sendto(b"xyz", b.getsockname())
        assert (await b.recvfrom(3))[0] == b"abc"
        assert (await b.recvfrom(100))[0] == b"xyz"


async def test_empty_datagram_and_zero_bufsize(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as a, await stack.bound() as b:
        await a.sendto(b"", b.getsockname())
        await a.sendto(b"lost", b.getsockname())
        await a.sendto(b"kept", b.getsockname())
        assert await b.recvfrom(10) == (b"", a.getsockname())
        assert await b.recvfrom(0) == (b"", a.getsockname())
        assert (await b.recvfrom(10))[0] == b"kept"


async def test_bind_port_in_use(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as a, stack.socket() as b:
        with pytest.raises(OSError, match="in use") as info:
            await b.bind(a.getsockname())
        assert info.value.errno == errno.EADDRINUSE


async def test_bind_twice_is_invalid(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as a:
        with pytest.raises(OSError) as info:
            await a.bind((stack.ip, 0))
        assert info.value.errno == errno.EINVAL


async def test_port_reusable_after_close(stack: Stack, clock: object) -> None:
    with stack.deadline():
        a = await stack.bound()
        address = a.getsockname()
        a.close()
        with stack.socket() as b:
            await b.bind(address)
            assert b.getsockname() == address


async def test_closed_socket_raises_ebadf(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as peer:
        sock = await stack.bound()
        sock.close()
        sock.close()  # idempotent
        with pytest.raises(OSError) as info:
            sock.getsockname()
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError) as info:
            await sock.sendto(b"x", peer.getsockname())
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError) as info:
            await sock.recvfrom(10)
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError) as info:
            await sock.bind((stack.ip, 0))
        assert info.value.errno == errno.EBADF


async def test_context_manager_closes(stack: Stack, clock: object) -> None:
    with stack.deadline():
        with stack.socket() as sock:
            pass
        with pytest.raises(OSError) as info:
            sock.getsockname()
        assert info.value.errno == errno.EBADF


async def test_close_while_receiving(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as sock:
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await sock.recvfrom(10)

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            sock.close()


async def test_oversized_datagram(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as a, await stack.bound() as b:
        with pytest.raises(OSError) as info:
            await a.sendto(b"x" * 65508, b.getsockname())
        assert info.value.errno == errno.EMSGSIZE
        assert await a.sendto(b"y" * 65507, b.getsockname()) == 65507
        data, _ = await b.recvfrom(70000)
        assert data == b"y" * 65507


async def test_bad_arguments(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as a:
        with pytest.raises(OSError) as info:
            await a.sendto(b"x", (stack.ip, 0))
        assert info.value.errno == errno.EINVAL
        with pytest.raises(OverflowError):
            await a.sendto(b"x", (stack.ip, 70000))
        with pytest.raises(ValueError, match="negative"):
            await a.recvfrom(-1)
        with pytest.raises(TypeError):
            await a.sendto("text", (stack.ip, 9))


async def test_send_to_port_without_listener_is_silent(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as a, await stack.bound() as b:
        gone = await stack.bound()
        gone_address = gone.getsockname()
        gone.close()
        assert await a.sendto(b"void", gone_address) == 4
        await a.sendto(b"real", b.getsockname())
        assert await b.recvfrom(10) == (b"real", a.getsockname())
        await b.sendto(b"back", a.getsockname())
        assert (await a.recvfrom(10))[0] == b"back"


async def test_order_preserved(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as a, await stack.bound() as b:
        for i in range(50):
            await a.sendto(i.to_bytes(2, "big"), b.getsockname())
        received = [int.from_bytes((await b.recvfrom(10))[0], "big") for _ in range(50)]
        assert received == list(range(50))


async def test_recvfrom_blocks_until_data(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as a, await stack.bound() as b:
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                data, _ = await b.recvfrom(10)
                got.append(data)

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []
            await a.sendto(b"wake", b.getsockname())
        assert got == [b"wake"]


async def test_recvfrom_is_checkpoint_with_data_queued(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as a, await stack.bound() as b:
        await a.sendto(b"one", b.getsockname())
        await a.sendto(b"two", b.getsockname())
        assert (await b.recvfrom(10))[0] == b"one"  # "two" is queued now (or soon)
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as scope:
            scope.cancel()
            await b.recvfrom(10)
        assert scope.cancelled_caught
        with trio.testing.assert_checkpoints():
            assert (await b.recvfrom(10))[0] == b"two"


async def test_sendto_is_checkpoint(stack: Stack, clock: object) -> None:
    with stack.deadline(), await stack.bound() as a, await stack.bound() as b:
        with trio.CancelScope() as scope:
            scope.cancel()
            await a.sendto(b"never", b.getsockname())
        assert scope.cancelled_caught
        with trio.testing.assert_checkpoints():
            await a.sendto(b"sent", b.getsockname())
        assert (await b.recvfrom(10))[0] == b"sent"
