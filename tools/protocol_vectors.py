"""Worked examples and test vectors for docs/PROTOCOL.md, computed by running udpim's core.

What this module owns: the byte-level examples the specification shows (varints, packet
numbers, every frame type) and the full handshake test vector (keys -> INITIATION,
RESPONSE, transport secrets, packet keys, DATA packets, a COOKIE_REPLY). Each is the
output of the code itself, so the document cannot drift from the implementation;
``tools/protocol_doc.py`` pastes them between the document's generated markers.

Rules it keeps:

* Only public core APIs are called, with a scripted ``rng`` that hands out labelled
  values (``SHA-256("udpim PROTOCOL.md vector: " || label)``), so the vector is
  reproducible and every random input is printed.
* The vector is a plain ``name = hex`` list (``#`` comments, continuation lines
  indented) that tests/core/test_protocol_doc.py parses back and re-checks against the
  code from the other direction (opening what was sealed, answering what was sent).
* Anything unexpected (a drawn size that does not match, a byte that does not
  round-trip) raises ``RuntimeError``: a wrong vector is never written.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable

from udpim.core.cookies import CookieGuard, compute_mac2, open_cookie_reply_untrusted
from udpim.core.crypto import PacketOpener, PacketSealer, StaticKey, next_secret, packet_key
from udpim.core.framecodec import FrameType, decode_frames_untrusted, encode_frames, frame_size
from udpim.core.frames import (
    AckFrame,
    CloseFrame,
    CloseReason,
    DataFrame,
    FecFrame,
    Frame,
    LossReportFrame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    WindowFrame,
)
from udpim.core.handshake import InitiatorHandshake, respond_untrusted
from udpim.core.varint import decode_varint_untrusted, encode_varint
from udpim.core.wire import decode_packet_number, encode_data_header, packet_number_length

__all__ = [
    "VECTOR_ADDRESS",
    "VECTOR_TIMESTAMP_NS",
    "frame_examples",
    "handshake_vector",
    "labelled",
    "packet_number_examples",
    "varint_examples",
]

VECTOR_TIMESTAMP_NS = 1_700_000_000_000_000_000
"""The initiation timestamp of the vector (2023-11-14T22:13:20Z in nanoseconds)."""

VECTOR_ADDRESS = ("127.0.0.1", 40000)
"""The initiator's source address in the cookie part of the vector."""

_HEX_PER_LINE = 64  # 32 bytes


def labelled(label: str, size: int = 32) -> bytes:
    """The vector's value for ``label``: ``SHA-256("udpim PROTOCOL.md vector: " || label)``."""
    digest = hashlib.sha256(b"udpim PROTOCOL.md vector: " + label.encode()).digest()
    return digest[:size]


class _ScriptedRng:
    """An ``rng`` that returns the given values in order and checks their sizes."""

    def __init__(self, *values: bytes) -> None:
        self._values = list(values)

    def __call__(self, size: int) -> bytes:
        if not self._values or len(self._values[0]) != size:
            raise RuntimeError(f"unexpected rng({size}) draw")
        return self._values.pop(0)

    def check_used_up(self) -> None:
        if self._values:
            raise RuntimeError(f"{len(self._values)} scripted random values not drawn")


def _table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def varint_examples() -> str:
    """RFC 9000 appendix A.1's examples, encoded by ``varint.encode_varint``."""
    rows = []
    for value in (37, 15293, 494878333, 151288809941952652):
        encoded = encode_varint(value)
        rows.append((str(value), str(len(encoded)), f"`{encoded.hex()}`"))
    non_minimal = bytes.fromhex("4025")
    value, _ = decode_varint_untrusted(non_minimal, 0)
    rows.append((f"{value} (non-minimal, decode only)", "2", f"`{non_minimal.hex()}`"))
    return _table(("value", "bytes", "encoding"), rows)


