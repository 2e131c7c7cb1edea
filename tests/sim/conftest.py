"""Seeds and replay lines for the deterministic simulations.

Every test here that takes a ``sim_seed`` argument is run once per seed. The CI default
is the test's ``@pytest.mark.sim_seeds(count)`` (seeds ``0 .. count-1``);
``--sim-seeds=K`` runs seeds ``0 .. K-1`` instead and ``--sim-seed=N`` runs seed ``N``
only (both options are declared in the root ``tests/conftest.py``). A simulation is a
pure function of its seed, so the one-line replay command printed for a failing test
(in its report and again at the end of the session) reproduces it exactly.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.seed_replay import report_failed_seed
from tests.sim.harness import TOTALS

DEFAULT_SEEDS = 10
"""Seeds per test when it carries no ``sim_seeds`` marker."""

_REPLAYS = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sim_seeds(count): CI default number of seeds of a tests/sim test "
        "(override with --sim-seeds=K or --sim-seed=N)",
    )
    config.stash[_REPLAYS] = []


@pytest.hookimpl(trylast=True)  # after @parametrize, so ids read "loss50-seed17"
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seed" not in metafunc.fixturenames:
        return
    only = metafunc.config.getoption("--sim-seed")
    count = metafunc.config.getoption("--sim-seeds")
    if only is not None:
        seeds = [only]
    else:
        if count is None:
            marker = metafunc.definition.get_closest_marker("sim_seeds")
            count = marker.args[0] if marker is not None else DEFAULT_SEEDS
        seeds = list(range(count))
    metafunc.parametrize("sim_seed", seeds, ids=[f"seed{seed}" for seed in seeds])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    line = report_failed_seed(
        item, report, param="sim_seed", section="sim replay", what="sim", option="--sim-seed"
    )
    if line is not None:
        item.config.stash[_REPLAYS].append(line)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TOTALS.runs:
        terminalreporter.write_line(
            f"tests/sim: {TOTALS.runs} seeded runs, {TOTALS.simulated_s / 3600:.2f} h simulated, "
            f"{TOTALS.datagrams} datagrams"
        )
    lines = terminalreporter.config.stash.get(_REPLAYS, [])
    if lines:
        terminalreporter.section("tests/sim replay commands")
        for line in lines:
            terminalreporter.write_line(line)
