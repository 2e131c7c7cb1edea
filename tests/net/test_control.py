"""The control socket on a real Unix socket, with a real hub and daemons on loopback
(real clock; every wait bounded by ``trio.fail_after``).

The CLI is a blocking client (``control_request``), run here in a worker thread.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from udpim.net.control import (
    CONTROL_SOCKET,
    check_peer_credentials,
    control_request,
    open_control_listener,
    serve_control,
)
from udpim.net.errors import ControlError, DaemonNotRunning, DataDirBusy
from udpim.net.hub import HubConfig, HubInfo, serve_hub
from udpim.net.peer import PeerConfig, PeerInfo, serve_peer

LOOPBACK = ("127.0.0.1", 0)
STEP_S = 10.0


@dataclass
class Chat:
    hub: HubInfo
    alice: PeerInfo
    bob: PeerInfo
    alice_dir: Path
    bob_dir: Path


def peer_config(data_dir: Path, user: str, hub: HubInfo) -> PeerConfig:
    return PeerConfig(data_dir, user, hub.address, hub_key=hub.public_key, listen=LOOPBACK)


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[Chat]:
    """A real hub and the daemons of alice and bob, with their control sockets."""
    async with trio.open_nursery() as nursery:
        with trio.fail_after(STEP_S):
            hub = await nursery.start(serve_hub, HubConfig(tmp_path / "hub", LOOPBACK))
            alice = await nursery.start(serve_peer, peer_config(tmp_path / "alice", "alice", hub))
            bob = await nursery.start(serve_peer, peer_config(tmp_path / "bob", "bob", hub))
        yield Chat(hub, alice, bob, tmp_path / "alice", tmp_path / "bob")
        nursery.cancel_scope.cancel()


async def ask(data_dir: Path, request: dict[str, Any], timeout_s: float = STEP_S) -> list[Any]:
    """Every answer to ``request`` (the CLI's blocking client, in a thread)."""
    with trio.fail_after(timeout_s + 1):
        return await trio.to_thread.run_sync(
            lambda: list(control_request(data_dir, request, timeout_s=timeout_s))
        )


async def test_send_inbox_and_status(chat: Chat) -> None:
    request = {"cmd": "send", "to": "bob", "text": "hé, bob", "wait": "delivered", "timeout": 5}
    answers = await ask(chat.alice_dir, request)
    assert [a["state"] for a in answers] == ["queued", "accepted", "delivered"]
    assert all(a["ok"] is True and a["id"] == answers[0]["id"] for a in answers)

    (inbox,) = await ask(chat.bob_dir, {"cmd": "inbox"})
    (message,) = inbox["messages"]
    assert inbox["ok"] is True
    assert {k: message[k] for k in ("id", "from", "to", "text")} == {
        "id": answers[0]["id"],
        "from": "alice",
        "to": "bob",
        "text": "hé, bob",
    }
    assert message["received_at"] >= message["sent_at"] > 1_600_000_000_000

    (answer,) = await ask(chat.alice_dir, {"cmd": "status"})
    status = answer["status"]
    assert (status["user"], status["device"]) == ("alice", chat.alice.device)
    assert status["hub"] == f"127.0.0.1:{chat.hub.address[1]}"
    assert status["connection"] == "welcomed"
    assert status["outbox"] == {"queued": 0, "accepted": 0, "delivered": 1, "rejected": 0}
    assert status["presence"] == {"bob": True}
    session = status["session"]
    assert session["state"] == "established"
    assert session["heartbeat_interval_s"] == 25.0
    assert session["rtt_ms"] > 0
    assert {"loss_percent", "frames_retransmitted", "packets_lost"} <= set(session)
    (answer,) = await ask(chat.bob_dir, {"cmd": "status"})
    assert answer["status"]["inbox"] == 1


async def test_inbox_follow_streams_new_messages(chat: Chat) -> None:
    sender, receiver = trio.open_memory_channel[dict[str, Any]](10)
    token = trio.lowlevel.current_trio_token()

    def follow() -> None:
        answers = control_request(chat.bob_dir, {"cmd": "inbox", "follow": True}, timeout_s=5)
        for count, answer in enumerate(answers, start=1):
            trio.from_thread.run_sync(sender.send_nowait, answer, trio_token=token)
            if count == 2:
                answers.close()  # the client hangs up; the daemon stops streaming

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, follow)
        with trio.fail_after(STEP_S):
            first = await receiver.receive()
            assert first == {"ok": True, "messages": []}
            await chat.alice.handle.send("bob", "live")
            second = await receiver.receive()
    assert second["message"]["text"] == "live"
    assert second["message"]["from"] == "alice"


