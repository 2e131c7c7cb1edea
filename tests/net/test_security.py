"""Who may log in and as whom: the hub decides, from the session's authenticated key.

* A daemon cannot take another user's name (``refused``: the daemon stops with
  ``PeerRefused``), and a client cannot put words in another user's mouth: ``from`` is
  the hub's idea of the session's user, whatever the ``send`` frame carries.
* A closed hub answers only registered keys (others get no handshake answer at all, and
  no key-query answer), and only for the name they were registered with.
* Messages to a name nobody owns are rejected: ``send`` raises ``UnknownUser``.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.net.rawclient import open_raw_client
from tests.net.world import HUB_ADDRESS, open_world, wait_until
from udpim.core.crypto import StaticKey
from udpim.identity import load_or_create_identity
from udpim.im.ops import BindAccount
from udpim.net.errors import PeerRefused, UnknownUser
from udpim.store.sqlite import SqliteStore


@pytest.mark.parametrize("seed", [11])
async def test_a_daemon_cannot_log_in_as_another_user(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        await world.start_hub()
        (alice,) = await world.welcomed_daemons("alice")
        mallory = await world.daemon("mallory", "alice")  # her own key, alice's name
        error = await world.wait_stopped(mallory)
        assert isinstance(error, PeerRefused)
        assert str(error) == (
            "the hub at 127.1.0.1:7000 refused us: user name belongs to another key"
        )
        assert mallory.welcomes() == 0
        change = await alice.handle.send("alice", "still mine", wait="delivered", timeout_s=60)
        assert change.state.value == "delivered"


@pytest.mark.parametrize("seed", [12])
async def test_from_is_the_sessions_user_not_client_input(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        hub = await world.start_hub()
        _alice, bob = await world.welcomed_daemons("alice", "bob")
        world.network.add_host("mallory", "127.1.0.66")
        key = StaticKey.generate(random.Random(seed).randbytes)
        host = world.network.host("mallory")
        async with open_raw_client(host, key, HUB_ADDRESS, hub.public_key, seed) as client:
            # Pretending to be alice on hello: refused, then the session is closed.
            client.send({"t": "hello", "user": "alice", "device": "00" * 8, "v": 1})
            refused = await client.wait_frame("refused")
            assert refused["reason"] == "user name belongs to another key"
            await client.wait_closed()
        async with open_raw_client(host, key, HUB_ADDRESS, hub.public_key, seed + 1) as client:
            client.send({"t": "hello", "user": "mallory", "device": "11" * 8, "v": 1})
            await client.wait_frame("welcome")
            message_id = "ab" * 12
            forged = {"t": "send", "id": message_id, "to": "bob", "body": "I am alice",
                      "sent_at": 5, "from": "alice", "sender": "alice"}  # fmt: skip
            client.send(forged)
            assert (await client.wait_frame("accepted"))["id"] == message_id
        await wait_until(lambda: bob.arrived() == 1, timeout_s=60)
        (entry,) = await bob.handle.inbox()
        assert (entry.sender, entry.id, entry.body) == ("mallory", message_id, "I am alice")


@pytest.mark.parametrize("seed", [13])
async def test_closed_hub_answers_registered_keys_only(
    seed: int,
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="udpim.net")
    async with open_world(tmp_path, seed) as world:
        alice = world.add_daemon("alice", "alice")
        alice_key, _ = load_or_create_identity(alice.data_dir)
        async with await SqliteStore.open(tmp_path / "hub" / "hub.db", "hub") as store:
            await store.submit(BindAccount("alice", alice_key.public)).wait()
        hub = await world.start_hub(closed=True)
        alice.hub_key = hub.public_key
        await world.start_daemon(alice)
        stranger = await world.daemon("stranger", "stranger")
        impostor = await world.daemon("impostor", "carol", copy_identity_of=alice)
        unpinned = world.add_daemon("unpinned", "dave")  # no --hub-key: asks for the key
        await world.start_daemon(unpinned)

        await world.wait_welcomed(alice)
        error = await world.wait_stopped(impostor)  # alice's key, but not as carol
        assert str(error) == "the hub at 127.1.0.1:7000 refused us: unknown user"
        await trio.sleep(200)
        stranger_status = await stranger.handle.status()
        assert stranger_status["connection"] == "disconnected"
        assert stranger.welcomes() == 0
        reconnect = stranger_status["reconnect"]
        assert isinstance(reconnect, dict)
        assert reconnect["attempts"] >= 2  # handshakes time out; the daemon keeps trying
        assert (await unpinned.handle.status())["hub_key"] is None  # no key-query answer
        hub_lines = [r.getMessage() for r in caplog.records if r.name == "udpim.net.hub"]
        assert any("unknown-peer" in line for line in hub_lines)
        assert (await alice.handle.send("alice", "hi", wait="delivered", timeout_s=60)).id


@pytest.mark.parametrize("seed", [14])
async def test_messages_to_nobody_are_rejected(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        await world.start_hub()
        (alice,) = await world.welcomed_daemons("alice")
        with pytest.raises(UnknownUser, match=r"^unknown user nobody$"):
            await alice.handle.send("nobody", "hello?", wait="accepted", timeout_s=60)
        (status,) = [await alice.handle.status()]
        assert status["outbox"] == {"queued": 0, "accepted": 0, "delivered": 0, "rejected": 1}


async def _adduser_while_running(tmp_path: Path, user: str, key: bytes) -> None:
    """What 'udpim hub adduser USER KEY' does: write the hub's database while it runs."""
    async with await SqliteStore.open(tmp_path / "hub" / "hub.db", "hub") as store:
        await store.submit(BindAccount(user, key)).wait()


@pytest.mark.parametrize("seed", [31])
async def test_a_closed_hub_lets_in_a_user_added_while_it_runs(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        hub = await world.start_hub(closed=True)
        bob = world.add_daemon("bob", "bob", hub_key=hub.public_key)
        bob_key, _ = load_or_create_identity(bob.data_dir)
        await world.start_daemon(bob)
        await trio.sleep(60)  # refused: its handshakes go unanswered, it keeps trying
        assert bob.welcomes() == 0
        await _adduser_while_running(tmp_path, "bob", bob_key.public)
        added_at = trio.current_time()
        await world.wait_welcomed(bob)
        # Within the daemon's next handshake attempts, not after a hub restart.
        assert trio.current_time() - added_at < 60
        assert (await bob.handle.send("bob", "in", wait="delivered", timeout_s=60)).id


@pytest.mark.parametrize("seed", [32])
async def test_an_open_hub_keeps_a_name_added_while_it_runs_for_its_key(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        hub = await world.start_hub()
        (carol,) = await world.welcomed_daemons("carol")  # the hub has read its accounts
        alice = world.add_daemon("alice", "alice", hub_key=hub.public_key)
        alice_key, _ = load_or_create_identity(alice.data_dir)
        await _adduser_while_running(tmp_path, "alice", alice_key.public)
        mallory = await world.daemon("mallory", "alice")  # first to ask, another key
        error = await world.wait_stopped(mallory)
        assert isinstance(error, PeerRefused)
        assert "user name belongs to another key" in str(error)
        await world.start_daemon(alice)
        await world.wait_welcomed(alice)
        assert (await carol.handle.send("alice", "yours", wait="delivered", timeout_s=60)).id
