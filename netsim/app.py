"""The application interface: what a program must provide to run inside a netsim scenario.

This module owns the contract between the runner and the code under test, and nothing else:

* An *app* is any object with ``async def run(self, sim: SimContext) -> None``. It runs until its
  workload is done (the scenario then ends early) or until it is cancelled at the scenario's end.
* An app is made by a *factory* named ``MODULE:FACTORY`` (``--app`` or the scenario's ``app``
  key), called with the scenario's ``[workload]`` table. A class is a fine factory. The factory
  validates the workload and raises `WorkloadError` (one line naming the key) if it is wrong.
* The app reaches the network only through `SimContext`: hosts make sockets
  (``sim.host("alice").socket()``), time is ``sim.now()`` / ``trio.sleep``, randomness is
  ``sim.rng(labels)``, and ``sim.record(host, event, **fields)`` writes app events into the trace.

Standard app events, understood by ``netsim report``: ``msg_sent`` (id, size), ``msg_received``
(id, size), ``retransmit`` (id, or ``count`` for a total; default 1) and ``status`` (scalar
fields; the report shows each host's last one). Message ids are matched across hosts, so they
must be unique within a run (e.g. ``"alice:17"``). Any other event name is kept in the trace
as it is.

Apps are imported with the current working directory first on ``sys.path`` (as ``python -m``
does), so ``netsim run`` from a project's root finds the project's own app modules.

Rules: an app must be deterministic given the context (no wall clock, no global ``random``, no
real sockets), otherwise replay reports a divergence.
"""

from __future__ import annotations

import importlib
import os
import random
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import trio

from netsim.models import derive_rng
from netsim.network import Host, Network
from netsim.trace import Recorder
from netsim.units import parse_duration, parse_size

MSG_SENT = "msg_sent"
MSG_RECEIVED = "msg_received"
RETRANSMIT = "retransmit"
STATUS = "status"


class App(Protocol):
    """A program under simulation."""

    async def run(self, sim: SimContext) -> None:
        """Run the workload; return when done (ends the scenario) or be cancelled at its end."""


AppFactory = Callable[[Mapping[str, object]], App]


class AppSpecError(ValueError):
    """``MODULE:FACTORY`` does not name a usable factory; `str()` is one line."""


class WorkloadError(ValueError):
    """The ``[workload]`` table does not suit the app; `str()` is one line naming the key."""


class SimContext:
    """Everything an app may use during a simulation."""

    def __init__(
        self,
        network: Network,
        hosts: Iterable[str],
        *,
        workload: Mapping[str, object],
        seed: int,
        duration_s: float,
        recorder: Recorder,
    ) -> None:
        self.network = network
        self.hosts: Mapping[str, Host] = {name: network.host(name) for name in hosts}
        self.workload = workload
        self.seed = seed
        self.duration_s = duration_s
        self._recorder = recorder

    def host(self, name: str) -> Host:
        """The host called ``name``. Raises WorkloadError if the scenario has none."""
        if name not in self.hosts:
            raise WorkloadError(f"no host named {name!r} (hosts: {', '.join(self.hosts)})")
        return self.hosts[name]

    def rng(self, *labels: str) -> random.Random:
        """A random generator derived from the seed and ``labels`` (same labels, same stream)."""
        return derive_rng(self.seed, "app", *labels)

    def record(self, host: str, event: str, **fields: object) -> None:
        """Write an app event (kind ``app``) into the trace at the current virtual time."""
        self._recorder.record(self.now(), "app", host=host, event=event, **fields)

    def now(self) -> float:
        """Virtual seconds since the scenario started."""
        return trio.current_time()


def load_app_factory(spec: str) -> AppFactory:
    """Import the factory named by ``MODULE:FACTORY`` (e.g. ``netsim.examples.ping:PingApp``).

    The current working directory is put first on ``sys.path`` (if it is not there yet), as
    ``python -m`` does, so the ``netsim`` console script run from a project's root imports
    that project's modules (``tools.udpim_app`` from a udpim checkout).

    Raises:
        AppSpecError: malformed spec, module not importable, or no such callable.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute or ":" in attribute:
        raise AppSpecError(f"bad app {spec!r}: expected MODULE:FACTORY")
    put_cwd_on_path()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppSpecError(f"bad app {spec!r}: cannot import {module_name!r} ({exc})") from None
    except Exception as exc:  # the module itself is broken (SyntaxError, ...)
        problem = f"{type(exc).__name__}: {exc}"
        raise AppSpecError(
            f"bad app {spec!r}: importing {module_name!r} failed ({problem})"
        ) from exc
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise AppSpecError(f"bad app {spec!r}: {module_name} has no callable {attribute!r}")
    result: AppFactory = factory
    return result


def put_cwd_on_path() -> None:
    """Put the current working directory first on ``sys.path`` unless it is already there.

    ``python -m`` starts with the current directory on the path (as ``""``); a console
    script starts with its own directory instead. Either spelling counts as present.
    """
    cwd = os.getcwd()
    present = {os.path.abspath(entry or os.curdir) for entry in sys.path}
    if cwd not in present:
        sys.path.insert(0, cwd)


class Workload:
    """Typed, validated reads of a ``[workload]`` table for app factories.

    Every getter raises `WorkloadError` naming ``workload.KEY`` when the value is wrong.
    """

    def __init__(self, data: Mapping[str, object]) -> None:
        self.data = data

    def fail(self, key: str, problem: str) -> WorkloadError:
        """The error to raise for ``workload.KEY`` (for checks the getters do not cover)."""
        return WorkloadError(f"workload.{key}: {problem}")

    def text(self, key: str, default: str) -> str:
        """A string value."""
        value = self.data.get(key, default)
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {value!r}")
        return value

    def names(self, key: str, default: list[str]) -> list[str]:
        """A list of strings (host names)."""
        value = self.data.get(key, default)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.fail(key, f"expected a list of names, got {value!r}")
        return list(value)

    def integer(self, key: str, default: int | None, *, minimum: int = 0) -> int | None:
        """An integer >= ``minimum`` (None only when absent and the default is None)."""
        value = self.data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def duration_s(self, key: str, default: str, *, allow_zero: bool = False) -> float:
        """A duration in seconds (``"25ms"``, ``1.5``); > 0, or >= 0 with ``allow_zero``."""
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(key, f'expected a duration such as "1s", got {value!r}')
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None
        if seconds < 0 or (seconds == 0 and not allow_zero):
            raise self.fail(key, "must be 0s or more" if allow_zero else "must be more than 0s")
        return seconds

    def size_bytes(self, key: str, default: int) -> int:
        """A size in bytes (``64``, ``"1KiB"``)."""
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(key, f'expected a size such as "64" or "1KiB", got {value!r}')
        try:
            return parse_size(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def check_keys(self, known: Iterable[str]) -> None:
        """Reject keys the app does not read (typos)."""
        allowed = set(known)
        for key in self.data:
            if key not in allowed:
                raise self.fail(key, f"unknown key (expected one of {', '.join(sorted(allowed))})")
