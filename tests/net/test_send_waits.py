"""``PeerHandle.send`` following one message: states in order, the daemon stopping, timeouts.

``send`` follows its message through a small per-message waiter (``udpim.net.peerhandle``);
these tests pin what a caller sees through it, in simulation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from tests.net.world import open_world, wait_until
from udpim.im.events import OutboxChanged
from udpim.net.errors import SendTimeout, ServiceFailed


async def test_send_reports_each_state_in_order_and_returns_the_one_waited_for(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, 3) as world:
        await world.start_hub()
        alice, _ = await world.welcomed_daemons("alice", "bob")
        seen: list[str] = []

        async def on_state(changed: OutboxChanged) -> None:
            seen.append(changed.state.value)

        with trio.fail_after(60):
            done = await alice.handle.send("bob", "hi", wait="delivered", on_state=on_state)
        assert done.state.value == "delivered"
        assert seen == ["queued", "accepted", "delivered"]


async def test_send_waiting_when_the_daemon_stops_fails_with_the_last_state(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, 4) as world:
        await world.start_hub()
        alice, bob = await world.welcomed_daemons("alice", "bob")
        await world.stop(bob)  # nothing can be delivered now
        failure: list[BaseException] = []

        async def send() -> None:
            try:
                await alice.handle.send("bob", "never delivered", wait="delivered")
            except ServiceFailed as exc:
                failure.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            await wait_until(
                lambda: alice.count_states("accepted") == 1, timeout_s=60, what="accepted"
            )
            await world.stop(alice)
        assert len(failure) == 1
        assert str(failure[0]).startswith("the daemon stopped; message ")
        assert str(failure[0]).endswith(" was accepted")


async def test_send_timeout_names_the_state_reached(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, 5) as world:
        await world.start_hub()
        alice, bob = await world.welcomed_daemons("alice", "bob")
        await world.stop(bob)
        with pytest.raises(SendTimeout, match=r"not delivered after 5 s: the hub has it"):
            await alice.handle.send("bob", "later", wait="delivered", timeout_s=5)
