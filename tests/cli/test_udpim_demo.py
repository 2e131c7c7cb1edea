"""``udpim demo`` as a real process: hub, two daemons and two netsim proxy subprocesses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.udpim_processes import Processes, open_processes

pytestmark = pytest.mark.slow


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with open_processes(tmp_path) as pool:
        pool.environment.env["TMPDIR"] = str(tmp_path)  # to see that it cleans up
        yield pool


def test_demo_exchanges_messages_and_exits_0_with_a_summary(processes: Processes) -> None:
    outcome = processes.run("demo", "--messages", "3", "--seed", "2")
    assert outcome.code == 0, outcome.stderr
    assert outcome.stderr == ""
    text = outcome.stdout
    assert text.count("bob   <- alice ") == 3
    assert text.count("alice <- bob   ") == 3
    assert text.count(" receipt: ") == 6
    assert "delivered  6/6 messages (3 each way), 6/6 delivery receipts" in text
    assert "RTT " in text
    assert "frames retransmitted" in text
    assert "link alice to the hub: " in text
    assert text.rstrip().endswith(
        "every message arrived exactly once, in order, and its receipt came back"
    )
    assert not [p for p in os.listdir(processes.environment.root) if p.startswith("udpim-demo")]


def test_demo_json_is_one_object_per_line(processes: Processes) -> None:
    outcome = processes.run("demo", "--messages", "2", "--loss", "5%", "--json")
    assert outcome.code == 0, outcome.stderr
    events = outcome.json_lines()
    assert events[0] == {"event": "demo", "messages": 2, "loss_percent": 5.0, "seed": 1}
    arrived = [e for e in events if e["event"] == "arrived"]
    assert sorted(str(e["text"]) for e in arrived) == [
        "hi alice, bob here (1/2)",
        "hi alice, bob here (2/2)",
        "hi bob, alice here (1/2)",
        "hi bob, alice here (2/2)",
    ]
    summary = events[-1]
    assert summary["event"] == "summary"
    assert (summary["ok"], summary["delivered"], summary["receipts"]) == (True, 4, 4)
    sessions = summary["sessions"]
    assert isinstance(sessions, dict)
    assert set(sessions) == {"alice", "bob"}
    links = summary["links"]
    assert isinstance(links, dict)
    for link in links.values():
        assert isinstance(link["up"]["packets_in"], int)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--loss", "100"], "bad --loss '100'"),
        (["--messages", "0"], "bad --messages '0'"),
        (["--seed", "-1"], "bad --seed '-1'"),
        (["--data", "x"], "unrecognized arguments: --data x"),
    ],
)
def test_bad_demo_arguments_exit_2(processes: Processes, args: list[str], error: str) -> None:
    outcome = processes.run("demo", *args)
    assert outcome.code == 2
    assert error in outcome.error_line()
