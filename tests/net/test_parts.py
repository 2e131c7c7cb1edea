"""The shells' small parts, through their public functions: backoff, the hub-key query,
error unwrapping, the data-dir lock, listen errors, and the action runner's ordering and
backpressure."""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from netsim.network import Network, open_network
from netsim.socket import VirtualUDPSocket
from udpim.core.config import EndpointConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import Event as SessionEvent
from udpim.core.events import SessionEstablished
from udpim.core.session import Session
from udpim.im.actions import Action, Notify, Store
from udpim.im.events import StoreFailed
from udpim.im.ops import OutboxCounts
from udpim.net.actions import STORE_BACKLOG_LIMIT, ActionRunner
from udpim.net.datadir import DAEMON_LOCK, hold_data_dir
from udpim.net.errors import DataDirBusy, ListenError, PeerRefused, ServiceFailed, plain_errors
from udpim.net.hub import HubConfig, serve_hub
from udpim.net.keyquery import QUERY, QUERY_BYTES, answer_query, parse_answer_untrusted
from udpim.net.listen import SOCKET_RECEIVE_BUFFER_BYTES, open_udp_socket
from udpim.net.peer import PeerConfig, serve_peer
from udpim.net.reconnect import Backoff
from udpim.net.udp import EndpointDriver
from udpim.store.base import StoreError

KEY = bytes(range(32))


