"""A simulated day of pushes to one daemon behind a NAT, with the keepalive bytes it cost.

``run_day`` starts a hub, a sender (``bob``: a generous NAT, a fixed 10-minute
heartbeat, so it costs the simulation little) and the daemon under test (``alice``:
behind a NAT with the given config, learning or at a fixed interval), then has bob
send to alice at given times over the day, including after long idle periods,
optionally with a network event (rebinding) on its own schedule. It returns what
happened: per push, when it was sent and when alice stored it; alice's keepalive status
at the end; and bytes on the wire.

Bytes on the wire count each datagram's UDP payload plus 28 bytes (IPv4 + UDP headers).
*Keepalive bytes* are the bytes of alice's session socket outside the push windows (from
each send until 5 s after its arrival), once learning settled (or from the first welcome
at a fixed interval): heartbeats, their ACKs, and the rare keepalive/nat_probe frames.
*Probe bytes* are the probe socket's (observes, seen, echoes) over the whole day.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from netsim.nat import NatConfig
from tests.net.world import DaemonNode, World, open_world, wait_until
from udpim.core.config import SessionConfig
from udpim.im.events import MessageArrived

DAY_S = 24 * 3600.0
PUSH_WINDOW_TAIL_S = 5.0
GENEROUS_NAT = NatConfig(timeout_s=900.0)
SENDER_SESSION = SessionConfig(heartbeat_interval_s=600.0, dead_peer_timeout_s=1210.0)
INTERVAL_POLL_S = 60.0


def push_times(
    seed: int, *, count: int = 40, idle_from_h: float = 8.0, idle_to_h: float = 14.0
) -> list[float]:
    """``count`` random times over the day (seconds from its start), none in the long idle
    period ``idle_from_h .. idle_to_h`` (the first push after it comes after 6 h of quiet)."""
    rng = random.Random(f"pushes/{seed}")
    times: list[float] = []
    while len(times) < count:
        t = rng.uniform(600.0, DAY_S - 600.0)
        if not idle_from_h * 3600 <= t < idle_to_h * 3600:
            times.append(t)
    return sorted(times)


@dataclass
class DayResult:
    """What one simulated day showed."""

    sent: list[tuple[float, str]] = field(default_factory=list)
    """(virtual send time, body) per push, in order."""
    arrived: dict[str, float] = field(default_factory=dict)
    """body -> virtual time alice stored it."""
    intervals: dict[str, float] = field(default_factory=dict)
    """body -> alice's heartbeat interval in force when it was sent."""
    inbox: list[str] = field(default_factory=list)
    """alice's inbox bodies at the end, in order."""
    keepalive: dict[str, object] = field(default_factory=dict)
    """alice's keepalive status at the end."""
    settled_at: float | None = None
    """When the heartbeat interval stopped changing (learning), or the first welcome."""
    keepalive_bytes: int = 0
    keepalive_s: float = 0.0
    probe_bytes: int = 0
    heartbeats: int = 0
    hub_status: dict[str, object] = field(default_factory=dict)

    def latency_s(self, body: str) -> float:
        sent = {b: t for t, b in self.sent}[body]
        return self.arrived[body] - sent

    @property
    def keepalive_bytes_per_hour(self) -> float:
        return 3600.0 * self.keepalive_bytes / self.keepalive_s

    @property
    def probe_bytes_per_hour(self) -> float:
        return 3600.0 * self.probe_bytes / DAY_S


async def _heartbeats(node: DaemonNode) -> int:
    session = (await node.handle.status())["session"]
    assert isinstance(session, dict)
    count = session["heartbeats_sent"]
    assert isinstance(count, int)
    return count


