"""The ``udpim`` subcommands that talk to a running daemon: send, inbox, status.

What it owns: building control-socket requests (docs/IM.md, "Control socket"), reading the
JSON-lines answers, and printing them as text or JSON.

Rules it keeps:

* Every request goes through ``udpim.net.control.control_request``; a daemon that is not
  running (or a socket we may not use) is its ``ControlError``: one line, exit 1.
* ``send`` prints each state the daemon reports (``queued``, then ``accepted`` and
  ``delivered`` with ``--wait``). The daemon ends the answer with an error line when the
  recipient does not exist or the wait runs out (the message stays in its outbox and is
  delivered later); the client turns that line into ``ControlError``: one line, exit 1.
* ``send --stdin`` sends each line as one message (blank lines are skipped), one request
  after another, so the daemon queues them in input order.
* Times shown are local wall-clock times; JSON carries the daemon's unix milliseconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator, Mapping

from udpim.cli_options import (
    CommandContext,
    CommandFailed,
    UsageError,
    open_context,
    parse_seconds,
    parse_user_name,
    print_json,
)
from udpim.net.control import control_request

__all__ = [
    "DEFAULT_WAIT_TIMEOUT_S",
    "command_inbox",
    "command_send",
    "command_status",
    "format_message",
    "format_status",
    "format_time_ms",
]

DEFAULT_WAIT_TIMEOUT_S = 30.0
"""How long ``send --wait`` waits without ``--timeout``."""
REQUEST_TIMEOUT_S = 10.0
"""How long a request that does not wait for the network may take (queue, inbox, status)."""
_STATE_ORDER = {"queued": 0, "accepted": 1, "delivered": 2}


def command_send(args: argparse.Namespace) -> int:
    """``udpim send TO TEXT|--stdin [--wait accepted|delivered] [--timeout S]``."""
    context = open_context(args, "user")
    to = parse_user_name(args.to, what="recipient")
    timeout_s = parse_seconds(args.timeout, flag="--timeout", default=DEFAULT_WAIT_TIMEOUT_S)
    if args.stdin and args.text is not None:
        raise UsageError("give the message TEXT or --stdin, not both")
    if not args.stdin and args.text is None:
        raise UsageError("nothing to send: give the message TEXT (or --stdin)")
    texts: Iterable[str] = _stdin_lines() if args.stdin else [args.text]
    for text in texts:
        _send_one(context, to, text, args.wait, timeout_s)
    return 0


def _stdin_lines() -> Iterator[str]:
    for line in sys.stdin:
        text = line.rstrip("\r\n")
        if text.strip():
            yield text


def _send_one(
    context: CommandContext, to: str, text: str, wait: str | None, timeout_s: float
) -> None:
    """Queue one message through the daemon; follow its state if ``wait`` says so.

    Raises:
        ControlError: the daemon is not running, or answered with an error (unknown user,
            a wait that ran out: its message says which).
        CommandFailed: the daemon hung up before the wanted state.
    """
    request = {"cmd": "send", "to": to, "text": text, "wait": wait, "timeout": timeout_s}
    limit_s = timeout_s + REQUEST_TIMEOUT_S if wait else REQUEST_TIMEOUT_S
    message_id, state = "", ""
    for reply in control_request(context.data_dir, request, timeout_s=limit_s):
        message_id, state = str(reply.get("id", message_id)), str(reply.get("state", state))
        if context.json:
            print_json({"id": message_id, "to": to, "state": state})
        else:
            print(f"{message_id} {state}", flush=True)
        if _STATE_ORDER.get(state, -1) >= _STATE_ORDER[wait or "queued"]:
            return
    raise CommandFailed(
        f"the daemon hung up before message {message_id or '(no id)'} to {to} was "
        f"{wait or 'queued'} (last state: {state or 'none'})"
    )


def command_inbox(args: argparse.Namespace) -> int:
    """``udpim inbox [--follow]``: received messages, oldest first; stream new ones."""
    context = open_context(args, "user")
    request = {"cmd": "inbox", "follow": bool(args.follow)}
    replies = control_request(
        context.data_dir, request, timeout_s=None if args.follow else REQUEST_TIMEOUT_S
    )
    messages: list[Mapping[str, object]] = []
    for reply in replies:
        batch, one = reply.get("messages"), reply.get("message")
        found = batch if isinstance(batch, list) else [one]
        new = [m for m in found if isinstance(m, Mapping)]
        if not args.follow:
            messages.extend(new)
            break
        for message in new:
            _show_message(context, message)
    if not args.follow:
        if context.json:
            print_json({"messages": messages})
        else:
            for message in messages:
                print(format_message(message))
    return 0


def _show_message(context: CommandContext, message: Mapping[str, object]) -> None:
    if context.json:
        print_json(dict(message))
    else:
        print(format_message(message), flush=True)


def format_message(message: Mapping[str, object]) -> str:
    """One inbox message as a line: send time, sender -> recipient, text, id, receive time."""
    text = str(message.get("text", "")).replace("\n", "\n    ")
    sent = format_time_ms(message.get("sent_at"), with_date=True)
    received = format_time_ms(message.get("received_at"), with_date=False)
    return (
        f"{sent}  {message.get('from')} -> {message.get('to')}: {text}"
        f"  [id {message.get('id')}, received {received}]"
    )


def format_time_ms(value: object, *, with_date: bool) -> str:
    """Unix milliseconds as local time (``YYYY-MM-DD HH:MM:SS.mmm`` or ``HH:MM:SS.mmm``)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return "?"
    seconds, millis = divmod(value, 1000)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S", time.localtime(seconds))
    return f"{stamp}.{millis:03d}"


