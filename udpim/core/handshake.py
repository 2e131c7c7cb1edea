"""The 1-RTT handshake: Noise IK (WireGuard-style) over INITIATION and RESPONSE packets.

This module owns the two handshake messages: building them, checking them, and deriving
the two transport secrets that ``crypto.PacketSealer``/``PacketOpener`` start from
(docs/PROTOCOL.md "Handshake"). DoS filtering (mac1 first, cookies, replayed timestamps)
lives in ``cookies.py``; session state and retransmission timers in ``session.py``.

Rules it keeps:

* The initiator knows the responder's static public key in advance (IK). The initiator's
  static key travels encrypted, so passive observers never learn who connects. Both
  ephemerals come from the injected ``rng``; the transport keys have forward secrecy.
* Every check failure raises ``BadPacket`` with a precise reason: layout errors
  (TRUNCATED, MALFORMED, UNEXPECTED, UNKNOWN_VERSION), BAD_MAC (mac1), UNKNOWN_CONNECTION
  (a reply for another connection ID), DECRYPT_FAILED (an AEAD tag), MALFORMED (a
  low-order X25519 key, non-zero RESPONSE mac2), STALE_INITIATION (replayed timestamp).
* One ``InitiatorHandshake`` is one attempt. A retransmission is a *new* attempt with a
  new ephemeral and a newer timestamp (WireGuard), never the same bytes again.

Exact construction (interoperable definition)
=============================================

Notation: ``||`` concatenates; HASH = SHA-256; HMAC = HMAC-SHA256; ``HKDF(ck, ikm, n)``
= RFC 5869 HKDF-SHA256 with salt ``ck``, input ``ikm``, empty info, ``32n`` bytes of
output cut into ``n`` 32-byte values (this is Noise's HKDF); ``AEAD(k, pt, ad)`` =
ChaCha20-Poly1305 with key ``k`` and a nonce of 12 zero bytes (every ``k`` below
encrypts exactly once); ``DH(a, B)`` = X25519, where an all-zero result is rejected
(MALFORMED). ``S_i``/``S_r`` are the static public keys of initiator and responder,
``E_i``/``E_r`` the ephemeral public keys (``s_i``, ``e_i``... the private keys), each
ephemeral private key being ``rng(32)`` (clamped by X25519). ``u64be(t)`` is the 8-byte
big-endian encoding of the timestamp in nanoseconds. Packet layouts are in ``wire.py``;
``byte0`` is 0x40 for INITIATION and 0x50 for RESPONSE::

    Initialisation (both sides; Noise IK with pre-message "<- s", empty prologue)
      h  = HASH("udpim-noise-IK-25519-ChaChaPoly-SHA256 v1")   (41 bytes > 32: hashed)
      ck = h
      h  = HASH(h)                          MixHash(prologue = "")
      h  = HASH(h || S_r)                   pre-message: the responder's static key

    INITIATION (initiator -> responder)
      h  = HASH(h || byte0 || sender_cid)   bind the cleartext header (udpim addition)
      h  = HASH(h || E_i)                                              e
      ck, k = HKDF(ck, DH(e_i, S_r), 2)                                es
      enc_static = AEAD(k, S_i, h);              h = HASH(h || enc_static)      s
      ck, k = HKDF(ck, DH(s_i, S_r), 2)                                ss
      enc_timestamp = AEAD(k, u64be(t), h);      h = HASH(h || enc_timestamp)   payload
      mac1 = HMAC(HASH("mac1----" || S_r), packet[0:109])[0:16]
      mac2 = HMAC(cookie, packet[0:125])[0:16], or 16 zero bytes without a cookie

    RESPONSE (responder -> initiator), continuing from the same h and ck
      h  = HASH(h || byte0 || sender_cid || receiver_cid)   (receiver_cid = the
                                            initiation's sender_cid)
      h  = HASH(h || E_r)                                              e
      ck, k = HKDF(ck, DH(e_r, E_i), 2)                                ee
      ck, k = HKDF(ck, DH(e_r, S_i), 2)                                se
      enc_empty = AEAD(k, "", h);                h = HASH(h || enc_empty)       payload
      mac1 = HMAC(HASH("mac1----" || S_i), packet[0:57])[0:16]
      mac2 = 16 zero bytes (anything else: MALFORMED)

    COOKIE_REPLY (responder -> initiator, instead of RESPONSE when under load)
      receiver_cid = the initiation's sender_cid;  nonce = rng(12)
      enc_cookie = ChaCha20-Poly1305(HASH("cookie--" || S_r), nonce, cookie,
                                     ad = the initiation's mac1)
      (cookie = 16 bytes only the responder computes; see cookies.py)

    Split (both sides, after RESPONSE)
      T_ir, T_ri = HKDF(ck, "", 2)
      initiator: send secret T_ir, receive secret T_ri; responder: the reverse.

The responder checks, in this order: layout, mac1 (one HMAC, BAD_MAC), then (endpoint,
under load) mac2, then es and ``enc_static`` (DECRYPT_FAILED), ss and ``enc_timestamp``
(DECRYPT_FAILED), then (given a ``TimestampGuard``) the timestamp (STALE_INITIATION),
and only then draws its ephemeral and builds the RESPONSE. The initiator checks layout,
``receiver_cid`` (UNKNOWN_CONNECTION), mac1 (BAD_MAC), mac2 = 0 (MALFORMED), then the tag
of ``enc_empty`` (DECRYPT_FAILED). That tag proves the responder holds ``s_r`` (``ck``
went through es and ss) and answered this very initiation with a fresh ``e_r``. The
responder authenticates the initiator through ss (Noise IK's payload-1 guarantees, with
their key-compromise-impersonation caveat) and gets key confirmation only when the first
DATA packet under ``T_ir`` authenticates: the endpoint must not let an unconfirmed
handshake replace a confirmed session.

Timestamps: the initiator sends a value strictly greater than any it sent before to
this responder (wall-clock nanoseconds in practice, passed in by the caller), so a
restarted initiator is still accepted and a replayed initiation is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol, final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from udpim.core.cookies import (
    NO_MAC2,
    compute_mac1,
    compute_mac2,
    open_cookie_reply_untrusted,
)
from udpim.core.crypto import KEY_BYTES, PUBLIC_KEY_BYTES, Rng, StaticKey, dh_untrusted
from udpim.core.errors import BadPacket, DropReason, LocalProtocolError
from udpim.core.wire import (
    CID_BYTES,
    INITIATION_MAC1_OFFSET,
    INITIATION_MAC2_OFFSET,
    RESPONSE_MAC1_OFFSET,
    Initiation,
    PacketType,
    Response,
    decode_initiation_untrusted,
    decode_response_untrusted,
    encode_initiation,
    encode_response,
    first_byte,
    validate_handshake_untrusted,
)

__all__ = [
    "PROTOCOL_NAME",
    "TIMESTAMP_BYTES",
    "HandshakeResult",
    "InitiationGuard",
    "InitiationInfo",
    "InitiatorHandshake",
    "respond_untrusted",
]

PROTOCOL_NAME: Final = b"udpim-noise-IK-25519-ChaChaPoly-SHA256 v1"
TIMESTAMP_BYTES: Final = 8
_ZERO_NONCE: Final = bytes(12)
_MAC_PLACEHOLDER: Final = bytes(16)


@final
@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """What a completed handshake gives a session.

    Attributes:
        peer_public: the peer's authenticated static public key (32 bytes).
        peer_cid: the connection ID to put in DATA packets sent to the peer.
        send_secret: epoch-0 secret for ``PacketSealer``.
        recv_secret: epoch-0 secret for ``PacketOpener``.
    """

    peer_public: bytes
    peer_cid: bytes
    send_secret: bytes
    recv_secret: bytes


@final
@dataclass(frozen=True, slots=True)
class InitiationInfo:
    """What a responder learned from an authenticated INITIATION."""

    initiator_public: bytes
    initiator_cid: bytes
    timestamp_ns: int


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def _hkdf2(ck: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    out = HKDF(hashes.SHA256(), 2 * KEY_BYTES, salt=ck, info=b"").derive(ikm)
    return out[:KEY_BYTES], out[KEY_BYTES:]


def _public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class _SymmetricState:
    """Noise's SymmetricState (h, ck, k) for one handshake; every k encrypts once."""

    __slots__ = ("ck", "h", "k")

    def __init__(self, responder_public: bytes) -> None:
        self.h = _sha256(PROTOCOL_NAME)
        self.ck = self.h
        self.k = b""
        self.mix_hash(b"")  # prologue
        self.mix_hash(responder_public)

    def copy(self) -> _SymmetricState:
        twin = object.__new__(_SymmetricState)
        twin.h, twin.ck, twin.k = self.h, self.ck, self.k
        return twin

    def mix_hash(self, data: bytes) -> None:
        self.h = _sha256(self.h + data)

    def mix_key(self, dh_output: bytes) -> None:
        self.ck, self.k = _hkdf2(self.ck, dh_output)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = ChaCha20Poly1305(self.k).encrypt(_ZERO_NONCE, plaintext, self.h)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash_untrusted(self, ciphertext: bytes, what: str) -> bytes:
        try:
            plaintext = ChaCha20Poly1305(self.k).decrypt(_ZERO_NONCE, ciphertext, self.h)
        except InvalidTag:
            raise BadPacket(DropReason.DECRYPT_FAILED, what) from None
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[bytes, bytes]:
        return _hkdf2(self.ck, b"")


