"""Seeds of the simulated system tests: a failing test says which seed to replay.

Simulated tests here take a ``seed`` argument (``@pytest.mark.parametrize("seed", ...)``);
a run is a pure function of it (netsim's network, the services' rngs, Trio's scheduling
all derive from it). When such a test fails, its report gains a "net seed" section with
the one line that reruns it alone.
"""

from __future__ import annotations

import shlex
from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    callspec = getattr(item, "callspec", None)
    seed = callspec.params.get("seed") if callspec is not None else None
    if report.failed and seed is not None:
        line = f"simulation seed {seed} failed; replay: pytest {shlex.quote(item.nodeid)}"
        report.sections.append(("net seed", line))
    return report
