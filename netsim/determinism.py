"""Pinning Trio's task scheduling so a simulation replays exactly.

What this module owns: the one place netsim reaches into Trio's internals.

Why it is needed. Under a ``MockClock`` every timer is virtual, so the only
remaining source of non-determinism in a simulation is the *order* in which
Trio runs tasks that are runnable at the same moment. Trio 0.35 deliberately
randomises that order: each pass of the run loop takes the batch of runnable
tasks and, with probability 1/2 (drawn from the module-level
``trio._core._run._r``), reverses it. The batch itself is filled in an order
that depends on ``id()`` of cancel scopes (deadline ties) and on which task
woke which, so it differs between processes. Two tasks sending at the same
virtual instant would then enter the network in a different order from run to
run, and the trace would differ.

Trio has a switch for exactly this, used by its Hypothesis integration and by
pytest-trio: when ``trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING`` is true,
each batch is first sorted by the task creation counter (``Task._counter``,
which depends only on the order tasks were spawned) and then shuffled with
``_r``. Seeding ``_r`` therefore makes the order of every batch a pure function
of the program and the seed, independent of memory addresses, hash seeds and
runq order.

Rules kept here:

* :func:`deterministic_scheduling` installs a fresh ``random.Random`` derived
  from the seed as ``_r`` and sets the flag; on exit it restores both previous
  values exactly (so it nests and does not disturb pytest-trio or Hypothesis).
* :func:`check_trio_scheduler_pinnable` verifies the internals are still where
  this module expects them and raises ``RuntimeError`` with a clear message
  otherwise. ``pyproject.toml`` pins ``trio>=0.35,<0.36`` for this reason.

Enter the context *before* the simulated tasks are started (typically around
the whole simulation, inside ``trio.run``); the seed is applied at entry, so
everything that happens inside is replayable.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

__all__ = ["check_trio_scheduler_pinnable", "deterministic_scheduling"]

_FLAG_NAME = "_ALLOW_DETERMINISTIC_SCHEDULING"
_RNG_NAME = "_r"


def _run_module() -> ModuleType:
    """Return ``trio._core._run`` or raise ``RuntimeError`` if it moved."""
    try:
        from trio._core import _run
    except ImportError as exc:  # pragma: no cover - only on an incompatible Trio
        raise RuntimeError(
            "netsim cannot pin Trio's scheduler: trio._core._run is missing "
            "(netsim supports trio>=0.35,<0.36)"
        ) from exc
    return _run


def check_trio_scheduler_pinnable() -> None:
    """Verify that the Trio internals used by :func:`deterministic_scheduling` exist.

    Checks for ``trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING`` (a bool),
    ``trio._core._run._r`` (a ``random.Random``) and the per-task creation
    counter ``Task._counter`` that the deterministic branch sorts by.

    Raises:
        RuntimeError: if any of them is missing or has an unexpected type, naming
            what is missing and the supported Trio range.
    """
    run = _run_module()
    problems: list[str] = []
    if not isinstance(getattr(run, _FLAG_NAME, None), bool):
        problems.append(f"trio._core._run.{_FLAG_NAME} (bool)")
    if not isinstance(getattr(run, _RNG_NAME, None), random.Random):
        problems.append(f"trio._core._run.{_RNG_NAME} (random.Random)")
    task_class = getattr(run, "Task", None)
    fields = getattr(task_class, "__attrs_attrs__", ())
    if not any(getattr(field, "name", None) == "_counter" for field in fields):
        problems.append("trio._core._run.Task._counter")
    if problems:
        import trio

        raise RuntimeError(
            f"netsim cannot pin Trio's scheduler with trio {trio.__version__}: missing "
            + ", ".join(problems)
            + " (netsim supports trio>=0.35,<0.36)"
        )


def scheduler_rng(seed: int) -> random.Random:
    """Return the scheduler ``random.Random`` for ``seed`` (same in every process).

    Args:
        seed: the simulation seed.

    Returns:
        A generator seeded from ``sha256(f"{seed}/trio-scheduler")``.
    """
    digest = hashlib.sha256(f"{seed}/trio-scheduler".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


@contextmanager
def deterministic_scheduling(seed: int) -> Iterator[None]:
    """Pin the order in which Trio runs simultaneously runnable tasks.

    While the context is active, Trio sorts each batch of runnable tasks by
    creation order and shuffles it with a generator seeded from ``seed``, so a
    simulation started inside the context schedules identically in every run
    and every process. Usable inside or outside ``trio.run``; nests.

    Args:
        seed: the simulation seed (the scheduler stream is derived from it with
            a label, so it is independent of the network's random streams).

    Yields:
        Nothing; leave the context to restore Trio's previous settings.

    Raises:
        RuntimeError: if the Trio internals are not pinnable (see
            :func:`check_trio_scheduler_pinnable`).
    """
    check_trio_scheduler_pinnable()
    run = _run_module()
    previous_flag = getattr(run, _FLAG_NAME)
    previous_rng = getattr(run, _RNG_NAME)
    setattr(run, _FLAG_NAME, True)
    setattr(run, _RNG_NAME, scheduler_rng(seed))
    try:
        yield
    finally:
        setattr(run, _FLAG_NAME, previous_flag)
        setattr(run, _RNG_NAME, previous_rng)
