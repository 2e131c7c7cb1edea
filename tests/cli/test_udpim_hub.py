"""``udpim hub`` and ``udpim hub adduser`` as real processes: start-up line, clean Ctrl-C,
closed hubs, the config file, and the hub's errors."""

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


def test_hub_prints_address_and_key_and_stops_on_ctrl_c(processes: Processes) -> None:
    data = str(processes.environment.data("hub"))
    hub = processes.start("hub", "--data", data, "--listen", "127.0.0.1:0")
    line = hub.read_line()
    match = re.fullmatch(
        r"udpim hub: listening on 127\.0\.0\.1:(\d+), public key ([0-9a-f]{64}), open .*", line
    )
    assert match is not None, line
    stopped = hub.stop()
    assert (stopped.code, stopped.stdout, stopped.stderr) == (0, "", "udpim hub: stopped\n")
    key = processes.run("keygen", "--data", data)
    assert key.stdout.strip() == match.group(2)  # the hub's identity lives in its data dir


def test_closed_hub_lets_in_only_added_users(processes: Processes) -> None:
    env = processes.environment
    alice_key = processes.run("keygen", "--data", str(env.data("alice"))).stdout.strip()
    hub_data = str(env.data("hub"))
    added = processes.run("hub", "adduser", "alice", alice_key, "--data", hub_data)
    assert added.code == 0, added.stderr
    assert added.stdout == f"added alice with key {alice_key} to {env.data('hub') / 'hub.db'}\n"
    again = processes.run("hub", "--data", hub_data, "adduser", "alice", alice_key, "--json")
    assert again.json() == {
        "user": "alice",
        "public_key": alice_key,
        "added": False,
        "keys": 1,
        "database": str(env.data("hub") / "hub.db"),
        "hub_running": False,
    }
    _, started = processes.hub("hub", "--closed")
    late = processes.run("hub", "adduser", "bob", "b" * 64, "--data", hub_data)
    assert late.stdout.splitlines()[1] == (
        "the hub running on this directory lets the key in at its next attempt"
    )
    assert started["closed"] is True
    address, hub_key = str(started["address"]), str(started["public_key"])
    processes.daemon("alice", "alice", address, "--hub-key", hub_key)
    processes.daemon("mallory", "mallory", address, "--hub-key", hub_key)
    processes.wait_logged_in("alice")
    note = processes.run(
        "send", "--data", str(env.data("alice")), "alice", "note to self", "--wait", "accepted"
    )
    assert note.code == 0, note.stderr
    refused = processes.run(
        "send",
        "--data",
        str(env.data("mallory")),
        "alice",
        "let me in",
        "--wait",
        "accepted",
        "--timeout",
        "1.5",
    )
    assert refused.code == 1
    assert refused.error_line().startswith("udpim send: error: hub unreachable: message ")
    status = processes.run("status", "--data", str(env.data("mallory")), "--json").json()
    assert isinstance(status, dict)
    assert status["welcomed"] is False
    assert status["outbox"] == {"queued": 1, "accepted": 0, "delivered": 0, "rejected": 0}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["adduser", "Alice", "a" * 64], "bad user name 'Alice'"),
        (["adduser", "alice", "a" * 63], "PUBKEY: bad key"),
        (["adduser", "alice"], "the following arguments are required: PUBKEY"),
        (["--listen", "127.0.0.1"], "bad --listen address '127.0.0.1'"),
        (["--listen", "example.org:7575"], "bad --listen address 'example.org:7575'"),
    ],
)
def test_bad_hub_arguments_exit_2(processes: Processes, args: list[str], error: str) -> None:
    outcome = processes.run("hub", "--data", str(processes.environment.data("hub")), *args)
    assert outcome.code == 2
    line = outcome.error_line()
    assert line.startswith("udpim hub")
    assert error in line


def test_config_file_sets_options_and_flags_win(processes: Processes) -> None:
    data = processes.environment.data("hub")
    data.mkdir(mode=0o700)
    (data / "udpim.toml").write_text('listen = "127.0.0.1:0"\nclosed = true\n')
    hub = processes.start("hub", "--data", str(data), "--json")
    started = hub.read_json()
    assert started["closed"] is True
    assert str(started["address"]).startswith("127.0.0.1:")
    assert hub.stop().code == 0
    (data / "udpim.toml").write_text('listen = "bogus"\n')
    flagged = processes.start("hub", "--data", str(data), "--listen", "127.0.0.1:0", "--json")
    assert flagged.read_json()["closed"] is False
    stopped = flagged.stop()
    assert stopped.code == 0
    assert stopped.json_lines() == [{"event": "stopped"}]
    from_file = processes.run("hub", "--data", str(data))
    assert from_file.code == 2
    assert "bad --listen address 'bogus'" in from_file.error_line()


def test_hub_errors_are_one_line(processes: Processes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        in_use = processes.run(
            "hub", "--data", str(processes.environment.data("a")), "--listen", f"127.0.0.1:{port}"
        )
    assert in_use.code == 1
    assert in_use.error_line() == (
        f"udpim hub: error: cannot listen on 127.0.0.1:{port}: address in use"
    )
    data = processes.environment.data("b")
    processes.hub("b")
    busy = processes.run("hub", "--data", str(data), "--listen", "127.0.0.1:0")
    assert busy.code == 1
    assert busy.error_line() == f"udpim hub: error: another hub is already running on {data}"