@final
class InitiatorHandshake:
    """One handshake attempt by the initiator (its INITIATION is built at construction).

    Args:
        local: our static key.
        responder_public: the responder's static public key (32 bytes).
        local_cid: the 4-byte connection ID we want the responder to send to.
        rng: randomness for the ephemeral key.
        timestamp_ns: greater than every timestamp sent before to this responder.

    Raises:
        LocalProtocolError: bad key or cid length, timestamp outside 0..2**64-1, or an
            unusable (low-order) responder key.
    """

    __slots__ = ("_body", "_ephemeral", "_local", "_local_cid", "_mac1", "_peer", "_state")

    def __init__(
        self,
        local: StaticKey,
        responder_public: bytes,
        local_cid: bytes,
        rng: Rng,
        timestamp_ns: int,
    ) -> None:
        if len(responder_public) != PUBLIC_KEY_BYTES or len(local_cid) != CID_BYTES:
            raise LocalProtocolError("responder key must be 32 bytes and cid 4 bytes")
        if not 0 <= timestamp_ns < 1 << (8 * TIMESTAMP_BYTES):
            raise LocalProtocolError(f"timestamp {timestamp_ns} out of range")
        self._local, self._peer, self._local_cid = local, responder_public, local_cid
        ephemeral = X25519PrivateKey.from_private_bytes(rng(KEY_BYTES))
        self._ephemeral: X25519PrivateKey | None = ephemeral
        state = _SymmetricState(responder_public)
        state.mix_hash(bytes([first_byte(PacketType.INITIATION)]) + local_cid)
        ephemeral_public = _public_bytes(ephemeral)
        state.mix_hash(ephemeral_public)
        try:
            state.mix_key(dh_untrusted(ephemeral, responder_public))
            enc_static = state.encrypt_and_hash(local.public)
            state.mix_key(local.exchange_untrusted(responder_public))
        except BadPacket as exc:
            raise LocalProtocolError("unusable responder public key") from exc
        enc_timestamp = state.encrypt_and_hash(timestamp_ns.to_bytes(TIMESTAMP_BYTES, "big"))
        self._state = state
        message = Initiation(
            local_cid, ephemeral_public, enc_static, enc_timestamp, _MAC_PLACEHOLDER, NO_MAC2
        )
        self._body = encode_initiation(message)[:INITIATION_MAC1_OFFSET]
        self._mac1 = compute_mac1(responder_public, self._body)

    def initiation(self, cookie: bytes | None) -> bytes:
        """The full INITIATION datagram (141 bytes), with mac2 when a cookie is known.

        Args:
            cookie: the cookie from ``consume_cookie_reply_untrusted`` (of this or an
                earlier attempt to the same responder), or None.
        """
        covered = self._body + self._mac1  # initiation[:125]
        return covered + compute_mac2(cookie, covered)

    def consume_cookie_reply_untrusted(self, data: bytes) -> bytes:
        """Accept a COOKIE_REPLY to this attempt's initiation.

        Returns:
            The 16-byte cookie; pass it to the next attempt's ``initiation``.

        Raises:
            BadPacket: layout errors, UNKNOWN_CONNECTION (another cid), DECRYPT_FAILED
                (not an answer to this initiation).
        """
        receiver_cid, cookie = open_cookie_reply_untrusted(data, self._peer, self._mac1)
        if receiver_cid != self._local_cid:
            raise BadPacket(DropReason.UNKNOWN_CONNECTION, "cookie reply for another cid")
        return cookie

    def consume_response_untrusted(self, data: bytes) -> HandshakeResult:
        """Check the RESPONSE and derive the transport secrets.

        The first success completes the attempt (the ephemeral key is dropped); a
        failure changes nothing, so a forged response cannot spoil the attempt.

        Raises:
            BadPacket: layout errors, UNKNOWN_CONNECTION, BAD_MAC, MALFORMED (mac2 not
                zero, low-order ephemeral), DECRYPT_FAILED, or UNEXPECTED (the attempt
                already completed: a duplicated response).
        """
        response = decode_response_untrusted(data)
        if self._ephemeral is None:
            raise BadPacket(DropReason.UNEXPECTED, "handshake already complete")
        if response.receiver_cid != self._local_cid:
            raise BadPacket(DropReason.UNKNOWN_CONNECTION, "response for another cid")
        mac1 = compute_mac1(self._local.public, data[:RESPONSE_MAC1_OFFSET])
        if not constant_time.bytes_eq(mac1, response.mac1):
            raise BadPacket(DropReason.BAD_MAC, "RESPONSE mac1")
        if response.mac2 != NO_MAC2:
            raise BadPacket(DropReason.MALFORMED, "RESPONSE mac2 not zero")
        state = self._state.copy()
        state.mix_hash(data[: 1 + 2 * CID_BYTES])
        state.mix_hash(response.ephemeral)
        state.mix_key(dh_untrusted(self._ephemeral, response.ephemeral))  # ee
        state.mix_key(self._local.exchange_untrusted(response.ephemeral))  # se
        state.decrypt_and_hash_untrusted(response.enc_empty, "RESPONSE payload")
        send_secret, recv_secret = state.split()
        self._ephemeral = None
        return HandshakeResult(self._peer, response.sender_cid, send_secret, recv_secret)


