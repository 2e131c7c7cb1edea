"""Offline delivery and several devices per user, in simulation.

* A recipient offline for hours gets its whole backlog, in order, when it comes back;
  the sender sees every message delivered. The 1 000-message drain time is measured.
* A user with several devices (the same identity key copied) gets a copy on each device
  that existed when the message was stored, including a device that was offline.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from netsim.models import LinkProfile
from tests.net.world import DaemonNode, open_world, wait_until
from udpim.im.events import OutboxChanged
from udpim.net.errors import SendTimeout

BACKLOG = 1000
HOURS_OFFLINE = 3
CABLE = LinkProfile(delay_s=0.02, jitter_s=0.005, loss=0.01)


async def inbox_bodies(node: DaemonNode) -> list[str]:
    return [entry.body for entry in await node.handle.inbox()]


@pytest.mark.parametrize("seed", [7])
async def test_backlog_after_hours_offline_drains_in_order(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        await world.start_hub()
        alice, bob = await world.welcomed_daemons("alice", "bob", up=CABLE, down=CABLE)
        await world.stop(bob)  # bob's device exists on the hub; bob goes away
        bodies = [f"backlog #{number}" for number in range(BACKLOG)]
        ids = [(await alice.handle.send("bob", body)).id for body in bodies]
        await wait_until(
            lambda: alice.count_states("accepted") == BACKLOG, timeout_s=600, what="accepted"
        )
        await trio.sleep(HOURS_OFFLINE * 3600)
        assert alice.count_states("delivered") == 0

        await world.restart(bob)
        drain_s = await wait_until(
            lambda: bob.arrived() == BACKLOG, timeout_s=600, poll_s=0.05, what="backlog"
        )
        await wait_until(
            lambda: alice.count_states("delivered") == BACKLOG, timeout_s=600, what="receipts"
        )
        assert await inbox_bodies(bob) == bodies
        assert [e.id for e in await bob.handle.inbox()] == ids
        assert all(
            alice.states(message_id) == ["queued", "accepted", "delivered"] for message_id in ids
        )
        # Measured figure for the report: virtual seconds from restart to all stored.
        print(f"\n1000-message backlog drained in {drain_s:.2f} s (virtual, 1 % loss, 40 ms RTT)")
        assert drain_s < 30.0


@pytest.mark.parametrize("seed", [3])
async def test_every_device_of_a_user_gets_its_copy(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        await world.start_hub()
        alice = await world.daemon("alice", "alice")
        phone = await world.daemon("bob-phone", "bob")
        laptop = await world.daemon("bob-laptop", "bob", copy_identity_of=phone)
        await world.wait_welcomed(alice, phone, laptop)
        assert phone.handle.device != laptop.handle.device

        first = [f"first #{n}" for n in range(20)]
        for body in first:
            await alice.handle.send("bob", body)
        await wait_until(lambda: phone.arrived() == 20 and laptop.arrived() == 20, timeout_s=300)

        await world.stop(laptop)  # offline while more arrive
        tablet = world.add_daemon("bob-tablet", "bob", copy_identity_of=phone)
        tablet.hub_key = world.hub.public_key if world.hub else None
        second = [f"second #{n}" for n in range(20)]
        for body in second[:10]:
            await alice.handle.send("bob", body)
        await wait_until(lambda: phone.arrived() == 30, timeout_s=300)
        await world.start_daemon(tablet)  # a new device starts at the mailbox head
        await world.wait_welcomed(tablet)
        for body in second[10:]:
            await alice.handle.send("bob", body)
        await world.restart(laptop)
        await wait_until(
            lambda: phone.arrived() == 40 and laptop.arrived() == 40 and tablet.arrived() == 10,
            timeout_s=600,
            what="copies",
        )
        await wait_until(lambda: alice.count_states("delivered") == 40, timeout_s=600)

        assert await inbox_bodies(phone) == first + second
        assert await inbox_bodies(laptop) == first + second
        assert await inbox_bodies(tablet) == second[10:]
        # One receipt per message, however many devices got it.
        assert alice.count_states("delivered") == 40


@pytest.mark.parametrize("seed", [5])
async def test_waits_that_run_out_leave_the_message_queued(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        hub = await world.start_hub()
        alice, bob = await world.welcomed_daemons("alice", "bob")
        await world.stop(bob)
        with pytest.raises(SendTimeout) as caught:
            await alice.handle.send("bob", "are you there?", wait="delivered", timeout_s=10)
        (first,) = [e for e in alice.notices(OutboxChanged) if isinstance(e, OutboxChanged)][:1]
        assert str(caught.value) == (
            f"message {first.id} to bob not delivered after 10 s: the hub has it, "
            "bob has not received it yet (offline?)"
        )
        await world.crash(hub)
        with pytest.raises(SendTimeout, match=r"^hub unreachable: message [0-9a-f]{24} to bob "):
            await alice.handle.send("bob", "hello?", wait="accepted", timeout_s=10)
        await world.restart(hub)
        await world.restart(bob)
        await wait_until(lambda: bob.arrived() == 2, timeout_s=300)
        assert await inbox_bodies(bob) == ["are you there?", "hello?"]
