"""Replayability: the same scenario and seed give the same trace hash in-process and
in fresh interpreters with different PYTHONHASHSEED values; pinned Trio scheduling
orders racing tasks as a pure function of the seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio.testing
from trio._core import _run as trio_run_internals

from netsim.determinism import check_trio_scheduler_pinnable, deterministic_scheduling
from netsim.models import LinkProfile
from netsim.nat import NatConfig
from netsim.network import open_network
from netsim.socket import VirtualUDPSocket
from netsim.trace import Recorder, first_divergence

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER = ("127.1.0.1", 9000)


async def _echo(sock: VirtualUDPSocket, recorder: Recorder) -> None:
    while True:
        data, source = await sock.recvfrom(2048)
        recorder.record(trio.current_time(), "app", host="server", event="echo", size=len(data))
        await sock.sendto(data, source)


async def _client(index: int, sock: VirtualUDPSocket, recorder: Recorder) -> None:
    async def receive() -> None:
        while True:
            data, _ = await sock.recvfrom(2048)
            recorder.record(trio.current_time(), "app", host=f"c{index}", event="reply", data=data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        for n in range(30):
            await sock.sendto(f"c{index}-{n}".encode(), SERVER)
            await trio.sleep(0.5)  # every client sends at the same instants: they race
        nursery.cancel_scope.cancel()


def run_scenario(seed: int) -> Recorder:
    """A small impaired scenario with racing clients behind one NAT; returns its recorder."""

    async def main() -> Recorder:
        recorder = Recorder(seed=seed, metadata={"scenario": "determinism-test"})
        async with open_network(seed, recorder=recorder) as network:
            network.add_nat("home", "127.1.0.100", NatConfig(timeout_s=5.0))
            jittery = LinkProfile(delay_s=0.02, jitter_s=0.015, reorder=True, loss=0.1)
            network.add_host("server", SERVER[0], down=jittery.with_changes(duplicate=0.1))
            server = network.host("server").socket()
            await server.bind(SERVER)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_echo, server, recorder)
                async with trio.open_nursery() as clients:
                    for i in range(4):
                        up = LinkProfile(delay_s=0.01, loss=0.05, corrupt=0.05)
                        host = network.add_host(f"c{i}", f"127.16.0.{i + 2}", nat="home", up=up)
                        clients.start_soon(_client, i, host.socket(), recorder)
                network.rebind_nat("home")
                await trio.sleep(1)
                nursery.cancel_scope.cancel()
        return recorder

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def race_order(seed: int) -> list[str]:
    """Six tasks wake at identical virtual times ten times; the order they ran in."""

    async def main() -> list[str]:
        order: list[str] = []

        async def racer(name: str) -> None:
            for _ in range(10):
                await trio.sleep(1)
                order.append(name)

        with deterministic_scheduling(seed):
            async with trio.open_nursery() as nursery:
                for name in "abcdef":
                    nursery.start_soon(racer, name)
        return order

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


_SUBPROCESS_SCRIPT = """
import json, sys
from tests.netsim.test_determinism import race_order, run_scenario
print(json.dumps({"trace": run_scenario(int(sys.argv[1])).hexdigest(),
                  "race": "".join(race_order(int(sys.argv[1])))}))
"""


def _in_subprocesses(seed: int, hash_seeds: list[str]) -> list[dict[str, str]]:
    processes = []
    for hash_seed in hash_seeds:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", _SUBPROCESS_SCRIPT, str(seed)],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    return results


def test_same_seed_same_trace_in_process() -> None:
    first, second = run_scenario(5), run_scenario(5)
    assert first.event_count > 300
    kinds = {event.kind for event in first.events()}
    assert kinds == {"op", "send", "deliver", "drop", "nat", "app"}
    assert first_divergence(first.lines(), second.lines()) is None
    assert first.hexdigest() == second.hexdigest()


def test_different_seed_different_trace() -> None:
    assert run_scenario(5).hexdigest() != run_scenario(6).hexdigest()


@pytest.mark.slow
def test_same_trace_and_order_across_processes_and_hash_seeds() -> None:
    expected = {"trace": run_scenario(5).hexdigest(), "race": "".join(race_order(5))}
    assert _in_subprocesses(5, ["1", "2"]) == [expected, expected]


def test_pinned_race_order_depends_only_on_seed() -> None:
    assert race_order(1) == race_order(1)
    assert race_order(1) != race_order(2)
    assert sorted(race_order(1)) == sorted("abcdef" * 10)


def test_deterministic_scheduling_restores_trio_settings() -> None:
    before = (trio_run_internals._ALLOW_DETERMINISTIC_SCHEDULING, trio_run_internals._r)
    with deterministic_scheduling(3):
        assert trio_run_internals._ALLOW_DETERMINISTIC_SCHEDULING is True
        assert trio_run_internals._r is not before[1]
        with deterministic_scheduling(4):
            inner = trio_run_internals._r
        assert trio_run_internals._r is not inner
    after = (trio_run_internals._ALLOW_DETERMINISTIC_SCHEDULING, trio_run_internals._r)
    assert after == before


def test_trio_scheduler_is_pinnable() -> None:
    check_trio_scheduler_pinnable()
