"""Keys, the transport key schedule, AEAD packet protection and the replay window.

This module owns every use of a symmetric transport key (docs/PROTOCOL.md "Packet
protection"). The handshake that produces the first secrets lives in ``handshake.py``.

Rules it keeps:

* Randomness only from the injected ``rng`` (``StaticKey.generate``); no clock.
* A nonce is never reused under one key: the nonce is the packet number and
  ``PacketSealer.seal`` refuses a packet number that is not larger than the last one.
* The opener never changes state on input that fails authentication: a forged packet
  with a flipped key phase costs one AEAD trial and leaves the opener as it was.
* ``open_untrusted`` fails only with ``BadPacket(DECRYPT_FAILED)``.

Theory of operation. Each direction of a session has a chain of 32-byte secrets
(RFC 5869 HKDF-Expand with SHA-256)::

    secret[0]   = the direction's handshake secret (handshake.py, "Split")
    secret[n+1] = HKDF-Expand(secret[n], info="udpim key update", L=32)
    key[n]      = HKDF-Expand(secret[n], info="udpim packet key", L=32)
    key phase   = n mod 2 (bit 3 of the DATA first byte)

A leaked ``key[n]`` reveals neither ``secret[n]`` nor any later key. DATA packets are
sealed with ChaCha20-Poly1305 under ``key[n]``, nonce = 4 zero bytes || the full 64-bit
packet number (big-endian), associated data = the DATA header bytes.

The sender moves to the next epoch with ``PacketSealer.update()`` and forgets the old
key. The receiver's ``PacketOpener`` decrypts with the current key when the phase bit
matches. When the bit differs, the packet is either a late packet of the previous epoch
(its number is below the first number seen in the current epoch: try the kept previous
key) or the first packet of the next epoch (try the next key and, only if it
authenticates, make it current and keep the old one as previous). The session calls
``discard_previous()`` once late packets can no longer arrive (e.g. after 3 PTOs).

``ReplayWindow`` is a sliding bitmap (RFC 4303 section 3.4.3 / WireGuard): the largest
packet number authenticated so far plus one bit per number below it.

Memory (a hub holds 100 000 mostly idle sessions): an epoch keeps its 32-byte packet
key (beside its secret, in one bytes object), not an AEAD object. A ``ChaCha20Poly1305``
object holds OpenSSL cipher contexts of about 2.2 KB outside Python's heap, and a session
has two or three epochs, so keeping them cost more than the rest of the session together.
``_aead`` hands out objects from a bounded least-recently-used cache
(``AEAD_CACHE_SIZE``): busy sessions keep theirs, idle ones rebuild one on their next
packet (about 1 microsecond, against tens for the rest of a packet's path). The cache
keeps no more than a session keeps: keys (never secrets) of recently used epochs, which
``update`` and ``discard_previous`` forget from the session at once and the cache as it
is reused.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Final, final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from udpim.core.config import MIN_REPLAY_WINDOW_PACKETS  # re-exported
from udpim.core.errors import BadPacket, DropReason, LocalProtocolError

__all__ = [
    "KEY_BYTES",
    "KEY_UPDATE_LABEL",
    "MIN_REPLAY_WINDOW_PACKETS",
    "PACKET_KEY_LABEL",
    "PUBLIC_KEY_BYTES",
    "PacketOpener",
    "PacketSealer",
    "ReplayWindow",
    "Rng",
    "StaticKey",
    "dh_untrusted",
    "next_secret",
    "packet_key",
]

Rng = Callable[[int], bytes]
"""Source of randomness: ``rng(n)`` returns ``n`` bytes (``os.urandom`` in production)."""

KEY_BYTES: Final = 32
PUBLIC_KEY_BYTES: Final = 32
KEY_UPDATE_LABEL: Final = b"udpim key update"
PACKET_KEY_LABEL: Final = b"udpim packet key"
_MAX_NONCE_PN: Final = (1 << 64) - 1
AEAD_CACHE_SIZE: Final = 1024
"""AEAD objects kept for the most recently used packet keys, process-wide (see above)."""


@final
class StaticKey:
    """An X25519 key pair: a long-term identity (or, inside the handshake, an ephemeral).

    Attributes:
        public: the raw 32-byte public key, as it travels on the wire.
    """

    __slots__ = ("_private", "public")

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private
        self.public: bytes = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls, rng: Rng) -> StaticKey:
        """A new key pair from 32 bytes of ``rng``."""
        return cls.from_bytes(rng(KEY_BYTES))

    @classmethod
    def from_bytes(cls, private_bytes: bytes) -> StaticKey:
        """Load a raw 32-byte X25519 private key.

        Raises:
            ValueError: if ``private_bytes`` is not 32 bytes.
        """
        return cls(X25519PrivateKey.from_private_bytes(private_bytes))

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key (for the key store; never sent)."""
        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def exchange_untrusted(self, peer_public: bytes) -> bytes:
        """X25519 with a peer public key taken from the network.

        Raises:
            BadPacket: MALFORMED if the key has the wrong size or is of low order (the
                shared secret would be all zeros).
        """
        return dh_untrusted(self._private, peer_public)

    def __repr__(self) -> str:
        return f"StaticKey(public={self.public.hex()})"


