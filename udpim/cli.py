"""The ``udpim`` command: keys, hub, daemon, send/inbox/status, and the demo.

What it owns: the argument parser, dispatch to one small function per subcommand, and the
translation of failures into exit codes. The subcommands live beside it:
``cli_serve`` (keygen, hub, hub adduser, daemon), ``cli_client`` (send, inbox, status, which
talk to a running daemon over its control socket) and ``cli_demo`` (the self-contained demo);
``cli_options`` holds what they share.

Rules it keeps:

* ``main(argv=None) -> int`` never raises. A bad command line, value or config file prints ONE
  line on stderr and returns 2; any other ``UdpimError`` (daemon not running, hub
  unreachable, message rejected, key file unusable, ...) or OS error (address in use)
  prints one line and returns 1. Nothing prints a traceback unless ``--debug`` is given.
* Ctrl-C ends ``hub``, ``daemon`` and ``inbox --follow`` normally (exit 0); it interrupts
  any other command with exit code 130.
* Every subcommand accepts ``--data DIR``, ``--json``, ``--debug`` and ``-v`` (cli_options).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

import trio

import udpim
from udpim.cli_client import DEFAULT_WAIT_TIMEOUT_S, command_inbox, command_send, command_status
from udpim.cli_demo import add_demo_arguments, command_demo
from udpim.cli_options import DataKind, Parser, UsageError, add_common_options
from udpim.cli_serve import (
    DEFAULT_HUB_LISTEN,
    command_daemon,
    command_hub,
    command_hub_adduser,
    command_keygen,
)
from udpim.core.errors import UdpimError
from udpim.settings import SettingsError

__all__ = ["build_parser", "main"]

EXAMPLES = """\
examples:
  udpim demo                                        hub + two daemons over a lossy link
  udpim hub --listen 127.0.0.1:7575                 terminal 1: a hub
  udpim daemon --data ~/alice --user alice --hub 127.0.0.1:7575     terminal 2
  udpim daemon --data ~/bob --user bob --hub 127.0.0.1:7575         terminal 3
  udpim send --data ~/alice bob "hi bob" --wait delivered
  udpim inbox --data ~/bob --follow
  udpim status --data ~/alice --json
