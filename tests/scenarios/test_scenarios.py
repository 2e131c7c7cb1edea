"""Every shipped scenario (scenarios/*.toml) runs, in a shorter version where its default
would be long, and its replay reproduces the same trace hash; the figures each scenario is
about come out as its comment block says."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from netsim.report import Summary
from netsim.runner import RunResult, replay_trace, run_scenario
from netsim.scenario import load_scenario
from netsim.trace import TraceEvent

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(path.stem for path in (ROOT / "scenarios").glob("*.toml"))
CI_DURATION_S = {
    "aggressive-nat": 3600.0,
    "cgnat-rebind": 1800.0,
    "commute": 5400.0,  # the whole commute: both handovers and the tunnel
    "home-wifi": 10800.0,  # past the 40 min lull and the pushes after it
    "hub-restart": 3600.0,  # both crashes
    "lossy-30": 1200.0,
    "poll-vs-push": 4200.0,  # four 15 min polls after the last message
    "ten-daemons": 1200.0,  # every daemon settles its heartbeat; the idle half hour is cut
}
PROBLEMS = ("send_failed", "daemon_error", "hub_error")


def app_events(events: list[TraceEvent], name: str) -> list[TraceEvent]:
    return [e for e in events if e.kind == "app" and e.fields.get("event") == name]


def learned(summary: Summary, user: str) -> tuple[float, float]:
    """A learning daemon's (learned NAT timeout, heartbeat interval), both numbers."""
    status = summary.app.status[user]
    timeout_s, interval_s = status["learned_nat_timeout_s"], status["heartbeat_interval_s"]
    assert isinstance(timeout_s, float), f"{user} learned no NAT timeout"
    assert isinstance(interval_s, int | float)
    assert interval_s < timeout_s
    return timeout_s, float(interval_s)


def gaps(summary: Summary, host: str) -> int:
    return sum(len(h.gaps) for h in summary.gaps if h.host == host)


def check_home_wifi(events: list[TraceEvent], summary: Summary) -> None:
    for user in ("alice", "bob", "carol"):
        timeout_s, _ = learned(summary, user)
        assert 60.0 < timeout_s <= 120.0
        assert gaps(summary, user) == 0


def check_aggressive(events: list[TraceEvent], summary: Summary) -> None:
    for user in ("alice", "bob"):
        timeout_s, _ = learned(summary, user)
        assert timeout_s <= 30.0
        assert gaps(summary, user) == 0
    carol = summary.app.status["carol"]
    assert (carol["keepalive_phase"], carol["heartbeat_interval_s"]) == ("off", 60)
    assert gaps(summary, "carol") > 0  # the pinned 60 s heartbeat loses its mapping


def check_commute(events: list[TraceEvent], summary: Summary) -> None:
    moves = [e for e in events if e.kind == "op" and e.fields.get("op") == "move_host"]
    assert [e.t for e in moves] == [1200.0, 3600.0]
    assert summary.places["up:phone"]["outage"] > 0
    path_changes = summary.app.status["phone"]["path_changes"]
    assert isinstance(path_changes, int)
    assert path_changes >= 2  # both moves noticed: the phone re-learned its NAT's timeout


def check_cgnat(events: list[TraceEvent], summary: Summary) -> None:
    assert summary.nats["cgnat"]["rebind"] == 7  # every 4 min in 30 min


def check_hub_restart(events: list[TraceEvent], summary: Summary) -> None:
    assert len(app_events(events, "hub_crash")) == len(app_events(events, "hub_restart")) == 2
    for user in ("alice", "bob", "carol"):
        sessions = summary.app.status[user]["sessions"]
        assert isinstance(sessions, int)
        assert sessions >= 2, f"{user} logged in again after the crashes"


def check_lossy(events: list[TraceEvent], summary: Summary) -> None:
    assert summary.app.retransmissions > 0
    assert all(flow.loss is not None and flow.loss > 0.2 for flow in summary.flows)