def dh_untrusted(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    """X25519(private, peer_public), rejecting low-order points.

    Raises:
        BadPacket: MALFORMED for a key of the wrong size or an all-zero shared secret.
    """
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        raise BadPacket(DropReason.MALFORMED, "unusable X25519 public key") from None


def _expand(secret: bytes, label: bytes) -> bytes:
    return HKDFExpand(hashes.SHA256(), KEY_BYTES, label).derive(secret)


def next_secret(secret: bytes) -> bytes:
    """``secret[n+1] = HKDF-Expand(secret[n], "udpim key update", 32)``."""
    return _expand(secret, KEY_UPDATE_LABEL)


def packet_key(secret: bytes) -> bytes:
    """``key[n] = HKDF-Expand(secret[n], "udpim packet key", 32)``."""
    return _expand(secret, PACKET_KEY_LABEL)


def _check_secret(secret: bytes) -> None:
    if len(secret) != KEY_BYTES:
        raise ValueError(f"a traffic secret is {KEY_BYTES} bytes, not {len(secret)}")


@lru_cache(maxsize=AEAD_CACHE_SIZE)
def _aead(key: bytes) -> ChaCha20Poly1305:
    """The AEAD for packet key ``key``, from the bounded cache (module docstring)."""
    return ChaCha20Poly1305(key)


class _Epoch:
    """One key epoch of one direction: its secret and its packet key, kept together in
    one 64-byte ``material`` (two objects of their own would cost 33 bytes more)."""

    __slots__ = ("material", "number")

    def __init__(self, secret: bytes, number: int) -> None:
        self.material = secret + packet_key(secret)
        self.number = number

    @property
    def key(self) -> bytes:
        """The packet key (the cache is keyed by it alone, never by the secret)."""
        return self.material[KEY_BYTES:]

    def following(self) -> _Epoch:
        return _Epoch(next_secret(self.material[:KEY_BYTES]), self.number + 1)


@final
class PacketSealer:
    """Seals our outgoing DATA packets under the current send epoch.

    Args:
        secret: the 32-byte send secret from the handshake.

    Raises:
        ValueError: if ``secret`` is not 32 bytes.
    """

    __slots__ = ("_epoch", "_last_pn")

    def __init__(self, secret: bytes) -> None:
        _check_secret(secret)
        self._epoch = _Epoch(secret, 0)
        self._last_pn = -1

    @property
    def key_phase(self) -> int:
        """The key-phase bit to put in the DATA header (epoch mod 2)."""
        return self._epoch.number & 1

    @property
    def epoch(self) -> int:
        """How many key updates this direction went through."""
        return self._epoch.number

    def update(self) -> None:
        """Move to the next epoch; the old key is forgotten."""
        self._epoch = self._epoch.following()

    def seal(self, packet_number: int, header: bytes, plaintext: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext``; ``header`` is authenticated too.

        Returns:
            The ciphertext including the 16-byte tag.

        Raises:
            LocalProtocolError: if ``packet_number`` is not larger than every number
                sealed before (a nonce must never repeat) or does not fit 64 bits.
        """
        if not self._last_pn < packet_number <= _MAX_NONCE_PN:
            raise LocalProtocolError(f"packet number {packet_number} reused or out of range")
        self._last_pn = packet_number
        return _aead(self._epoch.key).encrypt(packet_number.to_bytes(12, "big"), plaintext, header)


@final
class PacketOpener:
    """Opens the peer's DATA packets, following its key updates.

    Args:
        secret: the 32-byte receive secret from the handshake.

    Raises:
        ValueError: if ``secret`` is not 32 bytes.
    """

    __slots__ = ("_current", "_current_first_pn", "_next", "_previous")

    def __init__(self, secret: bytes) -> None:
        _check_secret(secret)
        self._current = _Epoch(secret, 0)
        self._current_first_pn = 0
        self._next: _Epoch | None = None  # derived on the first flipped-phase packet
        self._previous: _Epoch | None = None

    @property
    def key_phase(self) -> int:
        """The key phase the peer currently sends with."""
        return self._current.number & 1

    @property
    def epoch(self) -> int:
        """The peer's current epoch (how many key updates we followed)."""
        return self._current.number

    @property
    def has_previous(self) -> bool:
        """Whether the previous epoch's key is still kept for late packets."""
        return self._previous is not None

    def discard_previous(self) -> None:
        """Forget the previous epoch's key; its late packets fail from now on."""
        self._previous = None

    def open_untrusted(
        self, packet_number: int, key_phase: int, header: bytes, ciphertext: bytes
    ) -> bytes:
        """Authenticate and decrypt one DATA packet.

        Args:
            packet_number: the full (reconstructed) packet number.
            key_phase: the phase bit from the header.
            header: the raw header bytes (associated data).
            ciphertext: everything after the header.

        Returns:
            The plaintext frames.

        Raises:
            BadPacket: DECRYPT_FAILED if no eligible key authenticates the packet.
        """
        if not 0 <= packet_number <= _MAX_NONCE_PN:
            raise BadPacket(DropReason.DECRYPT_FAILED, "packet number out of range")
        nonce = packet_number.to_bytes(12, "big")
        if key_phase == self._current.number & 1:
            return _open(self._current, nonce, header, ciphertext)
        if packet_number < self._current_first_pn:
            if self._previous is None:
                raise BadPacket(DropReason.DECRYPT_FAILED, "previous key discarded")
            return _open(self._previous, nonce, header, ciphertext)
        if self._next is None:
            self._next = self._current.following()
        plaintext = _open(self._next, nonce, header, ciphertext)
        self._previous, self._current, self._next = self._current, self._next, None
        self._current_first_pn = packet_number
        return plaintext


def _open(epoch: _Epoch, nonce: bytes, header: bytes, ciphertext: bytes) -> bytes:
    try:
        return _aead(epoch.key).decrypt(nonce, ciphertext, header)
    except InvalidTag:
        raise BadPacket(DropReason.DECRYPT_FAILED, f"epoch {epoch.number}") from None


@final
class ReplayWindow:
    """Sliding-window duplicate and replay filter over packet numbers.

    ``check`` before decrypting (cheap rejection), ``mark`` only after the packet
    authenticated, so forged packets cannot move the window.

    Args:
        size_packets: how many numbers below the largest are remembered (>= 2048).

    Raises:
        ValueError: if ``size_packets`` is below 2048.
    """

    __slots__ = ("_largest", "_mask", "_missing", "size_packets")

    def __init__(self, size_packets: int = MIN_REPLAY_WINDOW_PACKETS) -> None:
        if size_packets < MIN_REPLAY_WINDOW_PACKETS:
            raise ValueError(f"replay window must cover >= 2048 packets, not {size_packets}")
        self.size_packets = size_packets
        self._mask = _window_mask(size_packets)  # shared by every window of this size
        self._largest = -1
        # Bit i set <=> packet number (largest - i) was never marked. Kept as the numbers
        # *missing*, not those seen, so an in-order stream keeps a small int (an idle
        # session's window would otherwise grow to size_packets bits over a day).
        self._missing = 0

    @property
    def largest(self) -> int | None:
        """The largest packet number marked so far (for packet-number decoding)."""
        return None if self._largest < 0 else self._largest

    def check(self, packet_number: int) -> bool:
        """Whether ``packet_number`` is new: not seen and not older than the window."""
        if packet_number > self._largest:
            return True
        age = self._largest - packet_number
        return age < self.size_packets and bool((self._missing >> age) & 1)

    def mark(self, packet_number: int) -> None:
        """Record an authenticated packet number (call only after ``check`` passed)."""
        if packet_number > self._largest:
            shift = packet_number - self._largest
            # The numbers between the old largest and this one are missing (bits 1..shift-1).
            self._missing = (
                ((self._missing << shift) | ((1 << shift) - 2)) & self._mask
                if shift < self.size_packets
                else self._mask - 1
            )
            self._largest = packet_number
        elif self._largest - packet_number < self.size_packets:
            self._missing &= ~(1 << (self._largest - packet_number))


@lru_cache(maxsize=8)
def _window_mask(size_packets: int) -> int:
    return (1 << size_packets) - 1
