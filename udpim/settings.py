"""Where udpim keeps its files, the optional ``udpim.toml``, and addresses given as text.

Rules:

* A daemon's (and the user commands') data directory defaults to
  ``$XDG_DATA_HOME/udpim`` (``~/.local/share/udpim``); a hub's to
  ``$XDG_DATA_HOME/udpim-hub``, so a hub and a daemon on one machine never share an
  identity by accident. ``--data DIR`` overrides both.
* ``<data dir>/udpim.toml`` may set any long option of the command that uses that
  directory (``user``, ``hub``, ``hub_key``, ``listen``, ``closed``, ``log_level``,
  ``heartbeat``, ``hub_timeout``, ``no_learn``);
  flags given on the command line win. Unknown keys and wrong types are errors.
* Every problem is a ``SettingsError`` whose message is one line naming the file/key.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from udpim.core.errors import UdpimError

__all__ = [
    "CONFIG_FILE",
    "Address",
    "SettingsError",
    "default_data_dir",
    "format_address",
    "load_config_file",
    "parse_address",
]

Address = tuple[str, int]
CONFIG_FILE = "udpim.toml"

_KEYS: dict[str, type | tuple[type, ...]] = {
    "user": str,
    "hub": str,
    "hub_key": str,
    "listen": str,
    "closed": bool,
    "log_level": str,
    "heartbeat": (int, float),
    "hub_timeout": (int, float),
    "no_learn": bool,
}


class SettingsError(UdpimError):
    """A setting, file or address is unusable; ``str()`` is one line."""


def default_data_dir(kind: Literal["user", "hub"]) -> Path:
    """The data directory used when ``--data`` is not given."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / ("udpim-hub" if kind == "hub" else "udpim")


def load_config_file(data_dir: Path) -> dict[str, object]:
    """Read ``<data_dir>/udpim.toml`` if it exists ({} otherwise).

    Raises:
        SettingsError: unreadable file, bad TOML, unknown key or wrong type.
    """
    path = data_dir / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from None
    try:
        data: Mapping[str, object] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    for key, value in data.items():
        expected = _KEYS.get(key)
        if expected is None:
            raise SettingsError(f"{path}: unknown key {key!r} (expected one of {', '.join(_KEYS)})")
        if not isinstance(value, expected):
            raise SettingsError(f"{path}: {key} has the wrong type ({type(value).__name__})")
    return dict(data)


def parse_address(text: str, *, what: str = "address") -> Address:
    """Parse ``HOST:PORT`` where HOST is an IPv4 literal or ``localhost``.

    Raises:
        SettingsError: anything else (one line naming ``what``).
    """
    host, sep, port_text = text.strip().rpartition(":")
    problem = f"bad {what} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9000"
    if not sep or not host or not port_text.isdigit():
        raise SettingsError(problem)
    port = int(port_text)
    if port > 65535:
        raise SettingsError(f"bad {what} {text!r}: port must be 0..65535")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise SettingsError(problem) from None
    return host, port


def format_address(address: Address) -> str:
    """``HOST:PORT``."""
    return f"{address[0]}:{address[1]}"