def _consume_initiation_untrusted(
    local: StaticKey, data: bytes
) -> tuple[InitiationInfo, _SymmetricState, bytes]:
    validate_handshake_untrusted(data, PacketType.INITIATION)
    mac1 = compute_mac1(local.public, data[:INITIATION_MAC1_OFFSET])
    if not constant_time.bytes_eq(mac1, data[INITIATION_MAC1_OFFSET:INITIATION_MAC2_OFFSET]):
        raise BadPacket(DropReason.BAD_MAC, "INITIATION mac1")
    message = decode_initiation_untrusted(data)
    state = _SymmetricState(local.public)
    state.mix_hash(data[: 1 + CID_BYTES])
    state.mix_hash(message.ephemeral)
    state.mix_key(local.exchange_untrusted(message.ephemeral))  # es
    initiator_public = state.decrypt_and_hash_untrusted(message.enc_static, "initiator key")
    state.mix_key(local.exchange_untrusted(initiator_public))  # ss
    timestamp = state.decrypt_and_hash_untrusted(message.enc_timestamp, "timestamp")
    info = InitiationInfo(initiator_public, message.sender_cid, int.from_bytes(timestamp, "big"))
    return info, state, message.ephemeral


class InitiationGuard(Protocol):
    """Decides whether an authenticated initiation may proceed (``cookies.TimestampGuard``,
    or an owner's wrapper that also refuses unknown keys by raising ``BadPacket``)."""

    def accept(self, initiator_public: bytes, timestamp_ns: int) -> bool:
        """True to go on; False rejects the initiation as stale."""
        ...


