"""``tools/bench simspeed``: how much faster than real time netsim runs udpim.

What it measures (TARGETS.md: netsim >= 1000x real time for a 10-daemon scenario): the
scenario ``scenarios/ten-daemons.toml`` (a real hub and ten real user daemons, with
encryption, retransmission, heartbeats, NAT-timeout learning and durable sqlite stores,
behind seven NATs with 1 % loss, chatting and idling) run exactly as ``netsim run``
runs it (``netsim.runner.run_scenario``, virtual time, the trace recorded in memory).
Per run:

* simulated seconds, wall seconds and CPU seconds of this process, and the **speed**:
  simulated seconds per wall-clock second (and per CPU second: the gap is time spent
  waiting: for the disk (the daemons' sqlite stores live in the system temp dir as for
  ``netsim run``; simulated stores skip the fsync, but writes still reach the page cache;
  ``--store-dir /dev/shm`` puts them on a tmpfs) or for a CPU held by other processes);
* trace events and datagrams (``send`` events) per wall second, and wall microseconds
  per datagram;
* delivery (messages received / sent), so a fast run that did no work shows.

The baseline of the same run is a trivial netsim scenario, netsim's bundled
``lossy-ping`` (two hosts, one ping a second over 25 ms and 2 % loss, netsim's example
app: no udpim at all), over the same simulated time. Its speed says what the simulator
alone costs at almost no traffic; its datagrams per wall second say what one simulated
datagram costs without udpim, so "udpim's share" is the difference per datagram.

Run ``r`` of ``--repeat N`` uses seed ``seed + r`` for both scenarios (the workload and
the losses change with the seed, as in ``netsim run --seed``); the scenario and its
baseline alternate, and the table gives the median and (min..max) over runs, and the
median of the per-run ratios. One untimed short run of each comes first, so imports and
first-use costs stay out of the figures. A run of the default 90 simulated minutes
takes about 3 s; ``--quick`` simulates 15 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from netsim.runner import run_scenario
from netsim.scenario import Scenario, ScenarioError, load_scenario
from netsim.units import format_duration, parse_duration
from tools.benchmarks.command import Section, Subcommand
from tools.benchmarks.distribution import Spread

__all__ = ["SUBCOMMAND", "SimRun", "run", "run_once"]

ROOT: Final = Path(__file__).resolve().parents[2]
SCENARIO: Final = ROOT / "scenarios" / "ten-daemons.toml"
BASELINE: Final = "lossy-ping"
LABELS: Final = {
    "ten-daemons": "hub + 10 udpim daemons",
    "lossy-ping": "2 hosts pinging, netsim only",
}
"""What the table says about the default scenarios."""
TARGET_SPEED: Final = 1000.0
QUICK_DURATION_S: Final = 900.0
WARM_UP_S: Final = 120.0


@dataclass(frozen=True, slots=True)
class SimRun:
    """One timed run of a scenario."""

    name: str
    seed: int
    simulated_s: float
    wall_s: float
    cpu_s: float
    events: int
    datagrams: int
    sent: int
    received: int

    @property
    def speed(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self.simulated_s / self.wall_s

    @property
    def events_per_s(self) -> float:
        """Trace events per wall second."""
        return self.events / self.wall_s

    @property
    def datagrams_per_s(self) -> float:
        """Simulated datagrams per wall second."""
        return self.datagrams / self.wall_s

    @property
    def us_per_datagram(self) -> float:
        """Wall microseconds per simulated datagram."""
        return self.wall_s * 1e6 / self.datagrams if self.datagrams else float("inf")


def run_once(scenario: Scenario, seed: int) -> SimRun:
    """Run ``scenario`` once with ``seed`` under virtual time; time it.

    Raises:
        ScenarioError, netsim.runner.AppFailedError: as ``netsim run`` would.
    """
    wall_started, cpu_started = time.perf_counter(), time.process_time()
    result = run_scenario(scenario, seed=seed)
    wall_s = time.perf_counter() - wall_started
    cpu_s = time.process_time() - cpu_started
    summary = result.summary()  # outside the timed part
    return SimRun(
        scenario.name,
        seed,
        result.end_s,
        wall_s,
        cpu_s,
        summary.events,
        sum(flow.packets for flow in summary.flows),
        summary.app.sent,
        summary.app.received,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``simspeed``'s own options."""
    parser.add_argument(
        "--scenario",
        default=str(SCENARIO),
        metavar="PATH",
        help="the scenario to time (default scenarios/ten-daemons.toml)",
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE,
        metavar="PATH",
        help=f"the trivial netsim scenario of the same run (default netsim's {BASELINE})",
    )
    parser.add_argument(
        "--store-dir",
        type=Path,
        metavar="DIR",
        help="where the daemons' sqlite stores live (default: the system temp dir, as for "
        "netsim run); a tmpfs such as /dev/shm takes the disk out of the run entirely",
    )
    parser.add_argument(
        "--duration",
        metavar="TIME",
        help="simulated time per run, e.g. 90min (default: the scenario's; 15min with --quick)",
    )


