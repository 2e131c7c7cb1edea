"""``udpim send``, ``inbox`` and ``status`` between two daemons through a hub: three real
processes on loopback (shared by this module's tests), driven by more ``udpim`` processes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.cli.udpim_processes import Outcome, Processes, Service, open_processes

pytestmark = pytest.mark.slow


@dataclass
class Chat:
    processes: Processes
    hub: Service
    hub_address: str
    hub_key: str
    alice: dict[str, object]
    bob: dict[str, object]

    def udpim(self, user: str, *args: str, stdin: str | None = None) -> Outcome:
        data = str(self.processes.environment.data(user))
        return self.processes.run(*args, "--data", data, stdin=stdin)


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chat]:
    with open_processes(tmp_path_factory.mktemp("chat")) as processes:
        hub, started = processes.hub("hub")
        address, key = str(started["address"]), str(started["public_key"])
        _, alice = processes.daemon("alice", "alice", address)  # pins the key on first use
        _, bob = processes.daemon("bob", "bob", address, "--hub-key", key)
        processes.wait_logged_in("alice")
        processes.wait_logged_in("bob")
        yield Chat(processes, hub, address, key, alice, bob)


def inbox_of(chat: Chat, user: str) -> list[dict[str, object]]:
    outcome = chat.udpim(user, "inbox", "--json")
    assert outcome.code == 0, outcome.stderr
    document = outcome.json()
    assert isinstance(document, dict)
    messages = document["messages"]
    assert isinstance(messages, list)
    return messages


def test_send_wait_delivered_then_inbox_shows_it(chat: Chat) -> None:
    sent = chat.udpim("alice", "send", "bob", "hello bob", "--wait", "delivered")
    assert sent.code == 0, sent.stderr
    lines = sent.stdout.split()
    message_id = lines[0]
    assert lines == [message_id, "queued", message_id, "accepted", message_id, "delivered"]
    [message] = [m for m in inbox_of(chat, "bob") if m["id"] == message_id]
    assert (message["from"], message["to"], message["text"]) == ("alice", "bob", "hello bob")
    assert isinstance(message["sent_at"], int)
    assert isinstance(message["received_at"], int)
    assert message["sent_at"] <= message["received_at"]
    text = chat.udpim("bob", "inbox")
    assert text.code == 0
    assert f"alice -> bob: hello bob  [id {message_id}, received " in text.stdout


def test_send_json_reports_each_state(chat: Chat) -> None:
    sent = chat.udpim("bob", "send", "alice", "json please", "--wait", "accepted", "--json")
    assert sent.code == 0, sent.stderr
    states = sent.json_lines()
    assert [s["state"] for s in states] == ["queued", "accepted"]
    assert {s["to"] for s in states} == {"alice"}
    assert len({s["id"] for s in states}) == 1


def test_send_stdin_sends_each_line_in_order(chat: Chat) -> None:
    lines = [f"stdin line {n}" for n in range(1, 26)]
    sent = chat.udpim("bob", "send", "alice", "--stdin", stdin="\n".join(lines) + "\n\n")
    assert sent.code == 0, sent.stderr
    assert sent.stdout.split()[1::2] == ["queued"] * len(lines)  # the blank line is skipped
    marker = chat.udpim("bob", "send", "alice", "stdin done", "--wait", "delivered")
    assert marker.code == 0, marker.stderr  # per-sender order: everything before it arrived
    texts = [m["text"] for m in inbox_of(chat, "alice") if m["from"] == "bob"]
    batch = [t for t in texts if isinstance(t, str) and t.startswith("stdin ")]
    assert batch == [*lines, "stdin done"]


def test_inbox_follow_streams_new_messages(chat: Chat) -> None:
    data = str(chat.processes.environment.data("bob"))
    follower = chat.processes.start("inbox", "--data", data, "--follow", "--json")
    sent = chat.udpim("alice", "send", "bob", "are you following?", "--wait", "delivered")
    assert sent.code == 0, sent.stderr
    message_id = sent.stdout.split()[0]
    for _ in range(100):
        message = follower.read_json()
        if message["id"] == message_id:
            break
    assert (message["from"], message["text"]) == ("alice", "are you following?")
    stopped = follower.stop()
    assert stopped.code == 0
    assert "Traceback" not in stopped.stderr


def test_status_reports_session_figures(chat: Chat) -> None:
    outcome = chat.udpim("alice", "status", "--json")
    assert outcome.code == 0, outcome.stderr
    status = outcome.json()
    assert isinstance(status, dict)
    assert (status["user"], status["device"]) == ("alice", chat.alice["device"])
    assert (status["connection"], status["hub"]) == ("welcomed", chat.hub_address)
    assert status["hub_key"] == chat.hub_key  # pinned on first use
    session = status["session"]
    assert isinstance(session, dict)
    for figure in ("rtt_ms", "packets_lost", "loss_percent", "frames_retransmitted"):
        assert isinstance(session[figure], int | float)
    assert session["heartbeat_interval_s"] == 25.0
    assert isinstance(status["outbox"], dict)
    assert isinstance(status["inbox"], int)
    assert isinstance(status["presence"], dict)
    text = chat.udpim("alice", "status")
    assert text.code == 0
    for label in ("hub ", "session ", "RTT ", "heartbeat every 25 s", "outbox ", "contacts "):
        assert label in text.stdout


def test_keygen_on_a_daemon_dir_prints_the_daemons_key(chat: Chat) -> None:
    outcome = chat.udpim("bob", "keygen")
    assert outcome.code == 0
    assert outcome.stdout.strip() == chat.bob["public_key"]
    assert "using the existing" in outcome.stderr


def test_send_to_unknown_user_fails_in_one_line(chat: Chat) -> None:
    outcome = chat.udpim("alice", "send", "nobody", "hello?", "--wait", "accepted")
    assert outcome.code == 1
    assert outcome.error_line() == "udpim send: error: unknown user nobody"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["send", "Bob!", "hi"], "bad recipient 'Bob!'"),
        (["send", "bob", "hi", "--stdin"], "give the message TEXT or --stdin, not both"),
        (["send", "bob"], "nothing to send"),
        (["send", "bob", "hi", "--wait", "accepted", "--timeout", "soon"], "bad --timeout"),
        (["send", "bob", "hi", "--wait", "read"], "argument --wait: invalid choice"),
        (["inbox", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_client_arguments_exit_2(chat: Chat, args: list[str], error: str) -> None:
    outcome = chat.udpim("alice", *args)
    assert outcome.code == 2
    assert error in outcome.error_line()
