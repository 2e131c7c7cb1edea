"""Hub and daemons behind NATs on impaired links: exactly once, in order, with receipts.

Every test is a deterministic simulation (netsim, virtual time); see tests/net/world.py.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
import trio.testing

from netsim.models import LinkProfile, Outage
from tests.net.world import DaemonNode, World, open_world, wait_until
from udpim.im.events import PresenceChanged, Welcomed

LOSSY = LinkProfile(delay_s=0.03, jitter_s=0.02, reorder=True, loss=0.05, duplicate=0.01)
"""5 % loss, reordering jitter and duplicates, both directions of every daemon's link."""
STATES = ["queued", "accepted", "delivered"]


async def chatter(
    node: DaemonNode,
    recipients: list[str],
    count: int,
    rng: random.Random,
    sent: dict[tuple[str, str], list[str]],
) -> None:
    """Send ``count`` messages to random recipients at random intervals, noting the ids."""
    for number in range(count):
        await trio.sleep(rng.uniform(0.0, 3.0))
        to = rng.choice(recipients)
        change = await node.handle.send(to, f"{node.user}->{to} #{number}")
        assert change.state.value == "queued"
        sent.setdefault((node.user, to), []).append(change.id)


async def check_exactly_once_in_order(
    nodes: dict[str, DaemonNode], sent: dict[tuple[str, str], list[str]]
) -> None:
    """Each recipient holds every message once, in send order per sender; every sender
    saw each of its messages go queued -> accepted -> delivered, each state once."""
    for user, node in nodes.items():
        inbox = await node.handle.inbox()
        assert len({(entry.sender, entry.id) for entry in inbox}) == len(inbox)
        for sender in nodes:
            got = [entry.id for entry in inbox if entry.sender == sender]
            assert got == sent.get((sender, user), []), f"{sender} -> {user}"
        assert node.arrived() == len(inbox)
    for (sender, _), ids in sent.items():
        for message_id in ids:
            assert nodes[sender].states(message_id) == STATES


def delivered_all(nodes: dict[str, DaemonNode], sent: dict[tuple[str, str], list[str]]) -> bool:
    return all(
        nodes[user].count_states("delivered")
        == sum(len(ids) for (sender, _), ids in sent.items() if sender == user)
        for user in nodes
    )


async def start_users(
    world: World, users: list[str], **links: LinkProfile
) -> dict[str, DaemonNode]:
    await world.start_hub()
    nodes = {
        user: await world.daemon(user, user, up=links.get(user, LOSSY), down=links.get(user, LOSSY))
        for user in users
    }
    await world.wait_welcomed(*nodes.values())
    return nodes


@pytest.mark.parametrize("seed", [1, 2])
async def test_chat_over_lossy_nats_with_an_outage(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Three users chat over lossy, reordering links; carol's link is down for 90 s
    (longer than the dead-peer timeout, so sessions end and are redialled)."""
    users = ["alice", "bob", "carol"]
    carol_link = LOSSY.with_changes(outages=(Outage(40.0, 130.0),))
    async with open_world(tmp_path, seed) as world:
        nodes = await start_users(world, users, carol=carol_link)
        sent: dict[tuple[str, str], list[str]] = {}
        rng = random.Random(seed)
        async with trio.open_nursery() as nursery:
            for user in users:
                others = [u for u in users if u != user]
                nursery.start_soon(chatter, nodes[user], others, 30, rng, sent)
        await wait_until(lambda: delivered_all(nodes, sent), timeout_s=1800, what="receipts")
        await check_exactly_once_in_order(nodes, sent)
        assert len(nodes["carol"].notices(Welcomed)) >= 2  # carol reconnected
        carol_seen = [
            e.online
            for e in nodes["alice"].notices(PresenceChanged)
            if isinstance(e, PresenceChanged) and e.user == "carol"
        ]
        assert carol_seen[0] is True
        assert False in carol_seen
        assert carol_seen[-1] is True
