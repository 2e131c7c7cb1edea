"""Crashes in simulation: kill the hub or a daemon at arbitrary moments while messages
flow (all memory lost, files kept), restart it on the same data directory, and check
that no acknowledged message is lost and none is duplicated or reordered.

A message counts as acknowledged once ``send`` returned (it is on the sender's disk:
state ``queued``). A ``send`` cut short by its daemon's crash has an unknown outcome:
the message may or may not arrive, but never twice and never out of order.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trio.testing

from netsim.models import LinkProfile
from tests.net.world import DaemonNode, Node, World, open_world, wait_until
from udpim.net.errors import ServiceFailed

LINK = LinkProfile(delay_s=0.05, jitter_s=0.02, reorder=True, loss=0.02)
MESSAGES = 250
_NUMBER = re.compile(r"#(\d+)$")


@dataclass
class Traffic:
    """What one sender tried and what it knows reached its disk."""

    sender: DaemonNode
    to: str
    attempted: list[int] = field(default_factory=list)
    confirmed: list[int] = field(default_factory=list)


async def send_steadily(traffic: Traffic, rng: random.Random) -> None:
    node = traffic.sender
    for number in range(MESSAGES):
        await trio.sleep(rng.uniform(0.0, 0.5))  # a steady flow: always something in flight
        if not node.running:
            await wait_until(lambda: node.running, timeout_s=600, poll_s=0.5)
        traffic.attempted.append(number)
        try:
            await node.handle.send(traffic.to, f"{node.user}->{traffic.to} #{number}")
        except ServiceFailed:  # the daemon crashed under us: outcome unknown
            continue
        traffic.confirmed.append(number)


async def crash_repeatedly(
    world: World, node: Node, rng: random.Random, times: int, max_down_s: float
) -> None:
    for _ in range(times):
        await trio.sleep(rng.uniform(5.0, 30.0))
        await world.crash(node)
        await trio.sleep(rng.uniform(0.0, max_down_s))
        await world.restart(node)


async def received(node: DaemonNode, sender: str) -> list[int]:
    """The numbers of ``sender``'s messages in ``node``'s inbox, in inbox order."""
    found = []
    for entry in await node.handle.inbox():
        if entry.sender == sender:
            match = _NUMBER.search(entry.body)
            assert match is not None
            found.append(int(match.group(1)))
    return found


async def settle_and_check(nodes: dict[str, DaemonNode], flows: list[Traffic]) -> None:
    """Wait until every acknowledged message arrived and every outbox is empty; then
    check exactly-once, in-order delivery."""

    async def all_arrived() -> bool:
        for flow in flows:
            recipient = nodes[flow.to]
            if not recipient.running or not set(flow.confirmed) <= set(
                await received(recipient, flow.sender.user)
            ):
                return False
        return True

    async def outboxes_empty() -> bool:
        for node in nodes.values():
            outbox = (await node.handle.status())["outbox"]
            assert isinstance(outbox, dict)
            if outbox["queued"] or outbox["accepted"]:
                return False
        return True

    await wait_until(all_arrived, timeout_s=3600, poll_s=5.0, what="acknowledged messages")
    await wait_until(outboxes_empty, timeout_s=3600, poll_s=5.0, what="receipts")
    for flow in flows:
        got = await received(nodes[flow.to], flow.sender.user)
        assert got == sorted(set(got)), f"{flow.sender.user}: duplicated or reordered: {got}"
        assert set(flow.confirmed) <= set(got) <= set(flow.attempted)


async def start_pair(world: World) -> tuple[dict[str, DaemonNode], list[Traffic]]:
    await world.start_hub()
    alice = await world.daemon("alice", "alice", up=LINK, down=LINK)
    bob = await world.daemon("bob", "bob", up=LINK, down=LINK)
    carol = await world.daemon("carol", "carol", up=LINK, down=LINK)
    await world.wait_welcomed(alice, bob, carol)
    nodes = {"alice": alice, "bob": bob, "carol": carol}
    flows = [Traffic(alice, "bob"), Traffic(bob, "alice"), Traffic(carol, "bob")]
    return nodes, flows


@pytest.mark.parametrize("seed", [31, 32, 33])
async def test_hub_crashes_lose_and_duplicate_nothing(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    async with open_world(tmp_path, seed) as world:
        nodes, flows = await start_pair(world)
        assert world.hub is not None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(crash_repeatedly, world, world.hub, rng, 3, 90.0)
            for flow in flows:
                nursery.start_soon(send_steadily, flow, random.Random(rng.random()))
        assert world.hub.generation == 4
        await settle_and_check(nodes, flows)
        for flow in flows:  # the daemons never crashed: every send was acknowledged
            assert flow.confirmed == list(range(MESSAGES))


@pytest.mark.parametrize("seed", [41, 42, 43])
async def test_daemon_crashes_lose_and_duplicate_nothing(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    async with open_world(tmp_path, seed) as world:
        nodes, flows = await start_pair(world)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(crash_repeatedly, world, nodes["bob"], rng, 3, 60.0)
            nursery.start_soon(crash_repeatedly, world, nodes["alice"], rng, 1, 30.0)
            for flow in flows:
                nursery.start_soon(send_steadily, flow, random.Random(rng.random()))
        assert nodes["bob"].generation == 4
        await settle_and_check(nodes, flows)
