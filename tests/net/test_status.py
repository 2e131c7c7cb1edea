"""``udpim status`` shows the NAT keepalive and the reachability history (issue 5, item 5).

The status comes from a simulated daemon (JSON-ready, as the control socket sends it)
and is printed the way ``udpim status`` prints it.
"""

from __future__ import annotations

import json
from pathlib import Path

import trio
import trio.testing

from netsim.nat import NatConfig
from tests.net.world import open_world, wait_until
from udpim.cli_client import format_status


async def test_status_shows_learning_heartbeat_path_and_reachability(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, 41) as world:
        await world.start_hub()
        (alice,) = await world.welcomed_daemons("alice", nat=NatConfig(timeout_s=60.0))
        await trio.sleep(20.0)
        learning = format_status(json.loads(json.dumps(await alice.handle.status())))
        assert (
            "nat        mapping timeout not known; heartbeat every 25 s; learning learning ("
            in learning
        )

        def settled() -> bool:
            keepalive = alice.handle.keepalive_status()["keepalive"]
            assert isinstance(keepalive, dict)
            return keepalive["phase"] == "settled"

        await wait_until(settled, timeout_s=3600)
        world.network.partition(["alice"], ["hub"])
        await trio.sleep(400.0)
        world.network.heal()
        await world.wait_welcomed(alice)
        await trio.sleep(60.0)
        status = json.loads(json.dumps(await alice.handle.status()))
        keepalive = status["keepalive"]
        assert keepalive["learned_nat_timeout_s"] == 56.25
        assert keepalive["heartbeat_interval_s"] == 44.0
        assert keepalive["phase"] == "settled"
        assert keepalive["path_changes"] == 0
        assert keepalive["local_address"] == "127.16.1.2"
        assert str(keepalive["public_address"]).startswith("127.1.1.1:")
        assert status["session"]["heartbeat_interval_s"] == 44.0
        assert status["session"]["dead_peer_timeout_s"] == 98.0
        tests = keepalive["tests"]
        assert [t["outcome"] for t in tests][:4] == ["survived", "survived", "expired", "expired"]
        assert all(isinstance(t["at"], int) for t in tests)
        events = [e["event"] for e in status["reachability"]]
        assert events == ["reachable", "unreachable", "disconnected", "reachable"]
        text = format_status(status)
        print("\n" + text)
        lines = text.splitlines()
        (nat,) = [line for line in lines if line.startswith("nat ")]
        assert nat.startswith(
            "nat        mapping timeout at least 56.25 s; heartbeat every 44 s; learning settled ("
        )
        assert "next test in 5." in nat
        (path,) = [line for line in lines if line.startswith("path ")]
        assert path.startswith("path       0 changes; local 127.16.1.2, public 127.1.1.1:")
        history = lines[lines.index(next(x for x in lines if x.startswith("history "))) :][:4]
        assert [line[11:].split()[2] for line in history] == [
            "reachable",
            "unreachable",
            "disconnected",
            "reachable",
        ]
        assert history[1].endswith("unreachable (the hub was silent for 98 s)")
        assert history[2].endswith("disconnected (hub unreachable)")
