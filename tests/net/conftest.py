"""Seeds of the simulated system tests: a failing test says which seed to replay.

Simulated tests here take a ``seed`` argument (``@pytest.mark.parametrize("seed", ...)``);
a run is a pure function of it (netsim's network, the services' rngs, Trio's scheduling
all derive from it). When such a test fails, its report gains a "net seed" section with
the one line that reruns it alone.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.seed_replay import report_failed_seed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    report_failed_seed(item, report, param="seed", section="net seed", what="simulation")
    return report
