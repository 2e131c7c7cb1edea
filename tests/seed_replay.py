"""The replay line of a failed seeded test, for the conftests of tests/net and tests/sim.

A seeded test is a pure function of one parametrized argument (``seed`` in tests/net,
``sim_seed`` in tests/sim). When it fails, its report gains a section holding the one
command line that reruns it alone with that seed.
"""

from __future__ import annotations

import shlex

import pytest


def report_failed_seed(
    item: pytest.Item,
    report: pytest.TestReport,
    *,
    param: str,
    section: str,
    what: str,
    option: str | None = None,
) -> str | None:
    """Add the replay line to ``report`` if it failed and ``item`` took a seed ``param``.

    The line reads ``WHAT seed N failed; replay: pytest NODEID`` (then `` OPTION=N`` when
    ``option`` is given: the flag that selects the seed).

    Returns:
        The line added under ``section``, or None (passed, or no seed).
    """
    callspec = getattr(item, "callspec", None)
    seed = callspec.params.get(param) if callspec is not None else None
    if not report.failed or seed is None:
        return None
    command = f"pytest {shlex.quote(item.nodeid)}"
    if option is not None:
        command += f" {option}={seed}"
    line = f"{what} seed {seed} failed; replay: {command}"
    report.sections.append((section, line))
    return line
