"""Formats and limits of the values IM frames and store ops carry.

* User names: 1-32 chars of ``[a-z0-9_.-]`` (lowercase), everywhere.
* Device ids: 16 lowercase hex chars (8 random bytes, one per daemon data dir).
* Message ids: 24 lowercase hex chars (12 random bytes from the sending daemon's rng).
* Bodies: text of at most 64 KiB in UTF-8 (so no lone surrogates).
* Ints: 0 .. 2**63-1 (a signed 64-bit database integer).
* NAT probe tokens: 16 lowercase hex chars (8 random bytes); probe delays at most
  ``MAX_PROBE_DELAY_MS`` (docs/IM.md section 16).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_INT",
    "MAX_PROBE_DELAY_MS",
    "MAX_REASON_CHARS",
    "MAX_WATCH_USERS",
    "valid_body",
    "valid_device",
    "valid_message_id",
    "valid_token",
    "valid_user_name",
]

MAX_BODY_BYTES: Final = 64 * 1024
"""Largest message body, in UTF-8 bytes."""
MAX_INT: Final = (1 << 63) - 1
"""Largest int in any field (fits a signed 64-bit database integer)."""
MAX_REASON_CHARS: Final = 256
"""Longest ``refused``/``rejected`` reason text, in chars."""
MAX_WATCH_USERS: Final = 1000
"""Most names in one ``watch`` frame."""
MAX_PROBE_DELAY_MS: Final = 900_000
"""Longest delay a ``nat_probe`` may ask for (15 min)."""

_NAME_RE: Final = re.compile(r"[a-z0-9_.-]{1,32}")
_DEVICE_RE: Final = re.compile(r"[0-9a-f]{16}")
_ID_RE: Final = re.compile(r"[0-9a-f]{24}")
_TOKEN_RE: Final = re.compile(r"[0-9a-f]{16}")


def valid_user_name(name: object) -> bool:
    """True if ``name`` is a user name: 1-32 chars of ``[a-z0-9_.-]``."""
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def valid_device(device: object) -> bool:
    """True if ``device`` is a device id: 16 lowercase hex chars."""
    return isinstance(device, str) and _DEVICE_RE.fullmatch(device) is not None


def valid_message_id(message_id: object) -> bool:
    """True if ``message_id`` is a message id: 24 lowercase hex chars."""
    return isinstance(message_id, str) and _ID_RE.fullmatch(message_id) is not None


def valid_token(token: object) -> bool:
    """True if ``token`` is a NAT probe token: 16 lowercase hex chars."""
    return isinstance(token, str) and _TOKEN_RE.fullmatch(token) is not None


def valid_body(body: object) -> bool:
    """True if ``body`` is a str of at most ``MAX_BODY_BYTES`` UTF-8 bytes (no surrogates)."""
    if not isinstance(body, str) or len(body) > MAX_BODY_BYTES:
        return False
    try:
        return len(body.encode("utf-8")) <= MAX_BODY_BYTES
    except UnicodeEncodeError:
        return False
