"""Handshake DoS defences: mac1/mac2, stateless cookies and the initiation timestamp guard.

This module owns the checks a responder runs on an INITIATION *before* it spends
Diffie-Hellman work or memory on it, and the cookie round trip (docs/PROTOCOL.md
"Cookies"). It holds no per-initiator state except ``TimestampGuard``, which is bounded.

Design essay: how a responder survives a flood
=============================================

A responder (a hub, usually) must answer handshakes from addresses it has never seen.
Completing one costs it five X25519 operations (es, ss, a fresh ephemeral, ee, se): a
few hundred microseconds of CPU, and a session slot if it completes. An attacker can
send initiations for the price of a UDP packet, from forged source addresses. Three
layers keep that price comparable to ours, in the order the endpoint applies them.

**mac1: cheap rejection.** Every INITIATION ends with ``mac1 = HMAC-SHA256(
SHA256("mac1----" || responder_public), initiation[:109])[:16]``. Checking it costs
one HMAC over 109 bytes (``verify_mac1_untrusted``), no DH, no state. It drops every
packet from a scanner, a misdirected client or line noise, and proves the sender knows
the responder's public key. It is *not* authentication: the public key is not secret,
and anyone who has it can produce a valid mac1. RESPONSE carries mac1 too, keyed with
the initiator's public key, so an initiator discards garbage just as cheaply.

**mac2 and the stateless cookie: proof of address.** When the endpoint is under load
(``CookieMode``), a valid mac1 is not enough: the initiation must also carry ``mac2 =
HMAC-SHA256(cookie, initiation[:125])[:16]`` where ``cookie = HMAC-SHA256(secret,
address)[:16]`` for the datagram's source address. Without a valid mac2 the responder
does no DH and keeps no state: it sends one COOKIE_REPLY carrying the
cookie for that address (``CookieGuard.make_reply``) and forgets the initiation. The
initiator retries with a fresh initiation whose mac2 uses the cookie; the responder
recomputes the cookie from the source address and its secret (``check_mac2``). Only a
sender that can *receive* at the claimed address can ever present a valid mac2, so a
flood from forged addresses costs one HMAC and one 49-byte reply per packet, and
per-source rate limits (``RATE_LIMITED``) become meaningful because sources are real.

The secret is 32 bytes from the injected ``rng`` and rotates every
``cookie_secret_lifetime_s`` (default 120 s). The previous secret is still accepted, so
a cookie stays valid for at least one and at most two lifetimes after it was issued and
the responder never needs more than two secrets. The address is bound as ``len(ip)
(2 bytes) || packed ip (4 or 16 bytes) || port (2 bytes)``: a cookie fetched for one
address (or port, so two users behind one NAT get different cookies) is useless from
another.

The cookie is sent encrypted: ChaCha20-Poly1305 under ``SHA256("cookie--" ||
responder_public)``, a random 12-byte nonce, with the answered initiation's mac1 as
associated data. Only an initiator that knows the responder key can read it, and a
reply only decrypts against the initiation it answers, so an off-path attacker cannot
make an initiator adopt a bogus cookie (an on-path attacker can, but it can also just
drop packets; the damage is one more round trip).

**Amplification <= 1.0 before the address is validated.** The responder answers an
INITIATION (141 bytes) with exactly one packet: a COOKIE_REPLY (49 bytes, ratio 0.35)
or a RESPONSE (89 bytes, ratio 0.63). Every other packet of a wrong size is dropped
unanswered, and DATA that fails authentication is never answered. So a forged source
address cannot be used to reflect more bytes at a victim than the attacker sends
(tests/core/test_cookies.py checks this as a property over random initiations).

**Replay: TimestampGuard.** An attacker who captured an honest initiation can replay it
(mac1 stays valid; under load it needs the victim's address, and then its mac2 is
valid for the cookie's lifetime). The replay cannot complete a handshake (the attacker
lacks the ephemeral private key), but it would make the responder do the DH work and
perhaps create a half-open session. So the initiation carries an 8-byte timestamp
(nanoseconds, strictly increasing per initiator, encrypted and authenticated by the
``ss`` key) and the responder accepts it only if it is greater than the last one it
accepted from that initiator's static key (WireGuard's rule). A replay is rejected
(``STALE_INITIATION``) after the two DHs that authenticate the timestamp, before any
response or state.

Memory is bounded: ``TimestampGuard`` remembers at most ``max_initiators`` keys and
evicts the one whose last accepted initiation is oldest (LRU). An evicted initiator's
old initiations become replayable again; that is why the endpoint must never let an
*unconfirmed* handshake replace a confirmed session (the new session is only promoted
when the initiator's first DATA packet authenticates under the new keys, which a
replayer cannot produce). A global "floor" of evicted timestamps was rejected: the
timestamps are chosen by initiators, so one attacker sending far-future timestamps from
throwaway keys could raise the floor and lock everyone else out.

**What an attacker still can do**: with real addresses, open as many handshakes as the
per-source and global limits allow (that is what limits are for); an on-path attacker
can fetch cookies for the addresses it sees and replay within a cookie lifetime (each
replay still costs two DH and is rate-limited); anyone can learn that a responder exists
if they know its public key. **What it cannot do**: get more bytes sent to a victim
than it sent; make the responder keep per-packet state for an unvalidated address under
load; complete a handshake or inject data without the keys; learn the initiator's
identity (it is encrypted, see ``handshake.py``).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Final, final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from udpim.core.crypto import Rng
from udpim.core.errors import BadPacket, DropReason, LocalProtocolError
from udpim.core.wire import (
    INITIATION_BYTES,
    INITIATION_MAC1_OFFSET,
    INITIATION_MAC2_OFFSET,
    RESPONSE_MAC1_OFFSET,
    CookieReply,
    PacketType,
    decode_cookie_reply_untrusted,
    encode_cookie_reply,
    peek_packet_type_untrusted,
    validate_handshake_untrusted,
)

__all__ = [
    "COOKIE_BYTES",
    "COOKIE_LABEL",
    "MAC1_LABEL",
    "MAC_BYTES",
    "NO_MAC2",
    "Address",
    "CookieGuard",
    "TimestampGuard",
    "compute_mac1",
    "compute_mac2",
    "open_cookie_reply_untrusted",
    "verify_mac1_untrusted",
]

Address = tuple[str, int]

MAC_BYTES: Final = 16
COOKIE_BYTES: Final = 16
MAC1_LABEL: Final = b"mac1----"
COOKIE_LABEL: Final = b"cookie--"
NO_MAC2: Final = bytes(MAC_BYTES)
_NONCE_BYTES: Final = 12
_COMPACT_AFTER_REMOVALS: Final = 4096
"""``TimestampGuard`` copies its dict after this many removals (a few microseconds a
removal at most, for 65,536 keys, in finding the oldest and in copying)."""
_SECRET_BYTES: Final = 32
_MAC1_OFFSETS: Final = {
    PacketType.INITIATION: INITIATION_MAC1_OFFSET,
    PacketType.RESPONSE: RESPONSE_MAC1_OFFSET,
}


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def _hmac16(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()[:MAC_BYTES]


@lru_cache(maxsize=16)
def _mac1_key(receiver_public: bytes) -> bytes:
    # Small: the keys worth caching are the few this process receives at or dials (used
    # for every packet); a responder's RESPONSEs key mac1 with each initiator's key once,
    # and 1,024 of those kept ~300 KB for nothing. Its own key, used on every INITIATION,
    # stays among the most recent.
    return _sha256(MAC1_LABEL + receiver_public)


@lru_cache(maxsize=1024)
def _cookie_aead(responder_public: bytes) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(_sha256(COOKIE_LABEL + responder_public))


def compute_mac1(receiver_public: bytes, covered: bytes) -> bytes:
    """``HMAC-SHA256(SHA256("mac1----" || receiver_public), covered)[:16]``.

    Args:
        receiver_public: the static public key of the packet's receiver (the responder
            for an INITIATION, the initiator for a RESPONSE).
        covered: the packet bytes before mac1.
    """
    return _hmac16(_mac1_key(receiver_public), covered)


def compute_mac2(cookie: bytes | None, covered: bytes) -> bytes:
    """``HMAC-SHA256(cookie, covered)[:16]``, or 16 zero bytes without a cookie.

    Args:
        cookie: the 16-byte cookie from the last COOKIE_REPLY, if any.
        covered: the packet bytes before mac2.
    """
    return NO_MAC2 if cookie is None else _hmac16(cookie, covered)


def verify_mac1_untrusted(packet: bytes, receiver_public: bytes) -> None:
    """Check the layout and mac1 of an INITIATION or RESPONSE: the first, cheap filter.

    Raises:
        BadPacket: TRUNCATED/UNKNOWN_VERSION/MALFORMED for a bad layout, UNEXPECTED for
            another packet type, BAD_MAC if mac1 is wrong.
    """
    packet_type = peek_packet_type_untrusted(packet)
    offset = _MAC1_OFFSETS.get(packet_type)
    if offset is None:
        raise BadPacket(DropReason.UNEXPECTED, f"{packet_type.name} carries no mac1")
    validate_handshake_untrusted(packet, packet_type)
    expected = compute_mac1(receiver_public, packet[:offset])
    if not constant_time.bytes_eq(expected, packet[offset : offset + MAC_BYTES]):
        raise BadPacket(DropReason.BAD_MAC, f"{packet_type.name} mac1")


def open_cookie_reply_untrusted(
    data: bytes, responder_public: bytes, initiation_mac1: bytes
) -> tuple[bytes, bytes]:
    """Decrypt a COOKIE_REPLY received by an initiator.

    Args:
        data: the datagram.
        responder_public: the responder's static public key.
        initiation_mac1: mac1 of the initiation the reply answers.

    Returns:
        ``(receiver_cid, cookie)``; the caller checks that the cid is its own.

    Raises:
        BadPacket: a layout error (see ``wire.decode_cookie_reply_untrusted``), or
            DECRYPT_FAILED if the reply does not answer this initiation.
    """
    reply = decode_cookie_reply_untrusted(data)
    try:
        cookie = _cookie_aead(responder_public).decrypt(
            reply.nonce, reply.enc_cookie, initiation_mac1
        )
    except InvalidTag:
        raise BadPacket(DropReason.DECRYPT_FAILED, "cookie reply") from None
    return reply.receiver_cid, cookie


def _address_bytes(address: Address) -> bytes:
    host, port = address[0], address[1]  # an IPv6 socket address may carry more fields
    try:
        ip = ipaddress.ip_address(host).packed
    except ValueError:  # not an IP literal (a name in a test network): bind its text
        ip = host.encode("utf-8", "surrogatepass")
    return len(ip).to_bytes(2, "big") + ip + (port & 0xFFFF).to_bytes(2, "big")


@final
class CookieGuard:
    """The responder's cookie issuer and checker: two rotating secrets, nothing else.

    Args:
        responder_public: our static public key (keys the cookie encryption).
        rng: randomness for secrets and reply nonces.
        secret_lifetime_s: how long a secret is current before it rotates
            (``EndpointConfig.cookie_secret_lifetime_s``).

    Raises:
        ValueError: if ``secret_lifetime_s`` is not positive.
    """

    __slots__ = ("_current", "_epoch_start", "_previous", "_public", "_rng", "lifetime_s")

    def __init__(self, responder_public: bytes, rng: Rng, secret_lifetime_s: float = 120.0) -> None:
        if not secret_lifetime_s > 0:
            raise ValueError("secret_lifetime_s must be positive")
        self._rng = rng
        self._public = responder_public
        self.lifetime_s = secret_lifetime_s
        self._epoch_start: float | None = None  # set by the first call that knows `now`
        self._current = b""
        self._previous: bytes | None = None

    def _rotate(self, now: float) -> None:
        if self._epoch_start is None:
            self._epoch_start, self._current = now, self._rng(_SECRET_BYTES)
            return
        periods = int((now - self._epoch_start) // self.lifetime_s)
        if periods >= 1:
            self._previous = self._current if periods == 1 else None
            self._current = self._rng(_SECRET_BYTES)
            self._epoch_start += periods * self.lifetime_s

    def cookie(self, address: Address, now: float) -> bytes:
        """The cookie the current secret gives ``address``."""
        self._rotate(now)
        return _hmac16(self._current, _address_bytes(address))

    def make_reply(self, initiation: bytes, address: Address, now: float) -> bytes:
        """The COOKIE_REPLY answering ``initiation`` from ``address``.

        Args:
            initiation: an INITIATION that passed ``verify_mac1_untrusted``.
            address: its source address.
            now: the current time in seconds.

        Returns:
            The 49-byte COOKIE_REPLY datagram.

        Raises:
            LocalProtocolError: if ``initiation`` is not 141 bytes long.
        """
        if len(initiation) != INITIATION_BYTES:
            raise LocalProtocolError("make_reply needs a verified INITIATION")
        cookie = self.cookie(address, now)
        nonce = self._rng(_NONCE_BYTES)
        mac1 = initiation[INITIATION_MAC1_OFFSET:INITIATION_MAC2_OFFSET]
        sealed = _cookie_aead(self._public).encrypt(nonce, cookie, mac1)
        return encode_cookie_reply(CookieReply(initiation[1:5], nonce, sealed))

    def check_mac2(self, initiation: bytes, address: Address, now: float) -> bool:
        """Whether ``initiation`` carries a mac2 made with a cookie for ``address``.

        Cookies from the current and the previous secret are accepted.
        """
        if len(initiation) != INITIATION_BYTES:
            return False
        self._rotate(now)
        covered = initiation[:INITIATION_MAC2_OFFSET]
        mac2 = initiation[INITIATION_MAC2_OFFSET:]
        where = _address_bytes(address)
        for secret in (self._current, self._previous):
            if secret is not None and constant_time.bytes_eq(
                _hmac16(_hmac16(secret, where), covered), mac2
            ):
                return True
        return False


@final
class TimestampGuard:
    """Per initiator static key, the greatest initiation timestamp accepted (bounded).

    Args:
        max_initiators: how many keys are remembered; beyond it the key whose last
            accepted initiation is oldest is forgotten (see the essay above).

    Raises:
        ValueError: if ``max_initiators`` is below 1.
    """

    __slots__ = ("_latest", "_removed", "max_initiators")

    def __init__(self, max_initiators: int = 65_536) -> None:
        if max_initiators < 1:
            raise ValueError("max_initiators must be >= 1")
        self.max_initiators = max_initiators
        # Least recently accepted first: a plain dict keeps insertion order, and a key
        # accepted again is moved to the end by removing and re-inserting it. (An
        # ``OrderedDict`` costs 48 bytes more per key.) Removed keys leave holes that
        # finding the oldest key must step over, so after ``_COMPACT_AFTER_REMOVALS``
        # removals the dict is copied without them.
        self._latest: dict[bytes, int] = {}
        self._removed = 0

    @property
    def tracked_initiators(self) -> int:
        """How many initiator keys are remembered now (<= ``max_initiators``)."""
        return len(self._latest)

    def accept(self, initiator_public: bytes, timestamp_ns: int) -> bool:
        """Accept ``timestamp_ns`` if it is strictly greater than the last accepted one.

        Call only with a timestamp that authenticated (after the handshake decrypted it).

        Returns:
            False for a replay or a stale initiation (nothing changes then).
        """
        latest = self._latest
        last = latest.get(initiator_public)
        if last is not None:
            if timestamp_ns <= last:
                return False
            del latest[initiator_public]  # re-inserted below, as the most recent
        elif len(latest) >= self.max_initiators:
            del latest[next(iter(latest))]
        else:
            latest[initiator_public] = timestamp_ns
            return True
        self._removed += 1
        if self._removed >= _COMPACT_AFTER_REMOVALS:
            latest = self._latest = dict(latest)
            self._removed = 0
        latest[initiator_public] = timestamp_ns
        return True
