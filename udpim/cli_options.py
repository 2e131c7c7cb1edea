"""What every ``udpim`` subcommand shares: common options, settings, output and exit codes.

What it owns: the options every subcommand accepts (``--data``, ``--json``, ``--debug``,
``-v``), the merge of ``<data>/udpim.toml`` with the command line, logging setup, JSON
output, and the two error types the command handlers raise.

Rules it keeps:

* A flag given on the command line wins over the same key in ``udpim.toml``; the file wins
  over the built-in default (udpim/settings.py lists the keys).
* The common options are declared with ``default=SUPPRESS`` on every parser level, so
  ``udpim hub --data D adduser ...`` and ``udpim hub adduser ... --data D`` mean the same
  thing (argparse would otherwise let a nested parser's default overwrite the outer flag).
* Exit codes: 0 success; 2 a bad command line, bad value (address, key, name) or bad
  config file (``UsageError``, ``SettingsError``); 1 anything else that went wrong
  (``UdpimError``: daemon not running, hub unreachable, message rejected, ...).
* Logging goes to stderr: WARNING by default, ``-v`` INFO, ``-vv`` DEBUG; without ``-v`` the
  config file's ``log_level`` decides.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn, final

from udpim.core.errors import UdpimError
from udpim.identity import IdentityError, parse_public_key
from udpim.im.formats import valid_user_name
from udpim.settings import (
    Address,
    SettingsError,
    default_data_dir,
    load_config_file,
    parse_address,
)

__all__ = [
    "CommandContext",
    "DataKind",
    "CommandFailed",
    "Parser",
    "UsageError",
    "add_common_options",
    "open_context",
    "parse_key_option",
    "parse_listen",
    "parse_seconds",
    "parse_user_name",
    "print_json",
]

DataKind = Literal["user", "hub"]
_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


@final
class UsageError(UdpimError):
    """A bad command-line or config value (exit code 2); ``str()`` is one line."""


@final
class CommandFailed(UdpimError):
    """The command ran but did not achieve its goal (exit code 1); ``str()`` is one line."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (try --help)", file=sys.stderr)
        raise SystemExit(2)


def add_common_options(parser: argparse.ArgumentParser, kind: DataKind | None) -> None:
    """Declare ``--data``, ``--json``, ``--debug`` and ``-v`` on ``parser``.

    Args:
        parser: a (sub)command parser.
        kind: whose default data directory ``--data`` names in its help; None: the
            command uses no data directory (the demo), so it has no ``--data``.
    """
    if kind is not None:
        parser.add_argument(
            "--data",
            metavar="DIR",
            default=argparse.SUPPRESS,
            help=f"data directory (default: {default_data_dir(kind)})",
        )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable output: one JSON object (one per line for streams)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show a traceback when a command fails",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log more to stderr (-v: info, -vv: debug)",
    )


@final
@dataclass(frozen=True, slots=True)
class CommandContext:
    """The resolved common options of one command run.

    Attributes:
        data_dir: the data directory (``--data`` or the default for the command's kind).
        json: print JSON instead of text.
        config: the keys of ``<data_dir>/udpim.toml`` (empty if there is none).
    """

    data_dir: Path
    json: bool
    config: dict[str, object]

    def setting(self, args: argparse.Namespace, name: str) -> object:
        """The value of option ``name``: the flag if given, else the config file's, else None."""
        value = getattr(args, name, None)
        if value is not None and value is not False:
            return value
        return self.config.get(name)

    def text_setting(self, args: argparse.Namespace, name: str) -> str | None:
        """``setting`` for a text option (the config file's type was checked on load)."""
        value = self.setting(args, name)
        return None if value is None else str(value)


def open_context(
    args: argparse.Namespace, kind: DataKind, *, read_config: bool = True
) -> CommandContext:
    """Resolve the common options, read the config file and set up logging.

    Args:
        args: the parsed command line.
        kind: which default data directory applies without ``--data``.
        read_config: read ``<data dir>/udpim.toml`` (the demo does not).

    Raises:
        UsageError: ``--data`` names something that is not a directory.
        SettingsError: the config file is unreadable or invalid.
    """
    data = getattr(args, "data", None)
    data_dir = Path(data).expanduser() if data else default_data_dir(kind)
    verbose = int(getattr(args, "verbose", 0) or 0)
    _configure_logging(verbose, None)
    if data_dir.exists() and not data_dir.is_dir():
        raise UsageError(f"data directory {data_dir} is not a directory")
    config = load_config_file(data_dir) if read_config else {}
    level = config.get("log_level")
    if isinstance(level, str) and level.lower() not in _LOG_LEVELS:
        raise SettingsError(
            f"{data_dir / 'udpim.toml'}: log_level must be one of {', '.join(_LOG_LEVELS)}"
        )
    _configure_logging(verbose, level.lower() if isinstance(level, str) else None)
    return CommandContext(data_dir, bool(getattr(args, "json", False)), config)


def _configure_logging(verbose: int, config_level: str | None) -> None:
    if verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    else:
        level = _LOG_LEVELS.get(config_level or "warning", logging.WARNING)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
        root.addHandler(handler)
    root.setLevel(level)


def parse_listen(text: str, *, what: str) -> Address:
    """Parse a ``HOST:PORT`` option value.

    Raises:
        UsageError: not an IPv4 ``HOST:PORT``.
    """
    try:
        return parse_address(text, what=what)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None


def parse_key_option(text: str, *, what: str) -> bytes:
    """Parse a public key given as 64 hex characters.

    Raises:
        UsageError: anything else.
    """
    try:
        return parse_public_key(text)
    except IdentityError as exc:
        raise UsageError(f"{what}: {exc}") from None


def parse_seconds(text: str | None, *, flag: str, default: float) -> float:
    """Parse a duration option (``--timeout 2.5``); ``default`` when it is not given.

    Raises:
        UsageError: not a positive, finite number of seconds.
    """
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise UsageError(f"bad {flag} {text!r}: expected a positive number of seconds")
    return value


def parse_user_name(text: str, *, what: str = "user name") -> str:
    """Check a user name (1-32 chars of ``[a-z0-9_.-]``).

    Raises:
        UsageError: anything else.
    """
    if not valid_user_name(text):
        raise UsageError(f"bad {what} {text!r}: expected 1-32 characters of a-z 0-9 _ . -")
    return text


def print_json(document: object) -> None:
    """Print ``document`` as one compact JSON line (flushed: streams are read line by line)."""
    print(json.dumps(document, separators=(",", ":"), ensure_ascii=False), flush=True)
