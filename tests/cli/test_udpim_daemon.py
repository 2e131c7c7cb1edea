"""``udpim daemon`` as a real process: start-up line, config file, Ctrl-C, and every error a
user meets around it (daemon not running, hub unreachable, name taken, bad arguments)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.udpim_processes import Processes, open_processes

pytestmark = pytest.mark.slow


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with open_processes(tmp_path) as pool:
        yield pool


@pytest.fixture
def silent_hub() -> Iterator[str]:
    """A UDP address on loopback where nothing ever answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_daemon_from_config_file_and_hub_unreachable(processes: Processes, silent_hub: str) -> None:
    data = processes.environment.data("carol")
    key = processes.run("keygen", "--data", str(processes.environment.data("other"))).stdout
    data.mkdir(mode=0o700)
    (data / "udpim.toml").write_text(
        f'user = "carol"\nhub = "{silent_hub}"\nhub_key = "{key.strip()}"\n'
        'listen = "127.0.0.1:0"\nlog_level = "error"\n'
    )
    daemon = processes.start("daemon", "--data", str(data))
    line = daemon.read_line()
    pattern = rf"udpim daemon: carol \(device [0-9a-f]{{16}}\) on 127\.0\.0\.1:\d+, hub {silent_hub}, public key [0-9a-f]{{64}}"  # noqa: E501
    assert re.fullmatch(pattern, line), line
    for wait in ("accepted", "delivered"):
        sent = processes.run(
            "send", "--data", str(data), "dave", "anyone there?", "--wait", wait, "--timeout", "1"
        )
        assert sent.code == 1
        error = sent.error_line()
        assert error.startswith("udpim send: error: hub unreachable: message ")
        assert "still queued after 1 s" in error
    status = processes.run("status", "--data", str(data))
    assert status.code == 0
    assert "outbox     2 queued" in status.stdout
    assert "no answer yet" in status.stdout or "session    none (" in status.stdout
    stopped = daemon.stop()
    assert stopped.code == 0
    assert stopped.stderr == "udpim daemon: stopped\n"


def test_commands_without_a_daemon_say_so(processes: Processes) -> None:
    data = processes.environment.data("idle")
    for args in (["send", "bob", "hi"], ["inbox"], ["inbox", "--follow"], ["status"]):
        outcome = processes.run(*args, "--data", str(data))
        assert outcome.code == 1
        assert outcome.error_line() == (
            f"udpim {args[0]}: error: daemon not running (no control socket at "
            f"{data / 'control.sock'})"
        )


def test_second_daemon_on_a_data_dir_and_a_taken_name_fail(processes: Processes) -> None:
    _, started = processes.hub("hub")
    address = str(started["address"])
    processes.daemon("alice", "alice", address)
    processes.wait_logged_in("alice")
    data = processes.environment.data("alice")
    twice = processes.run(
        "daemon",
        "--data",
        str(data),
        "--user",
        "alice",
        "--hub",
        address,
        "--listen",
        "127.0.0.1:0",
    )
    assert twice.code == 1
    assert twice.error_line() == f"udpim daemon: error: another daemon is already running on {data}"
    impostor = processes.start(
        "daemon",
        "--data",
        str(processes.environment.data("eve")),
        "--user",
        "alice",
        "--hub",
        address,
        "--listen",
        "127.0.0.1:0",
        "--hub-key",
        str(started["public_key"]),
    )
    impostor.read_line()  # started: it learns the answer from the hub
    ended = impostor.wait()
    assert ended.code == 1
    assert "Traceback" not in ended.stderr
    *logged, last = ended.stderr.splitlines()
    assert last == (
        f"udpim daemon: error: the hub at {address} refused us: user name belongs to another key"
    )
    assert all(" ERROR udpim.net." in line for line in logged)  # the daemon's own log


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--hub", "127.0.0.1:9"], "the daemon needs --user NAME"),
        (["--user", "bob"], "the daemon needs --hub HOST:PORT"),
        (["--user", "Bob", "--hub", "127.0.0.1:9"], "bad --user 'Bob'"),
        (["--user", "bob", "--hub", "127.0.0.1"], "bad --hub address '127.0.0.1'"),
        (["--user", "bob", "--hub", "127.0.0.1:9", "--hub-key", "xyz"], "--hub-key: bad key"),
        (["--user", "bob", "--hub", "127.0.0.1:9", "--heartbeat", "0"], "bad --heartbeat '0'"),
        (
            ["--user", "bob", "--hub", "127.0.0.1:9", "--heartbeat", "5", "--hub-timeout", "6"],
            "--hub-timeout (6s) must be at least twice --heartbeat (5s)",
        ),
    ],
)
def test_bad_daemon_arguments_exit_2(processes: Processes, args: list[str], error: str) -> None:
    data = str(processes.environment.data("bob"))
    outcome = processes.run("daemon", "--data", data, "--listen", "127.0.0.1:0", *args)
    assert outcome.code == 2
    assert error in outcome.error_line()


def test_no_learn_keeps_the_heartbeat_and_learning_is_the_default(processes: Processes) -> None:
    _, started = processes.hub("hub")
    hub = str(started["address"])
    processes.daemon("fixed", "fixed", hub, "--no-learn", "--heartbeat", "7")
    processes.daemon("learner", "learner", hub)
    fixed = processes.wait_logged_in("fixed")["keepalive"]
    learner = processes.wait_logged_in("learner")["keepalive"]
    assert isinstance(fixed, dict)
    assert isinstance(learner, dict)
    assert (fixed["learning"], fixed["phase"], fixed["heartbeat_interval_s"]) == (False, "off", 7.0)
    assert learner["learning"] is True
    assert learner["phase"] != "off"
