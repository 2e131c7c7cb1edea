"""The scenario app's workload table, its message schedule and its status bookkeeping."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from netsim.app import WorkloadError
from netsim.runner import run_scenario
from netsim.scenario import ScenarioError, load_scenario
from tools.udpim_app import SessionTally, keepalive_fields
from tools.udpim_workload import PlannedMessage, UdpimWorkload, plan_messages

HOSTS = ["hub", "alice", "bob", "carol"]


def plan(
    workload: UdpimWorkload, start_s: float = 0.0, stop_s: float = 36_000.0
) -> list[PlannedMessage]:
    users = workload.resolve_users(HOSTS)
    rngs = {user: random.Random(user) for user in users}
    return plan_messages(workload, users, rngs, start_s=start_s, stop_s=stop_s)


def test_defaults() -> None:
    workload = UdpimWorkload.parse({})
    assert workload.resolve_users(HOSTS) == ("alice", "bob", "carol")
    assert (workload.hub, workload.port, workload.interval_s) == ("hub", 7000, 600.0)
    assert workload.heartbeat_for("alice") is None
    assert workload.settle_for(3600.0) == 300.0
    assert workload.settle_for(600.0) == 150.0
    assert workload.hub_down_for(3) == 30.0


def test_poisson_schedule_between_start_and_stop() -> None:
    messages = plan(UdpimWorkload.parse({"interval": "1min", "size": [10, 20]}), 100.0, 7300.0)
    assert all(100.0 < m.at_s < 7300.0 for m in messages)
    assert [m.at_s for m in messages] == sorted(m.at_s for m in messages)
    per_sender = {u: sum(m.sender == u for m in messages) for u in ("alice", "bob", "carol")}
    assert all(80 < count < 160 for count in per_sender.values())  # ~120 per 2 h
    assert all(m.to != m.sender and 10 <= m.size <= 20 for m in messages)
    assert len({m.id for m in messages}) == len(messages)
    again = plan(UdpimWorkload.parse({"interval": "1min", "size": [10, 20]}), 100.0, 7300.0)
    assert again == messages


def test_quiet_windows_then_everyone_pushes() -> None:
    workload = UdpimWorkload.parse({"interval": "1min", "quiet": [["1h", "2h"]]})
    messages = plan(workload)
    assert not [m for m in messages if 3600.0 <= m.at_s < 7200.0]
    pushes = [m for m in messages if m.at_s == 7200.0]
    assert sorted(m.sender for m in pushes) == ["alice", "bob", "carol"]


def test_fanout_sends_each_message_to_every_recipient() -> None:
    workload = UdpimWorkload.parse(
        {"senders": ["alice"], "recipients": ["bob", "carol"], "fanout": True}
    )
    messages = plan(workload)
    assert messages
    assert {m.sender for m in messages} == {"alice"}
    assert [m.to for m in messages[:2]] == ["bob", "carol"]
    assert [m.id for m in messages[:2]] == ["alice:0>bob", "alice:0>carol"]
    assert messages[0].at_s == messages[1].at_s


def test_pollers_do_not_send_and_per_user_settings() -> None:
    workload = UdpimWorkload.parse(
        {
            "poll": {"carol": "5min"},
            "heartbeat": {"bob": "60s"},
            "hub_crash_at": ["10min", "20min"],
            "hub_down": ["30s", "3min"],
        }
    )
    assert {m.sender for m in plan(workload)} == {"alice", "bob"}
    assert workload.heartbeat_for("bob") == 60.0
    assert workload.heartbeat_for("alice") is None
    assert UdpimWorkload.parse({"heartbeat": "40s"}).heartbeat_for("alice") == 40.0
    assert [workload.hub_down_for(i) for i in (0, 1)] == [30.0, 180.0]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"colour": "red"}, "workload.colour: unknown key"),
        ({"interval": "soon"}, "workload.interval: bad duration"),
        ({"size": [30, 10]}, "workload.size: [min, max] with max < min"),
        ({"size": "big"}, "workload.size: expected bytes"),
        ({"quiet": [["2h", "1h"]]}, "workload.quiet: window"),
        ({"quiet": "2h"}, "workload.quiet: expected"),
        ({"poll": {"bob": "0s"}}, "workload.poll.bob: must be more than 0s"),
        ({"poll": "5min"}, "workload.poll: expected a table"),
        ({"fanout": "yes"}, "workload.fanout: expected true or false"),
        ({"hub_crash_at": ["2h", "1h"]}, "workload.hub_crash_at: times must be in ascending"),
        ({"hub_crash_at": ["1h"], "hub_down": ["1s", "2s"]}, "workload.hub_down: give one"),
        ({"poll": {"bob": "1min"}, "senders": ["bob"]}, "workload.senders: bob polls"),
    ],
)
def test_bad_tables_are_one_line_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(WorkloadError) as info:
        UdpimWorkload.parse(table)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"hub": "server"}, "workload.hub: no host named 'server'"),
        ({"users": ["alice", "dave"]}, "workload.users: 'dave' is not a host"),
        ({"users": ["hub"]}, "workload.users: 'hub' is not a host other than the hub"),
        ({"users": ["alice", "bob"], "recipients": ["carol"]}, "workload.recipients: 'carol'"),
        ({"poll": {"dave": "1min"}}, "workload.poll: 'dave' is not one of the users"),
        ({"heartbeat": {"dave": "1min"}}, "workload.heartbeat: 'dave'"),
    ],
)
def test_names_must_be_daemons(table: dict[str, object], message: str) -> None:
    with pytest.raises(WorkloadError, match="^" + message.replace("(", r"\(")):
        UdpimWorkload.parse(table).resolve_users(HOSTS)


def test_session_tally_sums_sessions() -> None:
    tally = SessionTally()
    tally.observe({"packets_sent": 10, "frames_retransmitted": 1}, marker=1)
    tally.observe({"packets_sent": 20, "frames_retransmitted": 2}, marker=1)
    tally.observe({"packets_sent": 5, "frames_retransmitted": 0}, marker=1)  # fewer: new
    tally.observe({"packets_sent": 30, "frames_retransmitted": 4}, marker=2)  # new welcome
    tally.observe(None, marker=2)  # no session right now: nothing learned
    totals = tally.totals()
    assert (totals["packets_sent"], totals["frames_retransmitted"]) == (55, 6)
    tally.end_session()
    tally.observe({"packets_sent": 1}, marker=2)
    assert tally.totals()["packets_sent"] == 56


def test_keepalive_fields_prefer_a_learned_section() -> None:
    assert keepalive_fields({}) == {}
    assert keepalive_fields({"session": {"heartbeat_interval_s": 25.0}}) == {
        "heartbeat_interval_s": 25.0
    }
    status = {
        "session": {"heartbeat_interval_s": 25.0},
        "keepalive": {"phase": "settled", "learned_timeout_s": 60.0, "heartbeat_interval_s": 47.0},
    }
    assert keepalive_fields(status) == {
        "heartbeat_interval_s": 47.0,
        "learned_nat_timeout_s": 60.0,
        "keepalive_phase": "settled",
    }


@pytest.mark.parametrize(
    ("workload", "message"),
    [
        ('users = ["nobody"]', "workload.users: 'nobody' is not a host other than the hub"),
        ('rebind_nats = ["cgnat"]', "workload.rebind_nats: no NAT named 'cgnat'"),
    ],
)
def test_a_workload_that_does_not_fit_the_network_is_a_scenario_error(
    tmp_path: Path, workload: str, message: str
) -> None:
    path = tmp_path / "small.toml"
    path.write_text(
        'app = "tools.udpim_app:UdpimApp"\nduration = "1min"\n'
        '[hosts.hub]\naddress = "127.1.0.1"\n[hosts.alice]\naddress = "127.1.0.2"\n'
        f"[workload]\n{workload}\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as info:
        run_scenario(load_scenario(path))
    assert str(info.value).endswith(message)
