"""Crash test with real processes: SIGKILL the hub, then the recipient's daemon, while
messages flow; restart both on the same data directories (and the hub on the same port).
Every message the sender's daemon queued must reach the recipient's inbox exactly once and
in order (``udpim inbox``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.udpim_processes import Processes, open_processes

pytestmark = pytest.mark.slow

BATCH = 40
# Short keepalive and dead-hub detection, so the daemons notice the killed hub in seconds.
FAST = ("--heartbeat", "0.5", "--hub-timeout", "2")


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with open_processes(tmp_path) as pool:
        yield pool


def batch(number: int) -> list[str]:
    return [f"crash {number * BATCH + n}" for n in range(1, BATCH + 1)]


def test_sigkill_hub_and_daemon_mid_flow_loses_and_duplicates_nothing(
    processes: Processes,
) -> None:
    env = processes.environment
    hub, started = processes.hub("hub")
    address, key = str(started["address"]), str(started["public_key"])
    processes.daemon("alice", "alice", address, "--hub-key", key, *FAST)
    bob, _ = processes.daemon("bob", "bob", address, "--hub-key", key, *FAST)
    processes.wait_logged_in("alice")
    processes.wait_logged_in("bob")
    sender = processes.start("send", "--data", str(env.data("alice")), "bob", "--stdin", stdin=True)

    sender.write_lines(batch(0))
    assert sender.read_line().endswith(" queued")  # traffic is flowing
    hub.kill()
    sender.write_lines(batch(1))  # queued while the hub is dead
    processes.hub("hub", listen=address)  # same data dir, same port
    bob.kill()
    sender.write_lines(batch(2))
    processes.daemon("bob", "bob", address, "--hub-key", key, *FAST)
    sender.close_stdin()
    sent = sender.wait()
    assert sent.code == 0, sent.stderr
    assert sent.stdout.split()[1::2] == ["queued"] * (3 * BATCH - 1)  # the first line was read

    done = processes.run(
        "send",
        "--data",
        str(env.data("alice")),
        "bob",
        "crash done",
        "--wait",
        "delivered",
        "--timeout",
        "60",
    )
    assert done.code == 0, done.stderr
    inbox = processes.run("inbox", "--data", str(env.data("bob")), "--json").json()
    assert isinstance(inbox, dict)
    texts = [m["text"] for m in inbox["messages"] if m["from"] == "alice"]
    assert texts == [*batch(0), *batch(1), *batch(2), "crash done"]