def _duration_s(args: argparse.Namespace, scenario: Scenario) -> float:
    if args.duration is not None:
        try:
            return parse_duration(args.duration)
        except ValueError as exc:
            raise ValueError(f"--duration: {exc}") from None
    return QUICK_DURATION_S if args.quick else scenario.duration_s


def _load(name: str, duration_s: float | None) -> Scenario:
    """The scenario ``name`` (a path or a bundled name), with another duration if given.

    Raises:
        ValueError: no such scenario, or an invalid one.
    """
    try:
        scenario = load_scenario(name)
        return scenario if duration_s is None else scenario.with_overrides(duration_s=duration_s)
    except ScenarioError as exc:
        raise ValueError(str(exc)) from None


def _progress(sim: SimRun, index: int, total: int) -> None:
    print(
        f"simspeed {sim.name:>12} run {index}/{total} seed {sim.seed}: "
        f"{format_duration(sim.simulated_s)} in {sim.wall_s:.2f} s wall "
        f"({sim.speed:,.0f}x), {sim.datagrams_per_s:,.0f} datagrams/s",
        file=sys.stderr,
        flush=True,
    )


def run(args: argparse.Namespace) -> Section:
    """Time the scenario and its baseline ``args.repeat`` times each, alternating.

    Raises:
        ValueError: a bad ``--scenario``, ``--baseline`` or ``--duration``.
    """
    duration_s = _duration_s(args, _load(args.scenario, None))
    scenario, baseline = _load(args.scenario, duration_s), _load(args.baseline, duration_s)
    with _temporary_files_in(args.store_dir) as store_dir:
        for warm in (scenario, baseline):  # imports, first-use costs: untimed
            run_scenario(warm.with_overrides(duration_s=min(WARM_UP_S, duration_s)))
        load_at_start = _load_average()
        runs: list[tuple[SimRun, SimRun]] = []
        for repetition in range(args.repeat):
            pair = (
                run_once(scenario, args.seed + repetition),
                run_once(baseline, args.seed + repetition),
            )
            for sim in pair:
                _progress(sim, repetition + 1, args.repeat)
            runs.append(pair)
    context = Context((load_at_start, _load_average()), store_dir)
    return Section("simspeed", _markdown(runs, context), _json(runs, duration_s, context))


@dataclass(frozen=True, slots=True)
class Context:
    """What the figures depend on besides the code: the load and where the stores were."""

    loads: tuple[str, str]
    store_dir: str


@contextlib.contextmanager
def _temporary_files_in(directory: Path | None) -> Iterator[str]:
    """Make ``tempfile`` (where the scenario app puts its stores) use ``directory``.

    Yields:
        The directory temporary files go to during the block.

    Raises:
        ValueError: ``directory`` is not a directory.
    """
    if directory is None:
        yield tempfile.gettempdir()
        return
    if not directory.is_dir():
        raise ValueError(f"--store-dir: not a directory: {directory}")
    previous = tempfile.tempdir
    tempfile.tempdir = str(directory)
    try:
        yield str(directory)
    finally:
        tempfile.tempdir = previous


def _load_average() -> str:
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def _spread(runs: list[SimRun], figure: Callable[[SimRun], float]) -> Spread:
    return Spread.of([figure(sim) for sim in runs])


def _row(label: str, runs: list[SimRun], bold: bool) -> str:
    speed = _spread(runs, lambda sim: sim.speed).format(digits=0)
    sent, received = sum(sim.sent for sim in runs), sum(sim.received for sim in runs)
    delivered = f"{received}/{sent}" if sent else "n/a (no messages)"
    mark = "**" if bold else ""
    return (
        f"| {label} | {format_duration(runs[0].simulated_s)} "
        f"| {_spread(runs, lambda sim: sim.wall_s).format(digits=2)} "
        f"| {_spread(runs, lambda sim: sim.cpu_s).format(digits=2)} "
        f"| {mark}{speed}{mark} "
        f"| {_spread(runs, lambda sim: sim.simulated_s / sim.cpu_s).format(digits=0)} "
        f"| {_spread(runs, lambda sim: sim.events_per_s).format(digits=0)} "
        f"| {_spread(runs, lambda sim: sim.datagrams_per_s).format(digits=0)} "
        f"| {_spread(runs, lambda sim: sim.us_per_datagram).format(digits=0)} "
        f"| {delivered} |"
    )