def check_poll_vs_push(events: list[TraceEvent], summary: Summary) -> None:
    medians = {}
    for host in ("push", "poll1m", "poll5m", "poll15m"):
        latency = summary.app.hosts[host].latency
        assert latency.p50 is not None
        medians[host] = latency.p50
    assert medians["push"] < 1.0 < medians["poll1m"] < medians["poll5m"] < medians["poll15m"]
    rate = {pair.name: pair.bytes_per_hour or 0.0 for pair in summary.pairs}
    assert rate["hub <-> poll1m"] > rate["hub <-> poll5m"] > rate["hub <-> poll15m"]
    polls = summary.app.status["poll15m"]["polls"]
    assert polls == 5


def check_ten_daemons(events: list[TraceEvent], summary: Summary) -> None:
    homes = ("alice", "bob", "carol", "dave", "erin", "frank")
    phones = ("grace", "heidi", "ivan", "judy")
    assert {e.fields["host"] for e in app_events(events, "welcomed")} == {*homes, *phones}
    for user in homes:
        timeout_s, _ = learned(summary, user)
        assert 60.0 < timeout_s <= 120.0
        assert gaps(summary, user) == 0
    for user in phones:  # behind the carrier-grade NAT's 60 s timeout
        timeout_s, _ = learned(summary, user)
        assert timeout_s <= 60.0
        assert gaps(summary, user) == 0


CHECKS: dict[str, Callable[[list[TraceEvent], Summary], None]] = {
    "aggressive-nat": check_aggressive,
    "home-wifi": check_home_wifi,
    "commute": check_commute,
    "cgnat-rebind": check_cgnat,
    "hub-restart": check_hub_restart,
    "lossy-30": check_lossy,
    "poll-vs-push": check_poll_vs_push,
    "ten-daemons": check_ten_daemons,
}


def test_every_shipped_scenario_has_a_ci_duration() -> None:
    assert sorted(CI_DURATION_S) == SCENARIOS


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_runs_delivers_everything_and_replays(tmp_path: Path, name: str) -> None:
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    assert scenario.description
    assert scenario.app == "tools.udpim_app:UdpimApp"
    short = scenario.with_overrides(duration_s=min(CI_DURATION_S[name], scenario.duration_s))
    trace = tmp_path / f"{name}.trace.gz"
    result: RunResult = run_scenario(short, record_path=trace)
    events, summary = result.events(), result.summary()
    assert result.ended_by == "duration"
    (ready,) = app_events(events, "ready")
    assert ready.fields["all_welcomed"] is True
    assert summary.app.sent > 0
    assert summary.app.delivery_ratio == 1.0
    assert summary.app.duplicates == 0
    for problem in PROBLEMS:
        assert not app_events(events, problem)
    daemons = {e.fields["host"] for e in app_events(events, "welcomed")}
    assert daemons <= set(summary.app.status)
    if name in CHECKS:
        CHECKS[name](events, summary)
    replay = replay_trace(trace)
    assert replay.ok, replay.divergence.describe() if replay.divergence else "hash differs"
    assert replay.expected_hash == replay.actual_hash == result.trace_hash


@pytest.mark.slow
def test_the_netsim_command_runs_a_scenario_from_the_checkout_and_replays_elsewhere(
    tmp_path: Path,
) -> None:
    """``netsim run scenarios/X.toml`` from the repository root imports ``tools.udpim_app``
    although the command's own directory is not the checkout (``-P``: like a console
    script); a replay in another process, with another hash seed, gives the same hash."""
    trace = tmp_path / "lossy.trace.gz"
    command = [sys.executable, "-P", "-c", "from netsim.cli import main; raise SystemExit(main())"]
    options = ["--duration", "5min", "--no-progress", "--record", str(trace)]
    run = subprocess.run(
        [*command, "run", "scenarios/lossy-30.toml", *options],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    hash_line = next(line for line in run.stdout.splitlines() if line.startswith("trace hash"))
    replay = subprocess.run(
        [*command, "replay", str(trace)],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "2"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert replay.stdout.startswith("replay OK: scenario lossy-30")
    assert replay.stdout.split()[-1] == hash_line.split()[-1]
