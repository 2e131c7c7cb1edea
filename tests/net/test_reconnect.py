"""The daemon's connection to the hub over time: redial with backoff, reset on welcome,
and notice a hub that vanished silently (in simulation, virtual time)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from tests.net.world import DaemonNode, open_world
from udpim.im.events import Welcomed
from udpim.net.reconnect import MAX_BACKOFF_S

HANDSHAKE_TIMEOUT_S = 30.0  # SessionConfig default


def welcome_times(node: DaemonNode) -> list[float]:
    return [t for t, event in node.events if isinstance(event, Welcomed)]


async def attempts(node: DaemonNode) -> int:
    reconnect = (await node.handle.status())["reconnect"]
    assert isinstance(reconnect, dict)
    value = reconnect["attempts"]
    assert isinstance(value, int)
    return value


@pytest.mark.parametrize("seed", [51])
async def test_redial_backs_off_then_resets_after_a_welcome(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        hub = await world.start_hub()
        (alice,) = await world.welcomed_daemons("alice")
        await world.stop(hub)  # clean stop: the daemon hears CLOSE at once
        stopped_at = trio.current_time()
        await trio.sleep(1200)
        # Each attempt waits out the handshake timeout, then a delay of base..1.5 base
        # with base 1, 2, 4, ... capped at 60 s: in 1200 s that is 13 to 17 attempts.
        tried = await attempts(alice) - 1
        assert 13 <= tried <= 17, tried
        await world.restart(hub)
        restarted_at = trio.current_time()
        await world.wait_welcomed(alice, timeout_s=HANDSHAKE_TIMEOUT_S + MAX_BACKOFF_S + 5)
        assert welcome_times(alice)[-1] - restarted_at <= HANDSHAKE_TIMEOUT_S + MAX_BACKOFF_S
        assert stopped_at < restarted_at

        # Welcomed: the backoff starts again at 1 s. The hub now dies silently (no CLOSE);
        # the daemon notices when it heard nothing for the dead-peer timeout (60 s since
        # the hub's last packet, at most one 25 s heartbeat before the crash) and redials
        # after 1 to 1.5 s, reaching the hub that is back meanwhile.
        await world.crash(hub)
        crashed_at = trio.current_time()
        await world.restart(hub)
        await trio.sleep(1)
        count = len(welcome_times(alice))
        await trio.sleep(90)
        assert len(welcome_times(alice)) == count + 1
        silence_s = welcome_times(alice)[-1] - crashed_at
        assert 60.0 - 25.0 <= silence_s <= 60.0 + 1.5 + 1.0, silence_s