def command_status(args: argparse.Namespace) -> int:
    """``udpim status``: the daemon's session, network figures, NAT keepalive (learned
    timeout, heartbeat interval, learning phase, path changes), reachability history,
    outbox/inbox, presence."""
    context = open_context(args, "user")
    status: Mapping[str, object] = {}
    request: dict[str, object] = {"cmd": "status"}
    for reply in control_request(context.data_dir, request, timeout_s=REQUEST_TIMEOUT_S):
        found = reply.get("status")
        if isinstance(found, Mapping):
            status = found
            break
    if context.json:
        print_json(dict(status))
    else:
        print(format_status(status))
    return 0


def format_status(status: Mapping[str, object]) -> str:
    """``udpim status`` as text: one labelled line per topic."""
    session = status.get("session")
    figures: Mapping[str, object] = session if isinstance(session, Mapping) else {}
    reconnect = status.get("reconnect")
    retry: Mapping[str, object] = reconnect if isinstance(reconnect, Mapping) else {}
    key = str(status.get("hub_key") or "not pinned yet")
    lines = [
        f"{status.get('user')} (device {status.get('device')}), daemon on {status.get('address')}",
        f"hub        {status.get('hub')}, {status.get('connection')} (key {key})",
    ]
    attempts = _plural(retry.get("attempts", 0), "attempt")
    if figures:
        measured = (
            f"RTT {_figure(figures.get('rtt_ms'))} ms (min {_figure(figures.get('min_rtt_ms'))}, "
            f"var {_figure(figures.get('rtt_var_ms'))})"
            if figures.get("state") == "established"
            else f"no answer yet, {attempts} so far"
        )
        lines += [
            f"session    {figures.get('state')} with {figures.get('peer_address')}; {measured}",
            f"traffic    {figures.get('packets_sent')} packets sent, "
            f"{figures.get('packets_received')} received, {figures.get('packets_lost')} "
            f"declared lost ({_figure(figures.get('loss_percent'))}%), "
            f"{figures.get('frames_retransmitted')} frames retransmitted, "
            f"{_plural(figures.get('probes_sent'), 'probe')}",
            f"keepalive  heartbeat every {_figure(figures.get('heartbeat_interval_s'))} s, "
            f"{_plural(figures.get('heartbeats_sent'), 'heartbeat')} sent",
        ]
    else:
        wait_s = retry.get("next_attempt_in_s")
        when = "" if wait_s is None else f", next attempt in {_figure(wait_s)} s"
        lines.append(f"session    none ({attempts} so far{when})")
    lines += _keepalive_lines(status)
    lines += [
        f"outbox     {_counts(status.get('outbox'))}",
        f"inbox      {_plural(status.get('inbox'), 'message')} "
        f"(last mailbox seq {status.get('last_seq')})",
        f"contacts   {_presence(status.get('presence'))}",
    ]
    return "\n".join(lines)


HISTORY_SHOWN = 5
"""Reachability events ``udpim status`` prints (``--json`` has them all)."""


def _keepalive_lines(status: Mapping[str, object]) -> list[str]:
    """The NAT and reachability lines: learned NAT timeout, heartbeat interval in force,
    learning phase, path changes, and the last reachability events."""
    found = status.get("keepalive")
    if not isinstance(found, Mapping):
        return []
    learned = found.get("learned_nat_timeout_s")
    phase = str(found.get("phase"))
    if phase == "off":
        what = "learning off"
    else:
        tests = _plural(found.get("tests_run", 0), "test")
        what = f"learning {phase} ({tests}"
        testing = found.get("testing_delay_s")
        next_in = found.get("next_test_in_s")
        if testing is not None:
            what += f", testing {_figure(testing)} s"
        elif isinstance(next_in, int | float):
            what += f", next test in {_duration(next_in)}"
        what += ")"
    timeout = "not known" if learned is None else f"at least {_figure(learned)} s"
    lines = [
        f"nat        mapping timeout {timeout}; heartbeat every "
        f"{_figure(found.get('heartbeat_interval_s'))} s; {what}",
        f"path       {_plural(found.get('path_changes', 0), 'change')}; local "
        f"{found.get('local_address') or '?'}, public {found.get('public_address') or '?'}",
    ]
    events = status.get("reachability")
    shown = [e for e in events if isinstance(e, Mapping)] if isinstance(events, list) else []
    for index, event in enumerate(shown[-HISTORY_SHOWN:]):
        label = "history   " if index == 0 else "          "
        when = format_time_ms(event.get("at"), with_date=True)
        detail = f" ({event.get('detail')})" if event.get("detail") else ""
        lines.append(f"{label} {when} {event.get('event')}{detail}")
    return lines


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _plural(count: object, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _figure(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def _counts(value: object) -> str:
    if not isinstance(value, Mapping) or not value:
        return "empty"
    return ", ".join(f"{count} {state}" for state, count in value.items())


def _presence(value: object) -> str:
    if not isinstance(value, Mapping) or not value:
        return "-"
    return ", ".join(
        f"{user} {'online' if online else 'offline'}" for user, online in value.items()
    )
