"""The runner: runs, record/replay, determinism, timeline effects and error reporting."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from pathlib import Path

import pytest
import trio

import netsim
from netsim.app import AppSpecError, SimContext
from netsim.runner import AppFailedError, RunResult, replay_trace, run_scenario
from netsim.scenario import Scenario, ScenarioError, bundled_scenarios, load_scenario
from netsim.trace import TraceError, TraceEvent, read_header

PING = "netsim.examples.ping:PingApp"
SHORT_S = {"ten-hosts": 15.0, "lte-trace": 5.0, "nat-timeout": 130.0}


def scenario_from_text(tmp_path: Path, text: str) -> Scenario:
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8")
    return load_scenario(path)


def app_events(result: RunResult, event: str) -> list[TraceEvent]:
    return [e for e in result.events() if e.kind == "app" and e.fields["event"] == event]


def drops(result: RunResult, reason: str) -> list[TraceEvent]:
    return [e for e in result.events() if e.kind == "drop" and e.fields["reason"] == reason]


@pytest.mark.parametrize("name", bundled_scenarios())
def test_bundled_scenario_runs_and_replays(tmp_path: Path, name: str) -> None:
    scenario = load_scenario(name).with_overrides(duration_s=SHORT_S.get(name, 30.0))
    trace = tmp_path / f"{name}.trace.gz"
    result = run_scenario(scenario, record_path=trace)
    assert result.ended_by == "duration"
    assert result.end_s == scenario.duration_s
    assert app_events(result, "msg_sent")
    replay = replay_trace(trace)
    assert replay.ok
    assert replay.divergence is None
    assert replay.expected_hash == replay.actual_hash == result.trace_hash
    assert (replay.scenario, replay.seed, replay.app) == (name, scenario.seed, PING)


def test_header_holds_everything_replay_needs(tmp_path: Path) -> None:
    scenario = load_scenario("lossy-ping").with_overrides(duration_s=5.0)
    trace = tmp_path / "t.trace"
    run_scenario(scenario, seed=9, record_path=trace)
    header = read_header(trace)
    assert header.seed == 9
    assert header.metadata["app"] == PING
    assert header.metadata["netsim"] == netsim.__version__
    recorded = header.metadata["scenario"]
    assert isinstance(recorded, dict)
    assert recorded["name"] == "lossy-ping"
    assert recorded["duration"] == 5.0
    assert recorded["seed"] == 9
    assert recorded["profiles"] == {"lossy": {"delay": "25ms", "loss": "2%"}}


def test_edited_trace_reports_first_divergence(tmp_path: Path) -> None:
    scenario = load_scenario("lossy-ping").with_overrides(duration_s=10.0)
    trace = tmp_path / "t.trace"
    result = run_scenario(scenario, record_path=trace)
    lines = trace.read_text().splitlines()
    index = next(i for i, line in enumerate(lines[1:]) if '"kind":"deliver"' in line)
    original = lines[index + 1]
    lines[index + 1] = original.replace('"size":64', '"size":65')
    edited = tmp_path / "edited.trace"
    edited.write_text("\n".join(lines) + "\n")
    replay = replay_trace(edited)
    assert not replay.ok
    assert replay.actual_hash == result.trace_hash
    assert replay.expected_hash != result.trace_hash
    assert replay.divergence is not None
    assert replay.divergence.index == index
    assert replay.divergence.actual == original
    assert replay.divergence.expected == lines[index + 1]


def test_truncated_trace_diverges_at_its_end(tmp_path: Path) -> None:
    trace = tmp_path / "t.trace.gz"
    result = run_scenario(
        load_scenario("lossy-ping").with_overrides(duration_s=5.0), record_path=trace
    )
    with gzip.open(trace, "rt") as file:
        kept = file.readlines()[:6]  # header + 5 events
    with gzip.open(trace, "wt") as file:
        file.writelines(kept)
    replay = replay_trace(trace)
    assert replay.divergence is not None
    assert replay.divergence.index == 5
    assert replay.divergence.expected is None
    assert replay.divergence.actual == result.lines[5]


def test_replay_needs_a_netsim_trace_with_replay_data(tmp_path: Path) -> None:
    bare = tmp_path / "bare.trace"
    bare.write_text(json.dumps({"format": "netsim-trace", "version": 1, "seed": 1, "meta": {}}))
    with pytest.raises(TraceError, match="lacks the scenario"):
        replay_trace(bare)
    other = tmp_path / "other.trace"
    other.write_text("hello\n")
    with pytest.raises(TraceError):
        replay_trace(other)


def test_same_seed_same_hash_other_seed_other_hash() -> None:
    scenario = load_scenario("burst-loss").with_overrides(duration_s=20.0)
    first, second = run_scenario(scenario, seed=1), run_scenario(scenario, seed=1)
    assert first.trace_hash == second.trace_hash
    assert first.lines == second.lines
    assert run_scenario(scenario, seed=2).trace_hash != first.trace_hash


def test_progress_is_observed_and_changes_nothing() -> None:
    scenario = load_scenario("lossy-ping").with_overrides(duration_s=20.0)
    seen: list[float] = []
    with_progress = run_scenario(scenario, progress=seen.append)
    assert run_scenario(scenario).trace_hash == with_progress.trace_hash
    assert seen == sorted(seen)
    assert 19.0 < seen[-1] <= 20.0


TWO_HOSTS = """
duration = "60s"
seed = 3
app = "netsim.examples.ping:PingApp"
[nats.home]
public_ip = "127.1.0.100"
[nats.cell]
public_ip = "127.1.0.200"
[hosts.server]
address = "127.1.0.1"
[hosts.client]
address = "127.16.1.2"
nat = "home"
up = { delay = "10ms" }
[workload]
interval = "100ms"
"""


def test_set_link_changes_loss_at_its_time(tmp_path: Path) -> None:
    text = TWO_HOSTS + (
        '[[timeline]]\nat = "30s"\naction = "set-link"\nhost = "client"\n'
        'direction = "up"\nloss = "50%"\n'
    )
    result = run_scenario(scenario_from_text(tmp_path, text))
    lost = drops(result, "loss")
    assert all(e.t >= 30.0 for e in lost)
    assert {e.fields["where"] for e in lost} == {"up:client"}
    assert 100 < len(lost) < 200  # about half of the 300 pings after 30 s


def test_outage_window_drops_only_inside_it(tmp_path: Path) -> None:
    text = (
        TWO_HOSTS + '[[timeline]]\nat = "20s"\naction = "outage"\nhost = "client"\nuntil = "25s"\n'
    )
    result = run_scenario(scenario_from_text(tmp_path, text))
    outage = drops(result, "outage")
    assert len(outage) == 50  # ten pings a second for five seconds, dropped on the up link
    assert all(20.0 <= e.t < 25.0 for e in outage)
    assert len(drops(result, "loss")) == 0


def test_move_and_rebind_change_the_source_the_server_sees(tmp_path: Path) -> None:
    text = TWO_HOSTS + (
        '[[timeline]]\nat = "20s"\naction = "move"\nhost = "client"\n'
        'address = "127.16.5.5"\nnat = "cell"\n'
        '[[timeline]]\nat = "40s"\naction = "rebind"\nnat = "cell"\npublic_ip = "127.1.0.201"\n'
    )
    result = run_scenario(scenario_from_text(tmp_path, text))
    sources = {}
    for echo in app_events(result, "echo"):
        period = 0 if echo.t < 20.0 else 1 if echo.t < 40.0 else 2
        sources.setdefault(period, set()).add(echo.fields["src"])
    assert [len(sources[p]) for p in (0, 1, 2)] == [1, 1, 1]
    (home,), (cell,), (rebound,) = sources[0], sources[1], sources[2]
    assert home.startswith("127.1.0.100:")
    assert cell.startswith("127.1.0.200:")
    assert rebound.startswith("127.1.0.201:")
    assert len(app_events(result, "msg_received")) > 550  # replies follow every change


def test_partition_and_heal(tmp_path: Path) -> None:
    text = TWO_HOSTS + (
        '[[timeline]]\nat = "10s"\naction = "partition"\ngroups = [["client"], ["server"]]\n'
        '[[timeline]]\nat = "15s"\naction = "heal"\n'
    )
    result = run_scenario(scenario_from_text(tmp_path, text))
    cut = drops(result, "partition")
    assert len(cut) == 50
    assert all(10.0 <= e.t < 15.0 for e in cut)


def test_app_that_finishes_ends_the_run(tmp_path: Path) -> None:
    text = TWO_HOSTS.replace('interval = "100ms"', 'interval = "100ms"\ncount = 5\nlinger = "1s"')
    result = run_scenario(scenario_from_text(tmp_path, text))
    assert result.ended_by == "app-done"
    # random start offset (< 1 interval) + 5 intervals + the rest of the 1 s linger
    assert 1.4 <= result.end_s < 1.5
    last = result.events()[-1]
    assert (last.kind, last.fields) == ("end", {"reason": "app-done"})


class FailingApp:
    """Raises after one virtual second (for error reporting tests)."""

    def __init__(self, workload: Mapping[str, object]) -> None:
        self.workload = workload

    async def run(self, sim: SimContext) -> None:
        await trio.sleep(1.0)
        raise ZeroDivisionError("boom")


def broken_factory(workload: Mapping[str, object]) -> FailingApp:
    raise KeyError("oops")


class NoHostApp:
    def __init__(self, workload: Mapping[str, object]) -> None:
        pass

    async def run(self, sim: SimContext) -> None:
        sim.host("nobody")


def test_errors_are_one_line(tmp_path: Path) -> None:
    scenario = scenario_from_text(tmp_path, TWO_HOSTS.replace(f'app = "{PING}"', ""))
    with pytest.raises(ScenarioError, match="no app: pass --app"):
        run_scenario(scenario)
    with pytest.raises(AppSpecError, match="cannot import 'no_such_module'"):
        run_scenario(scenario, "no_such_module:App")
    with pytest.raises(AppSpecError, match="has no callable 'Nope'"):
        run_scenario(scenario, "netsim.examples.ping:Nope")
    with pytest.raises(AppSpecError, match="expected MODULE:FACTORY"):
        run_scenario(scenario, "netsim.examples.ping")
    with pytest.raises(AppFailedError, match=r"failed at t=1s .*ZeroDivisionError: boom") as info:
        run_scenario(scenario, f"{__name__}:FailingApp")
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    with pytest.raises(AppFailedError, match="the factory failed: KeyError: 'oops'"):
        run_scenario(scenario, f"{__name__}:broken_factory")
    with pytest.raises(ScenarioError, match="no host named 'nobody'"):
        run_scenario(scenario, f"{__name__}:NoHostApp")
    bad_workload = scenario_from_text(tmp_path, TWO_HOSTS.replace('"100ms"', '"soon"'))
    with pytest.raises(ScenarioError, match=r"workload\.interval: bad duration 'soon'"):
        run_scenario(bad_workload)


class ProbeApp:
    """Records what its SimContext offers, as one app event."""

    def __init__(self, workload: Mapping[str, object]) -> None:
        pass

    async def run(self, sim: SimContext) -> None:
        await trio.sleep(2.5)
        draws = [sim.rng("a").random(), sim.rng("a").random(), sim.rng("b").random()]
        sim.record(
            "client",
            "probe",
            now=sim.now(),
            draws=draws,
            seed=sim.seed,
            duration=sim.duration_s,
            workload=dict(sim.workload),
            hosts=sorted(sim.hosts),
        )


def test_sim_context_gives_time_rng_and_records(tmp_path: Path) -> None:
    result = run_scenario(scenario_from_text(tmp_path, TWO_HOSTS), f"{__name__}:ProbeApp")
    (probe,) = app_events(result, "probe")
    assert probe.t == probe.fields["now"] == 2.5
    first, again, other = probe.fields["draws"]  # type: ignore[misc]
    assert first == again != other
    assert probe.fields["host"] == "client"
    assert probe.fields["seed"] == 3
    assert probe.fields["duration"] == 60.0
    assert probe.fields["workload"] == {"interval": "100ms"}
    assert probe.fields["hosts"] == ["client", "server"]
    assert result.ended_by == "app-done"
    assert result.end_s == 2.5