async def test_errors_are_one_line(chat: Chat) -> None:
    request = {"cmd": "send", "to": "nobody", "text": "?", "wait": "accepted", "timeout": 5}
    with pytest.raises(ControlError, match=r"^unknown user nobody$") as caught:
        await ask(chat.alice_dir, request)
    assert caught.value.response is not None
    assert caught.value.response["state"] == "rejected"
    with pytest.raises(ControlError, match=r"^unknown command 'fly' \(expected"):
        await ask(chat.alice_dir, {"cmd": "fly"})
    with pytest.raises(ControlError, match=r'^send needs "to" and "text" strings$'):
        await ask(chat.alice_dir, {"cmd": "send", "to": "bob"})
    with pytest.raises(ControlError, match=r"^bad user name 'Bob!'$"):
        await ask(chat.alice_dir, {"cmd": "send", "to": "Bob!", "text": "x"})
    assert await raw_exchange(chat.alice_dir, b"not json\n") == [
        {"ok": False, "error": "request is not a JSON object"}
    ]


async def raw_exchange(data_dir: Path, data: bytes) -> list[Any]:
    """Answers to raw bytes written on the control socket."""

    def run() -> list[Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(STEP_S)
            sock.connect(str(data_dir / CONTROL_SOCKET))
            sock.sendall(data)
            with sock.makefile("rb") as lines:
                return [json.loads(line) for line in lines]

    with trio.fail_after(STEP_S):
        return await trio.to_thread.run_sync(run)


async def test_permissions_and_one_daemon_per_data_dir(chat: Chat) -> None:
    assert stat.S_IMODE(chat.alice_dir.stat().st_mode) == 0o700
    path = chat.alice_dir / CONTROL_SOCKET
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = peer_config(chat.alice_dir, "alice", chat.hub)
    with pytest.raises(DataDirBusy, match=r"^another daemon is already running on "):
        await serve_peer(config)
    assert (await ask(chat.alice_dir, {"cmd": "status"}))[0]["ok"] is True


async def test_another_uid_is_refused(tmp_path: Path) -> None:
    async def handler(request: dict[str, object], reply: Any) -> None:
        await reply({"ok": True, "secret": 42})

    os.chmod(tmp_path, 0o700)
    listener = await open_control_listener(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_control(
            listener, handler, own_uid=os.getuid() + 1, task_status=task_status))  # fmt: skip
        with pytest.raises(ControlError, match=rf"^permission denied: uid {os.getuid()} may not"):
            await ask(tmp_path, {"cmd": "status"})
        nursery.cancel_scope.cancel()
    assert not (tmp_path / CONTROL_SOCKET).exists()  # removed on exit


def test_peer_credential_check() -> None:
    def ucred(pid: int, uid: int, gid: int) -> bytes:
        return struct.pack("3i", pid, uid, gid)

    assert check_peer_credentials(ucred(10, 1000, 1000), own_uid=1000) == 1000
    with pytest.raises(ControlError, match=r"^permission denied: uid 1001 may not use"):
        check_peer_credentials(ucred(10, 1001, 1000), own_uid=1000)
    with pytest.raises(ControlError, match=r"^cannot read the peer's credentials$"):
        check_peer_credentials(b"\x00" * 5, own_uid=1000)


def test_no_daemon_is_reported_as_not_running(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning, match=r"^daemon not running"):
        list(control_request(tmp_path, {"cmd": "status"}, timeout_s=1))
    with (
        stale_socket(tmp_path / CONTROL_SOCKET),
        pytest.raises(DaemonNotRunning, match=r"^daemon not running"),
    ):
        list(control_request(tmp_path, {"cmd": "status"}, timeout_s=1))


async def test_stale_socket_of_a_crashed_daemon_is_replaced(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * 90)  # long enough to need the /proc/self/fd alias
    data_dir.mkdir(mode=0o700)
    assert len(str(data_dir / CONTROL_SOCKET)) > 107
    with stale_socket(data_dir / CONTROL_SOCKET):
        async with trio.open_nursery() as nursery:
            with trio.fail_after(STEP_S):
                hub = await nursery.start(serve_hub, HubConfig(tmp_path / "hub", LOOPBACK))
                await nursery.start(serve_peer, peer_config(data_dir, "carol", hub))
            (answer,) = await ask(data_dir, {"cmd": "status"})
            assert answer["status"]["user"] == "carol"
            nursery.cancel_scope.cancel()
    assert not (data_dir / CONTROL_SOCKET).exists()


@contextmanager
def stale_socket(path: Path) -> Iterator[None]:
    """A socket file nobody listens on (what a killed daemon leaves behind)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
        try:
            sock.bind(f"/proc/self/fd/{fd}/{path.name}")  # short, whatever the path's length
        finally:
            os.close(fd)
    assert stat.S_ISSOCK(path.stat().st_mode)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


async def test_watch_shows_presence_in_status(chat: Chat) -> None:
    assert await ask(chat.alice_dir, {"cmd": "watch", "users": ["bob", "carol"]}) == [{"ok": True}]
    with trio.fail_after(STEP_S):
        while True:
            (answer,) = await ask(chat.alice_dir, {"cmd": "status"})
            if answer["status"]["presence"] == {"bob": True, "carol": False}:
                break
            await trio.sleep(0.01)
    assert answer["status"]["watching"] == ["bob", "carol"]
    with pytest.raises(ControlError, match=r'^watch needs "users": a list of names$'):
        await ask(chat.alice_dir, {"cmd": "watch", "users": "bob"})
