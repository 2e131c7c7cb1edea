"""Real ``udpim`` processes for the CLI tests: one-shot commands and running services.

Every process is ``sys.executable -m udpim ...`` with ``XDG_DATA_HOME`` pointed into the
test's temporary directory (so no test can touch a real data directory), and every address
is on 127.0.0.1. A ``Processes`` pool kills whatever is still running when a test ends.
Waits have generous deadlines; a deadline only turns a hang into a failure, it never
decides a result.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

COMMAND_TIMEOUT_S = 60.0
LINE_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Outcome:
    """How a finished ``udpim`` process ended."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        """stdout as one JSON document."""
        return json.loads(self.stdout)

    def json_lines(self) -> list[dict[str, object]]:
        """stdout as JSON lines (each one an object)."""
        documents = [json.loads(line) for line in self.stdout.splitlines() if line.strip()]
        assert all(isinstance(d, dict) for d in documents), self.stdout
        return documents

    def error_line(self) -> str:
        """Assert the process failed with exactly ONE stderr line and no traceback."""
        assert self.code != 0, f"expected a failure, got exit 0: {self.stdout!r}"
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one stderr line, got: {self.stderr!r}"
        assert "Traceback" not in self.stderr
        return lines[0]


class Environment:
    """Where processes of one test run: the environment they get and where logs go."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = dict(os.environ)
        self.env["XDG_DATA_HOME"] = str(root / "xdg")
        self.env.pop("PYTHONWARNINGS", None)
        self._logs = 0

    def data(self, name: str) -> Path:
        """A data directory path for ``name`` (not created)."""
        return self.root / name

    def log_path(self, name: str) -> Path:
        self._logs += 1
        return self.root / f"{self._logs:02d}-{name}.stderr"


def run_udpim(
    environment: Environment,
    *args: str,
    stdin: str | None = None,
    timeout_s: float = COMMAND_TIMEOUT_S,
) -> Outcome:
    """Run ``udpim ARGS...`` to completion."""
    done = subprocess.run(
        [sys.executable, "-m", "udpim", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=environment.env,
        check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


class Service:
    """A long-running ``udpim`` process whose stdout is read line by line."""

    def __init__(
        self, environment: Environment, args: Sequence[str], *, stdin: bool = False
    ) -> None:
        self.args = list(args)
        self._log_path = environment.log_path(args[0])
        self._log = self._log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "udpim", *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=environment.env,
        )
        self._buffer = b""

    def read_line(self, timeout_s: float = LINE_TIMEOUT_S) -> str:
        """The next stdout line (without the newline); fails at EOF or after ``timeout_s``."""
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                assert left > 0, f"no line from {self.args} in {timeout_s}s: {self.stderr()}"
                if selector.select(left):
                    chunk = os.read(stdout.fileno(), 65536)
                    assert chunk, f"{self.args} ended: {self.stderr()}"
                    self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def read_json(self, timeout_s: float = LINE_TIMEOUT_S) -> dict[str, object]:
        document = json.loads(self.read_line(timeout_s))
        assert isinstance(document, dict)
        return document

    def write_lines(self, lines: Sequence[str]) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write("".join(f"{line}\n" for line in lines).encode())
        stdin.flush()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.stdin = None  # communicate() must not flush it

    def stderr(self) -> str:
        self._log.flush()
        return self._log_path.read_text()

    def wait(self, timeout_s: float = STOP_TIMEOUT_S) -> Outcome:
        """Wait for the process to end by itself; the rest of its output."""
        stdout, _ = self.process.communicate(timeout=timeout_s)
        self._log.close()
        rest = (self._buffer + stdout).decode()
        return Outcome(self.process.returncode, rest, self._log_path.read_text())

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> Outcome:
        """Ctrl-C (SIGINT) and wait for a clean exit."""
        self.process.send_signal(signal.SIGINT)
        return self.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL: no clean-up at all (a crash)."""
        self.process.kill()
        self.process.wait()
        self._log.close()


class Processes:
    """Starts services for one test and kills the ones still running at its end."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self._services: list[Service] = []

    def start(self, *args: str, stdin: bool = False) -> Service:
        service = Service(self.environment, args, stdin=stdin)
        self._services.append(service)
        return service

    def run(self, *args: str, stdin: str | None = None) -> Outcome:
        return run_udpim(self.environment, *args, stdin=stdin)

    def hub(
        self, name: str, *extra: str, listen: str = "127.0.0.1:0"
    ) -> tuple[Service, dict[str, object]]:
        """Start a hub on ``data(name)``; returns it and its start-up JSON line."""
        hub = self.start(
            "hub", "--data", str(self.environment.data(name)), "--listen", listen, "--json", *extra
        )
        started = hub.read_json()
        assert started["event"] == "started", started
        return hub, started

    def daemon(
        self, name: str, user: str, hub: str, *extra: str
    ) -> tuple[Service, dict[str, object]]:
        """Start a daemon for ``user`` on ``data(name)``; returns it and its start-up line."""
        daemon = self.start(
            "daemon",
            "--data",
            str(self.environment.data(name)),
            "--user",
            user,
            "--hub",
            hub,
            "--listen",
            "127.0.0.1:0",
            "--json",
            *extra,
        )
        started = daemon.read_json()
        assert started["event"] == "started", started
        return daemon, started

    def wait_logged_in(self, name: str, timeout_s: float = LINE_TIMEOUT_S) -> dict[str, object]:
        """Poll ``udpim status`` of ``data(name)`` until the hub welcomed it; the status."""
        deadline = time.monotonic() + timeout_s
        while True:
            outcome = self.run("status", "--data", str(self.environment.data(name)), "--json")
            assert outcome.code == 0, outcome.stderr
            status = outcome.json()
            assert isinstance(status, dict)
            if status.get("welcomed") is True:
                return status
            assert time.monotonic() < deadline, f"{name} not logged in: {status}"
            time.sleep(POLL_INTERVAL_S)

    def close(self) -> None:
        for service in self._services:
            if service.process.poll() is None:
                service.kill()


@contextmanager
def open_processes(root: Path) -> Iterator[Processes]:
    """A pool of processes running under ``root`` (killed at the end if still running)."""
    processes = Processes(Environment(root))
    try:
        yield processes
    finally:
        processes.close()