def _label(name: str) -> str:
    known = LABELS.get(name)
    return name if known is None else f"{name}: {known}"


def _markdown(runs: list[tuple[SimRun, SimRun]], context: Context) -> str:
    mains, bases = [main for main, _ in runs], [base for _, base in runs]
    several = len(runs) > 1
    speed = _spread(mains, lambda sim: sim.speed)
    cpu_speed = _spread(mains, lambda sim: sim.simulated_s / sim.cpu_s)
    ratio = Spread.of([main.speed / base.speed for main, base in runs])
    extra_us = Spread.of([m.us_per_datagram - b.us_per_datagram for m, b in runs])
    met = "met" if speed.median >= TARGET_SPEED else "not met"
    first, last = runs[0][0].seed, runs[-1][0].seed
    seeds = f"seed {first}" if first == last else f"seeds {first}..{last}"
    return "\n".join(
        [
            "### Simulation speed: simulated seconds per wall-clock second",
            "",
            f"netsim under virtual time (`run_scenario`, as `netsim run` does), "
            f"{len(runs)} run(s) of each, {seeds}, the two scenarios alternating"
            + ("; median (min..max) over runs" if several else "")
            + f". Load average at start {context.loads[0]}, at end {context.loads[1]}. "
            f"The daemons' sqlite stores (simulated: synchronous=OFF) live in {context.store_dir}.",
            "",
            "| scenario | simulated | wall s | CPU s | speed (x real time) | per CPU s "
            "| events / wall s | datagrams / wall s | wall µs per datagram | messages delivered |",
            "|---|---|---|---|---|---|---|---|---|---|",
            _row(_label(mains[0].name), mains, bold=True),
            _row(_label(bases[0].name) + " (baseline)", bases, bold=False),
            "",
            f"Target (TARGETS.md) >= {TARGET_SPEED:,.0f}x real time for a 10-daemon scenario: "
            f"**{met}** ({speed.format(digits=0)}x; by this process's CPU time alone "
            f"{cpu_speed.format(digits=0)}x; wall time beyond CPU time is waiting, for the "
            "disk (the stores' writes) or for a CPU held by other processes; the baseline has "
            "no stores, so its gap is the latter alone). Against the baseline of the same runs: "
            f"{ratio.format(digits=3)} of its speed; each simulated datagram costs "
            f"{extra_us.format(digits=0)} µs of wall time more than one of the baseline "
            "(udpim's share: both daemons' sessions, crypto, the IM layer and the stores, "
            "plus the trace of a busier network).",
        ]
    )


def _scenario_json(sims: list[SimRun]) -> dict[str, object]:
    """One scenario's runs: name, speed spreads and every run."""
    return {
        "name": sims[0].name,
        "speed": _spread(sims, lambda sim: sim.speed).to_json(digits=1),
        "speed_per_cpu_s": _spread(sims, lambda sim: sim.simulated_s / sim.cpu_s).to_json(digits=1),
        "datagrams_per_s": _spread(sims, lambda sim: sim.datagrams_per_s).to_json(digits=1),
        "runs": [_run_json(sim) for sim in sims],
    }


def _run_json(sim: SimRun) -> dict[str, object]:
    return {
        "seed": sim.seed,
        "simulated_s": sim.simulated_s,
        "wall_s": round(sim.wall_s, 4),
        "cpu_s": round(sim.cpu_s, 4),
        "speed": round(sim.speed, 1),
        "speed_per_cpu_s": round(sim.simulated_s / sim.cpu_s, 1),
        "events": sim.events,
        "datagrams": sim.datagrams,
        "events_per_s": round(sim.events_per_s, 1),
        "datagrams_per_s": round(sim.datagrams_per_s, 1),
        "us_per_datagram": round(sim.us_per_datagram, 2),
        "messages_sent": sim.sent,
        "messages_received": sim.received,
    }


def _json(
    runs: list[tuple[SimRun, SimRun]], duration_s: float, context: Context
) -> dict[str, object]:
    mains, bases = [main for main, _ in runs], [base for _, base in runs]
    return {
        "simulated_s": duration_s,
        "target_speed": TARGET_SPEED,
        "load_average": {"start": context.loads[0], "end": context.loads[1]},
        "store_dir": context.store_dir,
        "scenario": _scenario_json(mains),
        "baseline": _scenario_json(bases),
        "speed_over_baseline": Spread.of([m.speed / b.speed for m, b in runs]).to_json(),
        "target_met": _spread(mains, lambda sim: sim.speed).median >= TARGET_SPEED,
    }


SUBCOMMAND = Subcommand(
    name="simspeed",
    help="netsim speed: simulated seconds per wall second, hub + 10 udpim daemons vs a ping",
    add_arguments=add_arguments,
    run=run,
)
