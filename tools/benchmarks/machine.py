"""The machine and the code a benchmark ran on, printed above every report and in the JSON.

What it owns: ``describe_machine``: CPU model and count, memory, kernel, Python and the
versions of the libraries that set the pace (trio, cryptography), the load average at
the start (the machine is shared), the UTC time of the run, and the code measured: the
git commit and, when ``udpim/`` or ``netsim/`` differ from it, how many files differ and
a digest of that difference (so two runs can be told apart when the tree was moving).

Rules it keeps: reads only what the OS publishes (``/proc`` on Linux, ``platform``) and
read-only git commands; anything missing gives "unknown", never an error.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["describe_machine", "machine_markdown"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f}"
    except OSError:
        pass
    return "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


ROOT = Path(__file__).resolve().parents[2]


def _git(*arguments: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *arguments],
            capture_output=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode("utf-8", "replace")


def _code_version() -> str:
    commit = _git("rev-parse", "--short", "HEAD")
    if commit is None:
        return "unknown"
    changed = _git("status", "--porcelain", "--", "udpim", "netsim") or ""
    files = len(changed.splitlines())
    if not files:
        return commit.strip()
    diff = (_git("diff", "HEAD", "--", "udpim", "netsim") or "").encode()
    digest = hashlib.sha256(diff + changed.encode()).hexdigest()[:12]
    return f"{commit.strip()} + {files} changed file(s) under udpim/ and netsim/ (diff {digest})"


def describe_machine() -> dict[str, str]:
    """What the report says about the machine and the software."""
    try:
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        load = "unknown"
    return {
        "cpu": _cpu_model(),
        "cpus": str(os.cpu_count() or "unknown"),
        "memory_gib": _memory_gib(),
        "system": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "trio": _version("trio"),
        "cryptography": _version("cryptography"),
        "load_average_at_start": load,
        "started_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "code": _code_version(),
    }


def machine_markdown(machine: dict[str, str]) -> str:
    """One paragraph describing ``machine``."""
    return (
        f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['memory_gib']} GiB; "
        f"{machine['system']}; Python {machine['python']}, trio {machine['trio']}, "
        f"cryptography {machine['cryptography']}. Load average at start "
        f"{machine['load_average_at_start']}; run started {machine['started_utc']} UTC. "
        f"Code: {machine['code']}."
    )
