"""Adaptive keepalive over a simulated day, per NAT mapping timeout (issue 5, item 1).

For NAT timeouts of 20, 30, 60, 120 and 300 s the daemon learns a heartbeat below the
timeout and no push is lost over 24 hours (the hub pushes at random times, including
after six idle hours); once learning settled every push arrives within about a round
trip. The same day at fixed 25 s and 60 s intervals (learning off) is run for the
comparison: pushes are still never lost (the session repairs a push that met a dead
mapping when the daemon's next heartbeat re-appears) but wait up to one interval where
the interval exceeds the NAT's timeout. Each case prints its heartbeat bytes/hour.

Also here: the bytes on the wire of one heartbeat round trip (PING + its ACK).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from netsim.nat import NatConfig
from tests.net.keepalive_day import DayResult, run_day
from tests.net.world import open_world
from udpim.core.config import SessionConfig

NAT_TIMEOUTS_S = [20.0, 30.0, 60.0, 120.0, 300.0]
HEARTBEAT_ROUND_TRIP_MAX_BYTES = 120
"""PING packet + ACK packet, UDP payload + 28 bytes IPv4/UDP header each."""


def check_day(result: DayResult) -> None:
    """Every push arrived once, in order; nothing else arrived."""
    bodies = [body for _, body in result.sent]
    assert result.inbox == bodies
    assert sorted(result.arrived) == sorted(bodies)


def report(case: str, result: DayResult) -> None:
    keepalive = result.keepalive
    latencies = [result.latency_s(body) for _, body in result.sent]
    print(
        f"\n{case}: heartbeat {keepalive['heartbeat_interval_s']} s, learned NAT timeout "
        f"{keepalive['learned_nat_timeout_s']} s, keepalive {result.keepalive_bytes_per_hour:.0f} "
        f"B/h, probes {result.probe_bytes_per_hour:.0f} B/h, push latency max "
        f"{max(latencies):.2f} s (median {sorted(latencies)[len(latencies) // 2]:.2f} s)"
    )


@pytest.mark.parametrize("nat_timeout_s", NAT_TIMEOUTS_S)
async def test_learned_interval_keeps_every_push_over_a_day(
    nat_timeout_s: float, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    result = await run_day(tmp_path, 11, nat=NatConfig(timeout_s=nat_timeout_s))
    check_day(result)
    keepalive = result.keepalive
    interval = keepalive["heartbeat_interval_s"]
    learned = keepalive["learned_nat_timeout_s"]
    assert isinstance(interval, float)
    assert isinstance(learned, float)
    assert keepalive["phase"] == "settled"
    # Safe: below the timeout the probe mapping survived, itself below the NAT's.
    assert learned < nat_timeout_s
    assert interval == max(10.0, min(600.0, 0.8 * learned - 1.0))
    # ... and not wastefully short: within the last bisection step of the best.
    assert interval >= 0.8 * (0.85 * nat_timeout_s) - 1.0
    assert result.settled_at is not None
    for sent_at, body in result.sent:
        latency = result.latency_s(body)
        assert latency < 30.0, body  # while learning: at worst the 25 s default
        if sent_at > result.settled_at:
            assert latency < 1.0, body  # settled: the mapping is always alive
    # Tiny heartbeats: at most one round trip per interval, plus the rare frames.
    assert result.keepalive_bytes_per_hour <= (3600 / interval + 1) * 125
    assert result.probe_bytes_per_hour < 1000
    report(f"NAT {nat_timeout_s:g} s, learned", result)


@pytest.mark.parametrize("interval_s", [25.0, 60.0])
@pytest.mark.parametrize("nat_timeout_s", NAT_TIMEOUTS_S)
async def test_fixed_interval_day_for_comparison(
    nat_timeout_s: float,
    interval_s: float,
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
) -> None:
    session = SessionConfig(
        heartbeat_interval_s=interval_s, dead_peer_timeout_s=2 * interval_s + 10
    )
    result = await run_day(
        tmp_path, 11, nat=NatConfig(timeout_s=nat_timeout_s), learn=False, session=session
    )
    check_day(result)
    assert result.keepalive["phase"] == "off"
    assert result.keepalive["heartbeat_interval_s"] == interval_s
    assert result.probe_bytes == 0
    worst = max(result.latency_s(body) for _, body in result.sent)
    if interval_s < nat_timeout_s:
        assert worst < 1.0
    else:  # the mapping dies between heartbeats: a push waits for the next one
        assert worst < interval_s + 2.0
    report(f"NAT {nat_timeout_s:g} s, fixed {interval_s:g} s", result)


async def test_one_heartbeat_round_trip_is_tiny(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, 3) as world:
        await world.start_hub()
        (alice,) = await world.welcomed_daemons("alice", learn=False)
        await trio.sleep(60.0)
        sock = alice.sock
        assert sock is not None

        async def heartbeats() -> int:
            session = (await alice.handle.status())["session"]
            assert isinstance(session, dict)
            count = session["heartbeats_sent"]
            assert isinstance(count, int)
            return count

        before_hb, before = await heartbeats(), sock.wire_bytes()
        datagrams = sock.datagrams_sent + sock.datagrams_received
        await trio.sleep(3600.0)
        count = await heartbeats() - before_hb
        per_round_trip = (sock.wire_bytes() - before) / count
        assert count == 144  # every 25 s
        assert sock.datagrams_sent + sock.datagrams_received - datagrams == 2 * count
        assert per_round_trip <= HEARTBEAT_ROUND_TRIP_MAX_BYTES
        print(f"\none heartbeat round trip: {per_round_trip:.1f} bytes on the wire")
