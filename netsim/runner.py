"""Running a scenario under virtual time, recording it, and replaying a recorded trace.

What this module owns: the one way a scenario is executed. `run_scenario` builds the topology,
starts the app, applies the timeline at its virtual times and stops at the scenario's duration
(or earlier, when the app returns); `replay_trace` re-runs what a trace header describes and
checks that the same events come out.

Rules it keeps:

* Every run happens in a fresh ``trio.run`` with ``MockClock(autojump_threshold=0)`` inside
  `netsim.determinism.deterministic_scheduling` (seed): virtual time starts at 0, jumps as soon
  as every task waits, and simultaneous tasks run in an order fixed by the seed. Together with
  the seeded link/NAT/app random streams this makes a run a pure function of
  (scenario, seed, app, netsim version).
* The trace header carries everything a replay needs: the full scenario as data, the seed, the
  app spec and the netsim version. A replay never reads the original scenario file.
* Progress reporting hooks `Network.on_progress` (called by the network's own scheduler task);
  it never adds a task, so showing progress cannot change a run.
* Errors come out as one-line exceptions: `ScenarioError` (scenario or workload), `AppSpecError`
  (``--app``), `AppFailedError` (the app raised; the original is its ``__cause__``),
  `netsim.trace.TraceError` (unreadable trace).

The trace ends with one ``end`` event (``reason``: ``app-done`` or ``duration``) so a trace shows
why the run stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
import trio.testing

import netsim
from netsim.app import App, AppSpecError, SimContext, WorkloadError, load_app_factory
from netsim.determinism import deterministic_scheduling
from netsim.network import Network, open_network
from netsim.report import Summary, summarize
from netsim.scenario import Scenario, ScenarioError, TimelineAction, TimelineEntry
from netsim.scenario import scenario_from_data as _scenario_from_data
from netsim.trace import (
    Divergence,
    Recorder,
    TraceEvent,
    first_divergence,
    read_events,
    read_header,
    trace_hash,
)

ProgressCallback = Callable[[float], None]  # called with the virtual time, seconds


class AppFailedError(RuntimeError):
    """The app (or a timeline change) raised during the run; `str()` is one line.

    The original exception is ``__cause__`` (the CLI shows its traceback with ``--debug``).
    """


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of one run."""

    scenario: Scenario
    seed: int
    app: str
    trace_hash: str
    lines: tuple[str, ...]  # canonical event lines, in order
    end_s: float  # virtual time the run stopped
    ended_by: str  # "app-done" or "duration"
    record_path: Path | None

    def events(self) -> list[TraceEvent]:
        """The recorded events, parsed."""
        return [TraceEvent.from_line_untrusted(line) for line in self.lines]

    def summary(self) -> Summary:
        """The report figures of this run (`netsim.report.summarize`)."""
        return summarize(self.events())


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """The outcome of `replay_trace`: the same trace again, or where it first differs."""

    path: Path
    scenario: str
    seed: int
    app: str
    recorded_version: str
    expected_hash: str
    actual_hash: str
    divergence: Divergence | None

    @property
    def ok(self) -> bool:
        """True when the replay produced exactly the recorded events."""
        return self.divergence is None and self.expected_hash == self.actual_hash