"""

Handler = Callable[[argparse.Namespace], int]
Declare = Callable[[argparse.ArgumentParser], None]
INTERRUPTED_EXIT = 130


def build_parser() -> argparse.ArgumentParser:
    """The full ``udpim`` argument parser."""
    parser = Parser(
        prog="udpim",
        description="Reliable, encrypted, always-on instant messaging over plain UDP.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"udpim {udpim.__version__}")
    add_common_options(parser, None)  # --data goes after the subcommand: its kind decides
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary, kind, declare, handler in _commands():
        sub = commands.add_parser(name, help=summary, description=summary)
        add_common_options(sub, kind)
        declare(sub)
        sub.set_defaults(handler=handler)
    return parser


def _commands() -> list[tuple[str, str, DataKind | None, Declare, Handler]]:
    """(name, summary, data-dir kind, declare arguments, handler) of every subcommand."""
    return [
        ("keygen", "create this data directory's identity key (if absent) and print it",
         "user", _no_arguments, command_keygen),
        ("hub", "run a hub (or: udpim hub adduser NAME PUBKEY)",
         "hub", _hub_arguments, command_hub),
        ("daemon", "run a peer daemon for one user", "user", _daemon_arguments, command_daemon),
        ("send", "send a message through the running daemon",
         "user", _send_arguments, command_send),
        ("inbox", "list received messages, oldest first", "user", _inbox_arguments,
         command_inbox),
        ("status", "the daemon's session, network figures, outbox, inbox and contacts",
         "user", _no_arguments, command_status),
        ("demo", "hub and two daemons on loopback through a lossy proxy, in one command",
         None, add_demo_arguments, command_demo),
    ]  # fmt: skip


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """This subcommand takes only the common options."""


def _hub_arguments(hub: argparse.ArgumentParser) -> None:
    hub.add_argument(
        "--listen", metavar="HOST:PORT", help=f"UDP address to serve (default {DEFAULT_HUB_LISTEN})"
    )
    hub.add_argument(
        "--closed", action="store_true", help="accept only users added with 'udpim hub adduser'"
    )
    actions = hub.add_subparsers(dest="hub_action", metavar="ACTION")
    adduser = actions.add_parser(
        "adduser",
        help="let public key PUBKEY log in as NAME (for --closed hubs)",
        description="Register user NAME with public key PUBKEY in the hub's database.",
    )
    add_common_options(adduser, "hub")
    adduser.add_argument("name", metavar="NAME", help="user name (1-32 of a-z 0-9 _ . -)")
    adduser.add_argument("pubkey", metavar="PUBKEY", help="the user's key, as udpim keygen prints")
    adduser.set_defaults(handler=command_hub_adduser)


def _daemon_arguments(daemon: argparse.ArgumentParser) -> None:
    daemon.add_argument("--user", metavar="NAME", help="the user this daemon logs in as")
    daemon.add_argument("--hub", metavar="HOST:PORT", help="the hub's address")
    daemon.add_argument(
        "--hub-key",
        metavar="KEY",
        help="the hub's public key (default: trust the key seen first, and remember it)",
    )
    daemon.add_argument(
        "--listen", metavar="HOST:PORT", help="local UDP address (default 0.0.0.0:0, any port)"
    )
    daemon.add_argument(
        "--heartbeat",
        metavar="S",
        help="keepalive interval until the NAT's mapping timeout is learned, or always "
        "with --no-learn (default 25)",
    )
    daemon.add_argument(
        "--no-learn",
        action="store_true",
        help="keep the --heartbeat interval; do not learn the NAT's mapping timeout",
    )
    daemon.add_argument(
        "--hub-timeout",
        metavar="S",
        help="reconnect when the hub has been silent for S seconds (default 60)",
    )


def _send_arguments(send: argparse.ArgumentParser) -> None:
    send.add_argument("to", metavar="TO", help="recipient user name")
    send.add_argument("text", metavar="TEXT", nargs="?", help="the message")
    send.add_argument("--stdin", action="store_true", help="send each input line as a message")
    send.add_argument(
        "--wait",
        choices=["accepted", "delivered"],
        help="wait until the hub stored it (accepted) or the recipient did (delivered)",
    )
    send.add_argument(
        "--timeout",
        metavar="S",
        help=f"give up waiting after S seconds (default {DEFAULT_WAIT_TIMEOUT_S:g})",
    )


def _inbox_arguments(inbox: argparse.ArgumentParser) -> None:
    inbox.add_argument("--follow", action="store_true", help="keep streaming new messages")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``udpim`` command line; returns the exit code (never raises)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        if args.command == "inbox":
            return 0
        print(f"udpim {_name(args)}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except BaseException as exc:  # every failure becomes one line
        return _fail(args, exc)


def _fail(args: argparse.Namespace, error: BaseException) -> int:
    """Print one line for ``error`` (the traceback too with ``--debug``); the exit code."""
    cause = _leaf(error)
    if isinstance(cause, SystemExit):
        return cause.code if isinstance(cause.code, int) else 1
    if isinstance(cause, KeyboardInterrupt):
        return INTERRUPTED_EXIT
    if getattr(args, "debug", False):
        traceback.print_exception(error)
    if isinstance(cause, (UsageError, SettingsError)):
        code, message = 2, str(cause)
    elif isinstance(cause, UdpimError):
        code, message = 1, str(cause)
    elif isinstance(cause, OSError):
        code, message = 1, _os_error_line(cause)
    else:
        code = 1
        message = f"internal error: {type(cause).__name__}: {cause} (--debug shows the traceback)"
    print(f"udpim {_name(args)}: error: {message or type(cause).__name__}", file=sys.stderr)
    return code


def _name(args: argparse.Namespace) -> str:
    """The subcommand as typed (``hub adduser`` for the hub's action)."""
    action = getattr(args, "hub_action", None)
    return f"{args.command} {action}" if action else str(args.command)


def _leaf(error: BaseException) -> BaseException:
    """The exception that matters inside (possibly nested) exception groups."""
    while isinstance(error, BaseExceptionGroup):
        inner = [e for e in error.exceptions if not _is_cancellation(e)]
        error = (inner or list(error.exceptions))[0]
    return error


def _is_cancellation(error: BaseException) -> bool:
    return isinstance(error, trio.Cancelled)


def _os_error_line(error: OSError) -> str:
    if error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return error.strerror or str(error)
