"""Identity files: a hub's or a daemon's long-term X25519 key, and public keys as text.

Rules:

* The private key lives in ``<data dir>/identity.key`` as 64 hex characters and a newline,
  mode 0600, in a directory that is 0700. A key file readable by anyone else is refused
  (like ssh), since anyone who reads it can impersonate its owner.
* Public keys travel as 64 lowercase hex characters (``udpim keygen`` prints one,
  ``udpim hub adduser`` and ``udpim daemon --hub-key`` take one).
* Every error is a ``IdentityError`` with a one-line message naming the file or value.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from udpim.core.crypto import StaticKey
from udpim.core.errors import UdpimError

__all__ = [
    "IDENTITY_FILE",
    "IdentityError",
    "ensure_private_dir",
    "load_identity",
    "load_or_create_identity",
    "parse_public_key",
    "public_key_text",
]

IDENTITY_FILE = "identity.key"
KEY_HEX_CHARS = 64


class IdentityError(UdpimError):
    """A key file or key text is unusable; ``str()`` is one line."""


def public_key_text(public: bytes) -> str:
    """The text form of a 32-byte public key (64 lowercase hex characters)."""
    return public.hex()


def parse_public_key(text: str) -> bytes:
    """Parse a public key given as 64 hex characters.

    Raises:
        IdentityError: anything else.
    """
    cleaned = text.strip().lower()
    if len(cleaned) != KEY_HEX_CHARS or any(c not in "0123456789abcdef" for c in cleaned):
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise IdentityError(f"bad key {shown!r}: expected {KEY_HEX_CHARS} hex characters")
    return bytes.fromhex(cleaned)


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if needed and make it 0700.

    Raises:
        IdentityError: the directory cannot be created or is not a directory.
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise IdentityError(f"cannot use data directory {path}: {exc.strerror or exc}") from None
    if not path.is_dir():
        raise IdentityError(f"data directory {path} is not a directory")


def load_identity(data_dir: Path) -> StaticKey:
    """Load ``<data_dir>/identity.key``.

    Raises:
        IdentityError: missing, unreadable, readable by others, or malformed.
    """
    path = data_dir / IDENTITY_FILE
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        raise IdentityError(
            f"no identity in {data_dir} (run: udpim keygen --data {data_dir})"
        ) from None
    except OSError as exc:
        raise IdentityError(f"cannot read {path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise IdentityError(
            f"{path} is accessible by other users (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    cleaned = text.strip().lower()
    if len(cleaned) != KEY_HEX_CHARS or any(c not in "0123456789abcdef" for c in cleaned):
        raise IdentityError(
            f"{path} is not a udpim identity (expected {KEY_HEX_CHARS} hex characters)"
        )
    return StaticKey.from_bytes(bytes.fromhex(cleaned))


def load_or_create_identity(
    data_dir: Path, rng: Callable[[int], bytes] = os.urandom
) -> tuple[StaticKey, bool]:
    """Load the identity in ``data_dir``, creating the directory and key if absent.

    Returns:
        ``(key, created)``: created is True when a new key was written.

    Raises:
        IdentityError: see ``load_identity``; or the key cannot be written.
    """
    ensure_private_dir(data_dir)
    path = data_dir / IDENTITY_FILE
    if path.exists():
        return load_identity(data_dir), False
    key = StaticKey.generate(rng)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created meanwhile by another process: use that one
        return load_identity(data_dir), False
    except OSError as exc:
        raise IdentityError(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(key.private_bytes().hex() + "\n")
        file.flush()
        os.fsync(file.fileno())
    return key, True
