"""The hub-key query: how a daemon learns an open hub's public key on first use.

Why it exists: the udpim handshake is Noise IK, so the initiator must know the
responder's static key before its first packet. A daemon started without ``--hub-key``
therefore asks the hub for its key once, pins the answer (trust on first use, like ssh,
with a logged warning), and from then on dials only with the pinned key. The answer is
not authenticated: whoever controls the path at that first contact can substitute a
key. ``--hub-key`` avoids that; a later key change is detected (the handshake times out,
a query then reports another key) and stops the daemon with a clear error.

Wire format (outside the udpim protocol: the first byte's version bits are 00, so a
udpim endpoint that does not know this query drops it as ``unknown-version``):

    query  = 0x00 "udpim-hub-key?" 0x00 ... 0x00     exactly QUERY_BYTES (64) bytes
    answer = 0x00 "udpim-hub-key=" <32-byte key>     47 bytes

Rules:

* The answer is shorter than the query, so the hub cannot be used to amplify a
  reflection attack. Anything that is not exactly a query gets no answer.
* Closed hubs do not answer at all: their users get the key with their account, and
  not publishing it keeps mac1 a filter against strangers (docs/PROTOCOL.md 5.7).
* ``parse_answer_untrusted`` accepts any bytes and returns the key or None.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ANSWER_PREFIX", "QUERY", "QUERY_BYTES", "answer_query", "parse_answer_untrusted"]

_MAGIC: Final = b"\x00udpim-hub-key"
QUERY_BYTES: Final = 64
QUERY: Final = (_MAGIC + b"?").ljust(QUERY_BYTES, b"\x00")
"""The query datagram a daemon sends to the hub's address."""
ANSWER_PREFIX: Final = _MAGIC + b"="
KEY_BYTES: Final = 32


def answer_query(data: bytes, public_key: bytes) -> bytes | None:
    """The hub's answer to ``data`` if it is a key query, else None.

    Args:
        data: any datagram that is not udpim version 1.
        public_key: the hub's static public key (32 bytes).
    """
    if data != QUERY:
        return None
    return ANSWER_PREFIX + public_key


def parse_answer_untrusted(data: bytes) -> bytes | None:
    """The key carried by a key-query answer, or None for any other bytes."""
    if len(data) != len(ANSWER_PREFIX) + KEY_BYTES or not data.startswith(ANSWER_PREFIX):
        return None
    return bytes(data[len(ANSWER_PREFIX) :])
