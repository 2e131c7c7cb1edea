"""An independent implementation of the handshake, written from handshake.py's docstring.

If this test passes, the documented construction (which docs/PROTOCOL.md copies) is
exact: another team implementing it byte for byte interoperates with udpim. It uses
only the standard library's hashlib/hmac and the bare X25519 and ChaCha20-Poly1305
primitives, none of udpim's helpers.
"""

from __future__ import annotations

import hashlib
import hmac
import random

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from udpim.core.crypto import StaticKey
from udpim.core.handshake import InitiatorHandshake, respond_untrusted


def HASH(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def HMAC(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def HKDF(ck: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    prk = HMAC(ck, ikm)
    first = HMAC(prk, b"\x01")
    return first, HMAC(prk, first + b"\x02")


def AEAD(k: bytes, plaintext: bytes, ad: bytes) -> bytes:
    return ChaCha20Poly1305(k).encrypt(bytes(12), plaintext, ad)


def DH(private: bytes, public: bytes) -> bytes:
    key = X25519PrivateKey.from_private_bytes(private)
    return key.exchange(X25519PublicKey.from_public_bytes(public))


def public_of(private: bytes) -> bytes:
    key = X25519PrivateKey.from_private_bytes(private).public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_initiation_response_and_split_follow_the_documented_recipe() -> None:
    s_i, s_r = bytes(range(1, 33)), bytes(range(101, 133))
    S_i, S_r = public_of(s_i), public_of(s_r)
    cookie = bytes(range(16))
    timestamp = 0x0123456789ABCDEF
    i_rng, r_rng = random.Random(11), random.Random(22)
    e_i, e_r = random.Random(11).randbytes(32), random.Random(22).randbytes(32)
    E_i, E_r = public_of(e_i), public_of(e_r)

    # Initialisation
    h = HASH(b"udpim-noise-IK-25519-ChaChaPoly-SHA256 v1")
    ck = h
    h = HASH(h)
    h = HASH(h + S_r)
    # INITIATION
    header = b"\x40" + b"icid"
    h = HASH(h + header)
    h = HASH(h + E_i)
    ck, k = HKDF(ck, DH(e_i, S_r))
    enc_static = AEAD(k, S_i, h)
    h = HASH(h + enc_static)
    ck, k = HKDF(ck, DH(s_i, S_r))
    enc_timestamp = AEAD(k, timestamp.to_bytes(8, "big"), h)
    h = HASH(h + enc_timestamp)
    packet = header + E_i + enc_static + enc_timestamp
    packet += HMAC(HASH(b"mac1----" + S_r), packet)[:16]
    packet += HMAC(cookie, packet)[:16]

    initiator = InitiatorHandshake(
        StaticKey.from_bytes(s_i), S_r, b"icid", i_rng.randbytes, timestamp
    )
    assert initiator.initiation(cookie) == packet

    # RESPONSE
    header = b"\x50" + b"rcid" + b"icid"
    h = HASH(h + header)
    h = HASH(h + E_r)
    ck, k = HKDF(ck, DH(e_r, E_i))
    ck, k = HKDF(ck, DH(e_r, S_i))
    enc_empty = AEAD(k, b"", h)
    response = header + E_r + enc_empty
    response += HMAC(HASH(b"mac1----" + S_i), response)[:16] + bytes(16)
    t_ir, t_ri = HKDF(ck, b"")

    _info, got_response, responder = respond_untrusted(
        StaticKey.from_bytes(s_r), packet, b"rcid", r_rng.randbytes
    )
    assert got_response == response
    assert (responder.recv_secret, responder.send_secret) == (t_ir, t_ri)
    result = initiator.consume_response_untrusted(response)
    assert (result.send_secret, result.recv_secret) == (t_ir, t_ri)