def run_scenario(
    scenario: Scenario,
    app_spec: str | None = None,
    *,
    seed: int | None = None,
    record_path: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> RunResult:
    """Run ``scenario`` with an app under virtual time and return its trace hash and events.

    Args:
        scenario: the validated scenario (apply ``--duration`` with `Scenario.with_overrides`).
        app_spec: ``MODULE:FACTORY``; defaults to the scenario's ``app`` key.
        seed: overrides the scenario's seed.
        record_path: also write the trace file there (gzip if it ends in ``.gz``).
        progress: called with the virtual time as the run advances (display only).

    Returns:
        The run's result (trace hash, events, when and why it stopped).

    Raises:
        ScenarioError: no app given anywhere, or the workload does not suit the app.
        AppSpecError: ``app_spec`` does not name a usable factory.
        AppFailedError: the app raised during the run.
        OSError: the trace file cannot be written.
    """
    spec = app_spec or scenario.app
    if spec is None:
        raise ScenarioError(
            scenario.source,
            "app",
            'no app: pass --app MODULE:FACTORY or set app = "MODULE:FACTORY" in the scenario',
        )
    if seed is not None and seed != scenario.seed:
        scenario = scenario.with_overrides(seed=seed)
    app = _make_app(scenario, spec)
    metadata = {"netsim": netsim.__version__, "app": spec, "scenario": scenario.to_data()}
    path = Path(record_path) if record_path is not None else None
    with (
        Recorder(path, seed=scenario.seed, metadata=metadata) as recorder,
        deterministic_scheduling(scenario.seed),
    ):
        end_s, ended_by = trio.run(
            _simulate,
            scenario,
            app,
            spec,
            recorder,
            progress,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
    return RunResult(
        scenario,
        scenario.seed,
        spec,
        recorder.hexdigest(),
        tuple(recorder.lines()),
        end_s,
        ended_by,
        path,
    )


def replay_trace(path: str | Path) -> ReplayResult:
    """Re-run the scenario, seed and app a trace header records; compare with the trace.

    Args:
        path: a trace written by ``run_scenario(..., record_path=...)``.

    Returns:
        The comparison; ``.ok`` is true when every event and the hash are identical, otherwise
        ``.divergence`` gives the first differing event (index, expected and actual line).

    Raises:
        netsim.trace.TraceError: the file is not a netsim trace or lacks the replay data.
        ScenarioError, AppSpecError, AppFailedError: as for `run_scenario`.
    """
    from netsim.trace import TraceError

    path = Path(path)
    header = read_header(path)
    meta: dict[str, Any] = dict(header.metadata)
    data, spec = meta.get("scenario"), meta.get("app")
    if not isinstance(data, dict) or not isinstance(spec, str) or header.seed is None:
        raise TraceError(f"{path}: the header lacks the scenario, app or seed needed to replay")
    scenario = _scenario_from_data(data, f"{path.name} (header)")
    result = run_scenario(scenario, spec, seed=header.seed)
    divergence = first_divergence(read_events(path), result.lines)
    return ReplayResult(
        path,
        scenario.name,
        header.seed,
        spec,
        str(meta.get("netsim", "?")),
        trace_hash(path),
        result.trace_hash,
        divergence,
    )


def _make_app(scenario: Scenario, spec: str) -> App:
    factory = load_app_factory(spec)
    try:
        return factory(scenario.workload)
    except (WorkloadError, ValueError, TypeError) as exc:  # the workload does not suit the app
        raise ScenarioError(scenario.source, "", f"app {spec}: {exc}") from None
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
        raise AppFailedError(f"app {spec}: the factory failed: {problem}") from exc


async def _simulate(
    scenario: Scenario,
    app: App,
    spec: str,
    recorder: Recorder,
    progress: ProgressCallback | None,
) -> tuple[float, str]:
    ended_by = "duration"
    async with open_network(scenario.seed, recorder=recorder) as network:
        for nat in scenario.nats:
            network.add_nat(nat.name, nat.public_ip, nat.config)
        for host in scenario.hosts:
            network.add_host(host.name, host.address, up=host.up, down=host.down, nat=host.nat)
        network.on_progress = progress
        sim = SimContext(
            network,
            [host.name for host in scenario.hosts],
            workload=scenario.workload,
            seed=scenario.seed,
            duration_s=scenario.duration_s,
            recorder=recorder,
        )
        try:
            with trio.move_on_at(scenario.duration_s):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_apply_timeline, network, scenario.timeline)
                    await app.run(sim)
                    ended_by = "app-done"
                    nursery.cancel_scope.cancel()
        except Exception as exc:
            raise _one_line_error(scenario, spec, exc) from _leaf(exc)
        end_s = trio.current_time()
        recorder.record(end_s, "end", reason=ended_by)
    return end_s, ended_by


async def _apply_timeline(network: Network, timeline: Iterable[TimelineEntry]) -> None:
    for entry in timeline:
        await trio.sleep_until(entry.at_s)
        apply_timeline_entry(network, entry)


def apply_timeline_entry(network: Network, entry: TimelineEntry) -> None:
    """Make one timeline change on the network (at the current virtual time)."""
    if entry.action in (TimelineAction.SET_LINK, TimelineAction.OUTAGE):
        assert entry.host is not None
        network.set_link(entry.host, up=entry.up, down=entry.down)
    elif entry.action is TimelineAction.REBIND:
        assert entry.nat is not None
        network.rebind_nat(entry.nat, entry.public_ip)
    elif entry.action is TimelineAction.MOVE:
        assert entry.host is not None
        assert entry.address is not None
        network.move_host(entry.host, entry.address, nat=entry.nat)
    elif entry.action is TimelineAction.PARTITION:
        network.partition(*entry.groups)
    else:
        network.heal()


def _leaf(exc: BaseException) -> BaseException:
    """The first non-group exception inside (trio wraps task errors in ExceptionGroups)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _one_line_error(scenario: Scenario, spec: str, exc: Exception) -> BaseException:
    leaf = _leaf(exc)
    if isinstance(leaf, WorkloadError):
        return ScenarioError(scenario.source, "", f"app {spec}: {leaf}")
    if isinstance(leaf, AppSpecError):
        return leaf
    at = f"{trio.current_time():g}s"
    return AppFailedError(f"run failed at t={at} (app {spec}): {type(leaf).__name__}: {leaf}")
