"""``hub_process``: a real ``python -m udpim hub`` in its own process, for the benchmarks.

What it owns: starting the hub on loopback with a data directory, reading its first line
(``listening on HOST:PORT, public key KEY``) for the address and key, and stopping it
with SIGINT at the end (killed if it has not exited within ``stop_timeout_s``). The hub
is started before anything is measured, so blocking here is fine. ``service_process``
is the shared part (start a ``udpim`` service, read its start-up line, SIGINT at the
end); ``tools.benchmarks.daemon_process`` uses it for a user's daemon.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from udpim.identity import parse_public_key

__all__ = ["HubProcess", "hub_process", "service_process"]

_STARTED: Final = re.compile(r"listening on ([\d.]+):(\d+), public key ([0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class HubProcess:
    """A running hub: where it listens, its public key, its process id."""

    address: tuple[str, int]
    public_key: bytes
    pid: int


@contextmanager
def hub_process(data: Path, *, stop_timeout_s: float = 30.0) -> Iterator[HubProcess]:
    """``python -m udpim hub`` on ``data``, listening on 127.0.0.1; SIGINT at the end.

    Raises:
        RuntimeError: the hub's first line is not the expected "listening on" line.
    """
    argv = ["hub", "--data", str(data), "--listen", "127.0.0.1:0"]
    with service_process(argv, stop_timeout_s=stop_timeout_s) as (line, pid):
        found = _STARTED.search(line)
        if found is None:
            raise RuntimeError(f"unexpected hub output: {line!r}")
        address = (found.group(1), int(found.group(2)))
        yield HubProcess(address, parse_public_key(found.group(3)), pid)


@contextmanager
def service_process(argv: list[str], *, stop_timeout_s: float) -> Iterator[tuple[str, int]]:
    """``python -m udpim ARGV...``: yields its first stdout line and its process id.

    The process is stopped with SIGINT when the block ends (killed if it has not exited
    within ``stop_timeout_s``).
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "udpim", *argv], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline(), process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