def packet_number_examples() -> str:
    """Truncation (RFC 9000 A.2) and reconstruction (A.3) as ``wire.py`` does them."""
    rows = []
    for full, acked in ((0, None), (0xAC5C02, 0xABE8B3), (0xACE8FE, 0xABE8B3)):
        length = packet_number_length(full, acked)
        truncated = full & ((1 << (8 * length)) - 1)
        acked_text = "none" if acked is None else f"{acked:#x}"
        rows.append(
            (
                "send",
                f"pn {full:#x}, largest acked {acked_text}",
                f"{length} byte(s): `{truncated:0{2 * length}x}`",
            )
        )
    for truncated, length, largest in ((0x9B32, 2, 0xA82F30EA), (0x02, 1, 0xFF), (0xFF, 1, 0x100)):
        full = decode_packet_number(truncated, length, largest)
        rows.append(
            (
                "receive",
                f"`{truncated:0{2 * length}x}` ({length} byte(s)), largest received {largest:#x}",
                f"pn {full:#x}",
            )
        )
    return _table(("direction", "input", "result"), rows)


def _examples() -> dict[FrameType, tuple[Frame, str]]:
    return {
        FrameType.PADDING: (PaddingFrame(3), "3 bytes of padding"),
        FrameType.PING: (PingFrame(), "PING"),
        FrameType.ACK: (
            AckFrame(((95, 100), (80, 90), (10, 10)), 1000),
            "acks 95-100, 80-90, 10; delay 1000 us (sent as 125)",
        ),
        FrameType.WINDOW: (WindowFrame(4 << 20), "max_data 4194304"),
        FrameType.CLOSE: (CloseFrame(CloseReason.NORMAL, "bye"), 'NORMAL, "bye"'),
        FrameType.PATH_CHALLENGE: (
            PathChallengeFrame(bytes.fromhex("0011223344556677")),
            "data 0011223344556677",
        ),
        FrameType.PATH_RESPONSE: (
            PathResponseFrame(bytes.fromhex("0011223344556677")),
            "echoes that data",
        ),
        FrameType.DATA_FRAGMENT: (
            DataFrame(2, 10, 3000, 1000, b"\xaa\xbb\xcc\xdd"),
            "message 2 at stream offset 10, 3000 bytes long; 4 bytes at offset 1000",
        ),
        FrameType.DATA_WHOLE: (
            DataFrame(0, 0, 5, 0, b"hello"),
            'message 0 at stream offset 0: "hello"',
        ),
        FrameType.FEC: (
            FecFrame(40, 0b1011, 2, b"\x0a\x0b\x0c\x0d\x0e"),
            "repair 2 over packets 40, 41 and 43 (bitmap 0b1011)",
        ),
        FrameType.LOSS_REPORT: (LossReportFrame(300, 7), "300 packets received, 7 missing"),
    }


def frame_examples() -> str:
    """One encoded example per ``FrameType``, decoded back to check it.

    Raises:
        RuntimeError: if a frame type has no example or an example does not round-trip.
    """
    examples = _examples()
    rows = []
    for kind in FrameType:
        if kind not in examples:
            raise RuntimeError(f"no example for frame type {kind.name}")
        frame, text = examples[kind]
        encoded = encode_frames([frame])
        if encoded[0] != kind or decode_frames_untrusted(encoded) != [frame]:
            raise RuntimeError(f"example {frame!r} does not round-trip")
        if len(encoded) != frame_size(frame):
            raise RuntimeError(f"frame_size disagrees for {frame!r}")
        rows.append((f"`{kind:#04x}` {kind.name}", text, f"`{encoded.hex()}`"))
    empty = DataFrame(1, 5, 0, 0, b"")
    rows.append(
        ("`0x09` DATA_WHOLE", "empty message 1 at offset 5", f"`{encode_frames([empty]).hex()}`")
    )
    return _table(("type", "example", "bytes"), rows)