def respond_untrusted(
    local: StaticKey,
    data: bytes,
    local_cid: bytes,
    rng: Rng,
    *,
    timestamp_guard: InitiationGuard | None = None,
) -> tuple[InitiationInfo, bytes, HandshakeResult]:
    """Check an INITIATION and build the RESPONSE (the responder's whole handshake).

    mac1 is checked first (one HMAC) and the ephemeral is drawn from ``rng`` only once
    the initiation authenticated and (with a guard) its timestamp was accepted. mac2 and
    cookies are the caller's business (``cookies.CookieGuard``), before this call.

    Args:
        local: our static key.
        data: the datagram.
        local_cid: the 4-byte connection ID the initiator will send DATA to.
        rng: randomness for our ephemeral key.
        timestamp_guard: if given, the initiation must carry a timestamp newer than the
            last one accepted from the same initiator key; the guard is updated.

    Returns:
        ``(who initiated, the RESPONSE datagram (89 bytes), our transport secrets)``.

    Raises:
        BadPacket: layout errors, BAD_MAC, DECRYPT_FAILED, MALFORMED (low-order key),
            STALE_INITIATION (replayed or older timestamp).
        LocalProtocolError: if ``local_cid`` is not 4 bytes.
    """
    if len(local_cid) != CID_BYTES:
        raise LocalProtocolError("local cid must be 4 bytes")
    info, state, initiator_ephemeral = _consume_initiation_untrusted(local, data)
    if timestamp_guard is not None and not timestamp_guard.accept(
        info.initiator_public, info.timestamp_ns
    ):
        raise BadPacket(DropReason.STALE_INITIATION, "timestamp not newer than the last")
    ephemeral = X25519PrivateKey.from_private_bytes(rng(KEY_BYTES))
    ephemeral_public = _public_bytes(ephemeral)
    state.mix_hash(bytes([first_byte(PacketType.RESPONSE)]) + local_cid + info.initiator_cid)
    state.mix_hash(ephemeral_public)
    state.mix_key(dh_untrusted(ephemeral, initiator_ephemeral))  # ee
    state.mix_key(dh_untrusted(ephemeral, info.initiator_public))  # se
    enc_empty = state.encrypt_and_hash(b"")
    message = Response(
        local_cid, info.initiator_cid, ephemeral_public, enc_empty, _MAC_PLACEHOLDER, NO_MAC2
    )
    body = encode_response(message)[:RESPONSE_MAC1_OFFSET]
    response = body + compute_mac1(info.initiator_public, body) + NO_MAC2
    recv_secret, send_secret = state.split()
    result = HandshakeResult(info.initiator_public, info.initiator_cid, send_secret, recv_secret)
    return info, response, result
