"""A carrier NAT that rebinds every 5 minutes, for a simulated day (issue 5, item 2).

Every rebinding moves the daemon's mappings to new public ports: pushes to the old port
die at the NAT. The daemon's next packet (its heartbeat at the latest) comes from the new
port; the hub moves the session there, validates the path and, the path being new,
resets its probe backoff and repairs the push at once (docs/PROTOCOL.md 7.8). So every
push is delivered, exactly once and in order, at worst one heartbeat interval after the
rebinding (plus a round trip or two) — with no re-login.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import trio
import trio.testing

from netsim.nat import NatConfig
from tests.net.keepalive_day import push_times, run_day
from tests.net.world import DaemonNode, World

REBIND_EVERY_S = 300.0
SLACK_S = 1.0
"""A couple of round trips: the path challenge waits for the daemon's probe to widen the
new path's budget, then the repair goes out."""


async def test_rebinding_every_five_minutes_loses_no_push(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    rebinds: list[float] = []

    def rebind(world: World, alice: DaemonNode) -> None:
        world.network.rebind_nat("nat-alice")
        rebinds.append(trio.current_time())

    times = push_times(21, count=96, idle_from_h=30.0, idle_to_h=30.0)
    result = await run_day(
        tmp_path,
        21,
        nat=NatConfig(timeout_s=120.0),
        times=times,
        event_every_s=REBIND_EVERY_S,
        event=rebind,
    )
    # Rebinding runs until the last push of the day arrives: about 24 h of it.
    assert len(rebinds) >= 24 * 3600 / REBIND_EVERY_S - 1
    bodies = [body for _, body in result.sent]
    assert result.inbox == bodies  # all delivered, in order, once each
    delayed = 0
    for sent_at, body in result.sent:
        arrived = result.arrived[body]
        latency = arrived - sent_at
        if latency <= SLACK_S:
            continue
        delayed += 1
        rebound = rebinds[bisect.bisect_right(rebinds, arrived) - 1]
        assert arrived - rebound <= result.intervals[body] + SLACK_S, body
    assert delayed > 0  # some pushes did meet a dead mapping
    hub = result.hub_status["reachability"]
    assert isinstance(hub, dict)
    gaps = hub["gaps"]
    assert isinstance(gaps, int)
    assert gaps >= delayed  # the hub counted the repairs
    keepalive = result.keepalive
    assert keepalive["phase"] in ("settled", "revalidating")
    assert keepalive["path_changes"] == 0  # a new port is not a new network
    print(
        f"\nrebinding every {REBIND_EVERY_S:g} s: {len(bodies)} pushes, {delayed} met a dead "
        f"mapping, worst latency {max(result.latency_s(b) for b in bodies):.1f} s, heartbeat "
        f"{keepalive['heartbeat_interval_s']} s (learned {keepalive['learned_nat_timeout_s']} s), "
        f"{gaps} reachability gaps at the hub (longest {hub['gap_max_s']:.1f} s)"
    )