class _Lines:
    """Accumulates the ``name = hex`` lines of the vector."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def comment(self, text: str) -> None:
        self.lines.append(f"# {text}")

    def value(self, name: str, data: bytes) -> None:
        text = data.hex() or "(empty)"
        chunks = [text[i : i + _HEX_PER_LINE] for i in range(0, len(text), _HEX_PER_LINE)]
        self.lines.append(f"{name:<26}= {chunks[0]}")
        self.lines += [" " * 28 + chunk for chunk in chunks[1:]]

    def fields(self, prefix: str, packet: bytes, layout: tuple[tuple[str, int], ...]) -> None:
        position = 0
        for name, size in layout:
            self.value(f"{prefix}.{name}", packet[position : position + size])
            position += size
        if position != len(packet):
            raise RuntimeError(f"{prefix}: layout covers {position} of {len(packet)} bytes")


_INITIATION_LAYOUT = (
    ("byte0", 1),
    ("sender_cid", 4),
    ("ephemeral", 32),
    ("enc_static", 48),
    ("enc_timestamp", 24),
    ("mac1", 16),
    ("mac2", 16),
)
_RESPONSE_LAYOUT = (
    ("byte0", 1),
    ("sender_cid", 4),
    ("receiver_cid", 4),
    ("ephemeral", 32),
    ("enc_empty", 16),
    ("mac1", 16),
    ("mac2", 16),
)
_COOKIE_REPLY_LAYOUT = (("byte0", 1), ("receiver_cid", 4), ("nonce", 12), ("enc_cookie", 32))


def _data_packet(
    out: _Lines,
    name: str,
    sealer: PacketSealer,
    base_secret: bytes,
    dcid: bytes,
    packet: tuple[int, int | None, list[Frame]],
) -> None:
    """Seal one DATA packet, print it, and check that a fresh opener reads it back."""
    packet_number, largest_acked, frames = packet
    header = encode_data_header(dcid, sealer.key_phase, packet_number, largest_acked)
    plaintext = encode_frames(frames)
    datagram = header + sealer.seal(packet_number, header, plaintext)
    opener = PacketOpener(base_secret)  # follows a flipped phase to the next epoch
    opened = opener.open_untrusted(packet_number, sealer.key_phase, header, datagram[len(header) :])
    if opened != plaintext or decode_frames_untrusted(opened) != frames:
        raise RuntimeError(f"{name} does not open")
    out.value(f"{name}.header", header)
    out.value(f"{name}.plaintext", plaintext)
    out.value(f"{name}.datagram", datagram)


def handshake_vector() -> str:
    """The full test vector (a fenced block body), checked as it is built.

    Raises:
        RuntimeError: if any step does not behave as the specification says.
    """
    s_i, s_r = StaticKey.from_bytes(labelled("s_i")), StaticKey.from_bytes(labelled("s_r"))
    e_i, e_r = labelled("e_i"), labelled("e_r")
    cid_i, cid_r = labelled("initiator cid", 4), labelled("responder cid", 4)
    out = _Lines()
    out.comment('Inputs. Every value is SHA-256("udpim PROTOCOL.md vector: " || label).')
    for name, value in (("s_i", s_i.private_bytes()), ("S_i", s_i.public)):
        out.value(name, value)
    for name, value in (("s_r", s_r.private_bytes()), ("S_r", s_r.public)):
        out.value(name, value)
    out.value("e_i", e_i)
    out.value("E_i", StaticKey.from_bytes(e_i).public)
    out.value("e_r", e_r)
    out.value("E_r", StaticKey.from_bytes(e_r).public)
    out.value("initiator_cid", cid_i)
    out.value("responder_cid", cid_r)
    out.comment(f"timestamp_ns = {VECTOR_TIMESTAMP_NS}, as u64be:")
    out.value("timestamp", VECTOR_TIMESTAMP_NS.to_bytes(8, "big"))

    initiator_rng, responder_rng = _ScriptedRng(e_i), _ScriptedRng(e_r)
    attempt = InitiatorHandshake(s_i, s_r.public, cid_i, initiator_rng, VECTOR_TIMESTAMP_NS)
    initiation = attempt.initiation(None)
    info, response, responder = respond_untrusted(s_r, initiation, cid_r, responder_rng)
    initiator = attempt.consume_response_untrusted(response)
    initiator_rng.check_used_up()
    responder_rng.check_used_up()
    if (initiator.send_secret, initiator.recv_secret) != (
        responder.recv_secret,
        responder.send_secret,
    ) or info.timestamp_ns != VECTOR_TIMESTAMP_NS:
        raise RuntimeError("the two sides disagree")
    out.comment("INITIATION, 141 bytes, no cookie (mac2 = 16 zero bytes)")
    out.value("mac1_key(S_r)", hashlib.sha256(b"mac1----" + s_r.public).digest())
    out.fields("initiation", initiation, _INITIATION_LAYOUT)
    out.comment("RESPONSE, 89 bytes")
    out.value("mac1_key(S_i)", hashlib.sha256(b"mac1----" + s_i.public).digest())
    out.fields("response", response, _RESPONSE_LAYOUT)

    t_ir, t_ri = initiator.send_secret, initiator.recv_secret
    out.comment("Split: transport secrets and the derived packet keys")
    out.value("T_ir", t_ir)
    out.value("T_ri", t_ri)
    out.value("key0_ir", packet_key(t_ir))
    out.value("key0_ri", packet_key(t_ri))
    out.value("secret1_ir", next_secret(t_ir))
    out.value("key1_ir", packet_key(next_secret(t_ir)))

    sealer_ir, sealer_ri = PacketSealer(t_ir), PacketSealer(t_ri)
    out.comment('DATA i->r: pn 0, epoch 0, frames DATA(message 0, start 0, "hello")')
    hello = DataFrame(0, 0, 5, 0, b"hello")
    _data_packet(out, "data_a", sealer_ir, t_ir, cid_r, (0, None, [hello]))
    out.comment('DATA r->i: pn 0, epoch 0, frames ACK(0..0, delay 0) DATA(0, 0, "hi")')
    answer: list[Frame] = [AckFrame(((0, 0),), 0), DataFrame(0, 0, 2, 0, b"hi")]
    _data_packet(out, "data_b", sealer_ri, t_ri, cid_i, (0, None, answer))
    out.comment("DATA i->r after a key update: pn 1, epoch 1 (phase bit 1), frames ACK PING")
    sealer_ir.update()
    ping: list[Frame] = [AckFrame(((0, 0),), 0), PingFrame()]
    _data_packet(out, "data_c", sealer_ir, t_ir, cid_r, (1, 0, ping))

    _cookie_part(out, s_r.public, initiation, attempt)
    return "\n".join(out.lines) + "\n"


def _cookie_part(
    out: _Lines, responder_public: bytes, initiation: bytes, attempt: InitiatorHandshake
) -> None:
    """A COOKIE_REPLY answering the vector's INITIATION, and the mac2 the cookie gives."""
    secret, nonce = labelled("cookie secret"), labelled("cookie nonce", 12)
    rng = _ScriptedRng(secret, nonce)
    guard = CookieGuard(responder_public, rng, 120.0)
    host, port = VECTOR_ADDRESS
    ip = ipaddress.ip_address(host).packed
    address = len(ip).to_bytes(2, "big") + ip + port.to_bytes(2, "big")
    cookie = hmac.new(secret, address, hashlib.sha256).digest()[:16]
    reply = guard.make_reply(initiation, VECTOR_ADDRESS, 0.0)
    rng.check_used_up()
    if guard.cookie(VECTOR_ADDRESS, 0.0) != cookie:
        raise RuntimeError("the cookie recipe does not match cookies.py")
    if open_cookie_reply_untrusted(reply, responder_public, initiation[109:125])[1] != cookie:
        raise RuntimeError("the cookie reply does not open")
    with_cookie = attempt.initiation(cookie)
    if with_cookie[125:] != compute_mac2(cookie, initiation[:125]):
        raise RuntimeError("mac2 recipe mismatch")
    out.comment(f"Cookie round trip; the initiation came from {host}:{port}")
    out.value("cookie_secret", secret)
    out.value("address_bytes", address)
    out.value("cookie", cookie)
    out.value("cookie_key(S_r)", hashlib.sha256(b"cookie--" + responder_public).digest())
    out.fields("cookie_reply", reply, _COOKIE_REPLY_LAYOUT)
    out.comment("mac2 of an initiation whose first 125 bytes are the INITIATION's above")
    out.value("mac2", with_cookie[125:])