def test_backoff_doubles_from_1_s_to_60_s_with_jitter() -> None:
    low = Backoff(lambda n: b"\x00" * n)
    assert [low.next_delay_s() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    low.reset()
    assert low.next_delay_s() == 1
    high = Backoff(lambda n: b"\xff" * n)
    delays = [high.next_delay_s() for _ in range(8)]
    assert delays[:6] == pytest.approx([1.5, 3, 6, 12, 24, 48], rel=1e-6)
    assert delays[6:] == [60, 60]


def test_key_query_answers_only_the_exact_query_and_never_amplifies() -> None:
    answer = answer_query(QUERY, KEY)
    assert answer is not None
    assert len(answer) < len(QUERY) == QUERY_BYTES
    assert parse_answer_untrusted(answer) == KEY
    assert QUERY[0] >> 6 != 1  # not a udpim version-1 packet
    for other in (b"", QUERY[:-1], QUERY + b"\x00", b"\x40" + QUERY[1:]):
        assert answer_query(other, KEY) is None
    for garbage in (b"", answer[:-1], answer + b"x", b"\x01" + answer[1:], QUERY):
        assert parse_answer_untrusted(garbage) is None


async def fail() -> None:
    raise PeerRefused("refused")


async def run_unwrapped(*tasks: Any) -> None:
    with plain_errors():
        async with trio.open_nursery() as nursery:
            for task in tasks:
                nursery.start_soon(task)


async def test_plain_errors_unwraps_one_udpim_error_only() -> None:
    with pytest.raises(PeerRefused, match=r"^refused$"):
        await run_unwrapped(trio.sleep_forever, fail)
    with pytest.raises(ExceptionGroup):
        await run_unwrapped(fail, fail)


def test_one_service_per_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    with hold_data_dir(data_dir, DAEMON_LOCK, "daemon"):
        assert data_dir.stat().st_mode & 0o777 == 0o700
        with (
            pytest.raises(DataDirBusy, match=rf"^another daemon is already running on {data_dir}$"),
            hold_data_dir(data_dir, DAEMON_LOCK, "daemon"),
        ):
            pass
    with hold_data_dir(data_dir, DAEMON_LOCK, "daemon"):  # released: usable again
        pass


async def test_listen_errors_are_one_line(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(
            ListenError, match=rf"^cannot listen on 127.0.0.1:{port}: address in use$"
        ):
            await open_udp_socket(("127.0.0.1", port))
        with pytest.raises(ListenError, match=r"address in use$"):
            await serve_hub(HubConfig(tmp_path / "hub", ("127.0.0.1", port)))


def _rmem_max() -> int | None:
    """Linux's cap on a socket's requested receive queue, if this is Linux."""
    path = Path("/proc/sys/net/core/rmem_max")
    return int(path.read_text()) if path.exists() else None


async def test_a_listening_socket_asks_for_a_large_receive_queue() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
        default = plain.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    sock = await open_udp_socket(("127.0.0.1", 0))
    with sock:
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    cap = _rmem_max()
    if cap is None:
        assert granted >= default
    else:  # Linux grants min(asked, rmem_max), doubled for its bookkeeping
        assert granted == 2 * min(SOCKET_RECEIVE_BUFFER_BYTES, cap)


async def test_second_hub_on_a_data_dir_fails(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        with trio.fail_after(10):
            await nursery.start(serve_hub, HubConfig(tmp_path / "hub", ("127.0.0.1", 0)))
        with pytest.raises(DataDirBusy, match=r"^another hub is already running on "):
            await serve_hub(HubConfig(tmp_path / "hub", ("127.0.0.1", 0)))
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- ActionRunner


class FailingStore:
    """Every op fails (a broken disk)."""

    def submit(self, op: object) -> HeldPending:
        pending = HeldPending(None)
        pending.error = StoreError("disk on fire")
        pending.released.set()
        return pending

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class HeldPending:
    """A store completion the test releases by hand."""

    def __init__(self, result: object) -> None:
        self.result = result
        self.released = trio.Event()
        self.error: StoreError | None = None

    async def wait(self) -> object:
        await self.released.wait()
        return self.result_nowait()

    def result_nowait(self) -> object:
        if not self.released.is_set():
            raise trio.WouldBlock
        if self.error is not None:
            raise self.error
        return self.result


class HeldStore:
    def __init__(self) -> None:
        self.pendings: list[HeldPending] = []

    def submit(self, op: object) -> HeldPending:
        pending = HeldPending(len(self.pendings))
        self.pendings.append(pending)
        return pending

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class RecordingCore:
    def __init__(self) -> None:
        self.outcomes: list[tuple[int, object]] = []

    def on_store_result(self, token: int, result: object) -> list[Action]:
        self.outcomes.append((token, result))
        return []

    def on_store_error(self, token: int, error: Exception) -> list[Action]:
        self.outcomes.append((token, str(error)))
        return [Notify(StoreFailed("op", str(error)))]


class NullSocket:
    async def sendto(self, data: bytes, address: Any, /) -> int:
        await trio.lowlevel.checkpoint()
        return len(data)

    async def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    def getsockname(self) -> Any:
        return ("127.0.0.1", 9)

    def close(self) -> None:
        pass


async def test_store_outcomes_in_submission_order_with_backpressure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, core = HeldStore(), RecordingCore()
    notices: list[object] = []
    endpoint = Endpoint(EndpointConfig(), StaticKey.generate(lambda n: b"\x01" * n), bytes)
    driver = EndpointDriver(endpoint, NullSocket(), lambda s, e: None)
    runner = ActionRunner(core, driver, store, on_notify=notices.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.serve)
        runner.run([Store(token, OutboxCounts()) for token in range(STORE_BACKLOG_LIMIT)])
        assert runner.store_backlog == STORE_BACKLOG_LIMIT
        with trio.move_on_after(5) as scope:
            await runner.wait_for_room()  # full: input waits
        assert scope.cancelled_caught
        store.pendings[1].error = StoreError("disk full")
        for pending in reversed(store.pendings):  # complete out of order
            pending.released.set()
        with trio.fail_after(5):
            await runner.wait_for_room()
        await trio.sleep(1)
        assert runner.store_backlog == 0
        nursery.cancel_scope.cancel()
    expected: list[tuple[int, object]] = [(token, token) for token in range(STORE_BACKLOG_LIMIT)]
    expected[1] = (1, "disk full")
    assert core.outcomes == expected
    assert notices == [StoreFailed("op", "disk full")]


async def test_services_stop_when_their_state_cannot_be_loaded(tmp_path: Path) -> None:
    hub = HubConfig(tmp_path / "hub", ("127.0.0.1", 0))
    with (
        trio.fail_after(10),
        pytest.raises(ServiceFailed, match=r"^cannot load the hub's accounts: disk on fire$"),
    ):
        await serve_hub(hub, sock=NullSocket(), store=FailingStore())
    peer = PeerConfig(tmp_path / "peer", "alice", ("127.0.0.1", 9), hub_key=KEY)
    with (
        trio.fail_after(10),
        pytest.raises(ServiceFailed, match=r"^cannot load the daemon's state: disk on fire$"),
    ):
        await serve_peer(peer, sock=NullSocket(), store=FailingStore(), control=False)


async def server_and_client(
    network: Network,
) -> tuple[StaticKey, VirtualUDPSocket, VirtualUDPSocket]:
    """Hosts "server" (127.1.0.1, socket on port 7000, with a fixed key) and "client"
    (127.1.0.2, any port) on ``network``: the server's key and both bound sockets."""
    network.add_host("server", "127.1.0.1")
    network.add_host("client", "127.1.0.2")
    server_key = StaticKey.generate(lambda n: b"\x02" * n)
    server_sock = network.host("server").socket()
    await server_sock.bind(("0.0.0.0", 7000))
    client_sock = network.host("client").socket()
    await client_sock.bind(("0.0.0.0", 0))
    return server_key, server_sock, client_sock


async def test_a_dial_before_the_driver_loops_run_is_not_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``connect`` wakes the timer loop; a wake set before the loop first ran must
    still flush the initiation (it was once dropped by re-arming the wake too early)."""
    async with open_network(seed=1) as network:
        server_key, server_sock, client_sock = await server_and_client(network)
        established = trio.Event()

        def on_client_event(session: Session, event: SessionEvent) -> None:
            if isinstance(event, SessionEstablished):
                established.set()

        server = EndpointDriver(
            Endpoint(EndpointConfig(), server_key, random.Random(1).randbytes),
            server_sock,
            lambda s, e: None,
        )
        client = EndpointDriver(
            Endpoint(EndpointConfig(), StaticKey.generate(bytes), random.Random(2).randbytes),
            client_sock,
            on_client_event,
        )
        client.connect(server_key.public, ("127.1.0.1", 7000))  # before any loop ran
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            await nursery.start(client.serve)
            with trio.fail_after(5):
                await established.wait()
            nursery.cancel_scope.cancel()
