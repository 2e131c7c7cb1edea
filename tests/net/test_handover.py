"""Handover and outages (issue 5, item 3): the session survives or comes back, queued
messages drain both ways in order exactly once, and presence follows the documented
dead-peer timeout.

* Handover: the daemon's host moves to another network (another NAT with a shorter
  timeout). Its next packets come from the new address; the hub migrates the session (no
  re-login); the daemon notices its new local address and learns the new NAT's timeout.
* A 60-second outage (shorter than the dead-peer timeout): the same session resumes, no
  re-login, presence never flips.
* A 10-minute outage (a laptop asleep, or no network): the hub reports the user offline
  ``dead_peer_timeout = 2 x interval + 10 s`` after it last heard from the daemon, and
  online again once the daemon has redialled; nothing queued on either side is lost or
  doubled. (A real sleeping laptop also stops its own timers; to the hub both look the
  same: silence.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from netsim.nat import NatConfig
from tests.net.world import DaemonNode, World, open_world, wait_until
from udpim.im.events import PresenceChanged

HOME_NAT = NatConfig(timeout_s=120.0)
HOME_INTERVAL_S = 89.0  # learned behind HOME_NAT (0.8 x 112.5 - 1)
HUB_DEAD_PEER_S = 2 * HOME_INTERVAL_S + 10.0


async def settled_pair(world: World) -> tuple[DaemonNode, DaemonNode]:
    """A hub, bob (watching alice's presence) and alice, settled behind HOME_NAT."""
    await world.start_hub()
    bob = await world.daemon("bob", "bob", learn=False)
    alice = await world.daemon("alice", "alice", nat=HOME_NAT)
    await world.wait_welcomed(alice, bob)
    bob.handle.watch(["alice"])
    await wait_until(lambda: interval(alice) == HOME_INTERVAL_S, timeout_s=3600, what="learned")
    await trio.sleep(60.0)
    return alice, bob


def interval(node: DaemonNode) -> object:
    keepalive = node.handle.keepalive_status()["keepalive"]
    assert isinstance(keepalive, dict)
    return keepalive["heartbeat_interval_s"]


def presence(node: DaemonNode, user: str) -> list[tuple[float, bool]]:
    """``user``'s presence as ``node`` saw it change: (time, online), repeats dropped (a
    new ``watch`` is answered with the current presence again)."""
    changes: list[tuple[float, bool]] = []
    for t, e in node.events:
        fresh = not changes or changes[-1][1] != getattr(e, "online", None)
        if isinstance(e, PresenceChanged) and e.user == user and fresh:
            changes.append((t, e.online))
    return changes


def reachable_now(world: World) -> int:
    """How many sessions the hub could push to right now."""
    assert world.hub is not None
    assert world.hub.info is not None
    report = world.hub.info.status()["reachability"]
    assert isinstance(report, dict)
    count = report["reachable_now"]
    assert isinstance(count, int)
    return count


async def exchange(alice: DaemonNode, bob: DaemonNode, tag: str, count: int) -> list[str]:
    """Queue ``count`` messages each way (alice's first), returning the bodies."""
    bodies = [f"{tag} #{n}" for n in range(count)]
    for body in bodies:
        await alice.handle.send("bob", f"from alice: {body}")
        await bob.handle.send("alice", f"from bob: {body}")
    return bodies


async def drained(alice: DaemonNode, bob: DaemonNode, bodies: list[str]) -> None:
    """Both inboxes end with exactly these messages, in order, once each."""
    await wait_until(
        lambda: alice.arrived() >= len(bodies) and bob.arrived() >= len(bodies),
        timeout_s=900,
        what="drained",
    )
    await trio.sleep(30.0)
    assert [e.body for e in await alice.handle.inbox()] == [f"from bob: {b}" for b in bodies]
    assert [e.body for e in await bob.handle.inbox()] == [f"from alice: {b}" for b in bodies]
    await wait_until(
        lambda: alice.count_states("delivered") == len(bodies), timeout_s=300, what="receipts"
    )


@pytest.mark.parametrize("seed", [31])
async def test_handover_to_another_network_keeps_the_session(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        alice, bob = await settled_pair(world)
        cellular = world.add_network("cellular", "127.1.2.1", NatConfig(timeout_s=30.0))
        world.move(alice, cellular, "127.17.0.2")
        moved_at = trio.current_time()
        bodies = await exchange(alice, bob, "handover", 10)
        await drained(alice, bob, bodies)
        assert alice.welcomes() == 1  # the session moved: no re-login
        assert [online for _, online in presence(bob, "alice")] == [True]
        # The daemon saw its new local address and learned the cellular NAT's timeout.
        await wait_until(lambda: interval(alice) == 21.5, timeout_s=3600, what="relearned")
        status = alice.handle.keepalive_status()
        keepalive, history = status["keepalive"], status["reachability"]
        assert isinstance(keepalive, dict)
        assert isinstance(history, list)
        assert keepalive["path_changes"] == 1
        assert keepalive["learned_nat_timeout_s"] == 28.125
        assert keepalive["local_address"] == "127.17.0.2"
        assert keepalive["public_address"] is not None
        assert str(keepalive["public_address"]).startswith("127.1.2.1:")
        (change,) = [e for e in history if e["event"] == "path-changed"]
        assert change["detail"] == "local address 127.16.2.2 -> 127.17.0.2"
        assert moved_at < trio.current_time()
        # The hub followed the move; and a push now reaches alice at once.
        sent = trio.current_time()
        await bob.handle.send("alice", "after the move")
        await wait_until(lambda: alice.arrived() == 11, timeout_s=60, poll_s=0.01)
        assert trio.current_time() - sent < 1.0


@pytest.mark.parametrize("seed", [32])
async def test_short_outage_resumes_the_same_session(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        alice, bob = await settled_pair(world)
        world.network.partition(["alice"], ["hub", "bob"])
        bodies = await exchange(alice, bob, "short outage", 5)
        await trio.sleep(60.0)
        world.network.heal()
        drain_s = await wait_until(
            lambda: alice.arrived() == 5 and bob.arrived() == 5, timeout_s=600, poll_s=0.05
        )
        # Both sides' backed-off retransmissions meet within seconds; the first packet
        # that gets through resets the other side's backoff (docs/PROTOCOL.md 7.8).
        assert drain_s < 15.0
        await drained(alice, bob, bodies)
        assert alice.welcomes() == 1  # the same session: no re-login
        assert [online for _, online in presence(bob, "alice")] == [True]
        print(f"\n60-second outage: queues drained {drain_s:.1f} s after the network came back")


@pytest.mark.parametrize("seed", [33])
async def test_ten_minute_outage_flips_presence_after_the_dead_peer_timeout(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        alice, bob = await settled_pair(world)
        reachable = [(trio.current_time(), reachable_now(world))]
        start = trio.current_time()
        world.network.partition(["alice"], ["hub", "bob"])
        await trio.sleep(30.0)
        bodies = await exchange(alice, bob, "outage", 5)
        while trio.current_time() < start + 600.0:
            await trio.sleep(1.0)
            reachable.append((trio.current_time(), reachable_now(world)))
        world.network.heal()
        healed = trio.current_time()
        await drained(alice, bob, bodies)
        reachable.append((trio.current_time(), reachable_now(world)))
        changes = presence(bob, "alice")
        assert [online for _, online in changes] == [True, False, True]
        offline_at, online_at = changes[1][0], changes[2][0]
        # The hub heard alice at most one interval before the outage began.
        assert (
            start + HUB_DEAD_PEER_S - HOME_INTERVAL_S <= offline_at <= start + HUB_DEAD_PEER_S + 1
        )
        # Back once the daemon redialled (its backoff is at most 60 s).
        assert healed < online_at <= healed + 61.0 + 5.0
        assert alice.welcomes() == 2
        # The hub knew sooner that a push could not reach alice: once she was silent for
        # her learned NAT timeout (112.5 s), before the dead-peer timeout flipped presence.
        assert [count for _, count in reachable][:1] == [2]
        dropped_at = next(t for t, count in reachable if count == 1)
        assert offline_at - dropped_at == pytest.approx(HUB_DEAD_PEER_S - 112.5, abs=1.5)
        assert reachable[-1][1] == 2
        events = [e["event"] for e in alice.handle.keepalive_status()["reachability"]]  # type: ignore[union-attr]
        assert events[-3:] == ["unreachable", "disconnected", "reachable"]
        print(
            f"\n10-minute outage: offline {offline_at - start:.0f} s after it began "
            f"(dead-peer timeout {HUB_DEAD_PEER_S:g} s), online {online_at - healed:.1f} s "
            "after the network came back"
        )
