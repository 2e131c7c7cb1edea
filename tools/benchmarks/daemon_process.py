"""``daemon_process``: a real ``python -m udpim daemon`` in its own process, for the benchmarks.

What it owns: starting a user's daemon on loopback against a hub, with a data directory
of its own, reading its start-up line (``--json``: ``{"event": "started", ...}``) for the
address, device and key, and stopping it with SIGINT at the end. A daemon in its own
process is what a deployment runs: one daemon per user, each with its own interpreter,
so the benchmark does not charge two daemons to one GIL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tools.benchmarks.hub_process import HubProcess, service_process
from udpim.identity import parse_public_key, public_key_text
from udpim.settings import format_address

__all__ = ["DaemonProcess", "daemon_process"]


@dataclass(frozen=True, slots=True)
class DaemonProcess:
    """A running daemon: its user, device, address, public key and process id."""

    user: str
    device: str
    address: str
    public_key: bytes
    pid: int


@contextmanager
def daemon_process(
    data: Path, user: str, hub: HubProcess, *, stop_timeout_s: float = 30.0
) -> Iterator[DaemonProcess]:
    """``python -m udpim daemon`` for ``user`` on ``data``, bound to 127.0.0.1, pinned to
    ``hub``'s key; SIGINT at the end.

    Raises:
        RuntimeError: the daemon's first line is not its ``started`` JSON object.
    """
    argv = [
        "daemon",
        "--json",
        "--data",
        str(data),
        "--user",
        user,
        "--hub",
        format_address(hub.address),
        "--hub-key",
        public_key_text(hub.public_key),
        "--listen",
        "127.0.0.1:0",
    ]
    with service_process(argv, stop_timeout_s=stop_timeout_s) as (line, pid):
        try:
            facts = json.loads(line)
        except ValueError:
            facts = None
        if not isinstance(facts, dict) or facts.get("event") != "started":
            raise RuntimeError(f"unexpected daemon output: {line!r}")
        yield DaemonProcess(
            user,
            str(facts["device"]),
            str(facts["address"]),
            parse_public_key(str(facts["public_key"])),
            pid,
        )