async def run_day(
    tmp: Path,
    seed: int,
    *,
    nat: NatConfig,
    learn: bool = True,
    session: SessionConfig | None = None,
    times: list[float] | None = None,
    event_every_s: float | None = None,
    event: Callable[[World, DaemonNode], None] | None = None,
    on_push: Callable[[float], Awaitable[None]] | None = None,
) -> DayResult:
    """One day (see the module docstring); ``event(world, alice)`` runs every
    ``event_every_s`` seconds if given."""
    result = DayResult()
    async with open_world(tmp, seed) as world:
        await world.start_hub()
        bob = await world.daemon(
            "bob", "bob", nat=GENEROUS_NAT, learn=False, session=SENDER_SESSION
        )
        alice = await world.daemon("alice", "alice", nat=nat, learn=learn, session=session)
        await world.wait_welcomed(alice, bob)
        start = trio.current_time()
        interval_log: list[tuple[float, object]] = []

        async def watch_interval() -> None:
            last = None
            while True:
                keepalive = alice.handle.keepalive_status()["keepalive"]
                assert isinstance(keepalive, dict)
                value = (keepalive["heartbeat_interval_s"], keepalive["phase"])
                if value != last:
                    interval_log.append((trio.current_time(), value))
                    last = value
                await trio.sleep(INTERVAL_POLL_S)

        async def network_events() -> None:
            assert event_every_s is not None
            assert event is not None
            while True:
                await trio.sleep(event_every_s)
                event(world, alice)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_interval)
            if event is not None:
                nursery.start_soon(network_events)
            await _push_all(result, bob, alice, start, times or push_times(seed), learn)
            nursery.cancel_scope.cancel()
        await wait_until(lambda: alice.arrived() == len(result.sent), timeout_s=600, what="pushes")
        result.arrived = {e.body: t for t, e in alice.events if isinstance(e, MessageArrived)}
        result.inbox = [entry.body for entry in await alice.handle.inbox()]
        status = await alice.handle.status()
        keepalive = status["keepalive"]
        assert isinstance(keepalive, dict)
        result.keepalive = keepalive
        settled = [t for t, (_, phase) in interval_log if phase in ("settled", "off")]  # type: ignore[misc]
        result.settled_at = settled[0] if settled else None
        assert alice.probe_sock is not None or not learn
        result.probe_bytes = alice.probe_sock.wire_bytes() if alice.probe_sock else 0
        result.heartbeats = await _heartbeats(alice)
        assert world.hub is not None
        assert world.hub.info is not None
        result.hub_status = world.hub.info.status()
    return result


async def _counting(alice: DaemonNode, learn: bool) -> bool:
    """Whether keepalive bytes count from now: always at a fixed interval, once settled
    when learning."""
    await trio.lowlevel.checkpoint()
    keepalive = alice.handle.keepalive_status()["keepalive"]
    assert isinstance(keepalive, dict)
    return not learn or keepalive["phase"] in ("settled", "revalidating")


async def _push_all(
    result: DayResult,
    bob: DaemonNode,
    alice: DaemonNode,
    start: float,
    times: list[float],
    learn: bool,
) -> None:
    sock = alice.sock
    assert sock is not None
    mark_t, mark_b = trio.current_time(), sock.wire_bytes()
    counting = await _counting(alice, learn)

    def account() -> None:
        if counting:
            result.keepalive_bytes += sock.wire_bytes() - mark_b
            result.keepalive_s += trio.current_time() - mark_t

    for number, offset in enumerate(times):
        await trio.sleep_until(start + offset)
        account()
        body = f"push #{number} at {offset:.0f} s"
        result.sent.append((trio.current_time(), body))
        keepalive = alice.handle.keepalive_status()["keepalive"]
        assert isinstance(keepalive, dict)
        interval = keepalive["heartbeat_interval_s"]
        assert isinstance(interval, float)
        result.intervals[body] = interval
        await bob.handle.send("alice", body)
        await wait_until(
            lambda count=number + 1: alice.arrived() >= count, timeout_s=3600, poll_s=0.05
        )
        await trio.sleep(PUSH_WINDOW_TAIL_S)
        mark_t, mark_b = trio.current_time(), sock.wire_bytes()
        counting = await _counting(alice, learn)
    await trio.sleep_until(start + DAY_S)
    account()
