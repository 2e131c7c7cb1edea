"""The daemon's keepalive shell (udpim.net.natlearning) around the learner.

* A hub that never answers observes (an old hub, a port that drops them): the default
  heartbeat stays, learning falls back and retries after an hour, without disturbing
  anything else.
* The local address is what the operating system would use towards the hub (a real
  loopback socket).
* With learning off, a new local address is still counted as a path change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from netsim.models import DropReason
from netsim.routing import PacketInfo
from tests.net.world import HUB_ADDRESS, open_world
from udpim.im.natlearn import SEEN_ATTEMPTS, SEEN_WAIT_S
from udpim.net.natlearning import LOCAL_ADDRESS_POLL_S, system_local_address
from udpim.net.natprobe import OBSERVE_BYTES


async def test_no_seen_falls_back_to_the_default_and_retries_hourly(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, 51) as world:
        dropped: list[float] = []

        def no_observes(info: PacketInfo, now: float) -> DropReason | None:
            if info.size == OBSERVE_BYTES and info.dst == HUB_ADDRESS:
                dropped.append(now)
                return DropReason.FILTER
            return None

        world.network.add_filter(no_observes)
        await world.start_hub()
        (alice,) = await world.welcomed_daemons("alice")
        await trio.sleep(2 * 3600.0 + 60.0)
        status = alice.handle.keepalive_status()["keepalive"]
        assert isinstance(status, dict)
        assert status["phase"] == "fallback"
        assert status["heartbeat_interval_s"] == 25.0
        assert status["learned_nat_timeout_s"] is None
        assert [t["outcome"] for t in status["tests"]] == ["no-answer", "no-answer"]  # type: ignore[union-attr]
        # SEEN_ATTEMPTS observes SEEN_WAIT_S apart, then again 1 h later (next retry: 2 h).
        assert len(dropped) == 2 * SEEN_ATTEMPTS
        assert dropped[1] - dropped[0] == pytest.approx(SEEN_WAIT_S, abs=0.01)  # + latency
        assert dropped[SEEN_ATTEMPTS] - dropped[SEEN_ATTEMPTS - 1] > 3600.0
        next_in = status["next_test_in_s"]
        assert isinstance(next_in, float)
        assert 3600.0 - 120.0 < next_in <= 3600.0  # 2 h after the second, at 3 h
        assert alice.welcomes() == 1  # the session itself never noticed


async def test_the_local_address_is_the_one_towards_the_hub() -> None:
    local_address = system_local_address(("127.0.0.1", 9))
    with trio.fail_after(2):
        assert await local_address() == "127.0.0.1"


async def test_without_learning_a_new_local_address_still_counts(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, 52) as world:
        await world.start_hub()
        (alice,) = await world.welcomed_daemons("alice", learn=False)
        await trio.sleep(LOCAL_ADDRESS_POLL_S)
        elsewhere = world.add_network("elsewhere", "127.1.3.1")
        world.move(alice, elsewhere, "127.18.0.2")
        await trio.sleep(2 * LOCAL_ADDRESS_POLL_S)
        status = alice.handle.keepalive_status()
        keepalive, history = status["keepalive"], status["reachability"]
        assert isinstance(keepalive, dict)
        assert isinstance(history, list)
        assert keepalive["phase"] == "off"
        assert keepalive["path_changes"] == 1
        assert keepalive["local_address"] == "127.18.0.2"
        assert [e["event"] for e in history] == ["reachable", "path-changed"]
