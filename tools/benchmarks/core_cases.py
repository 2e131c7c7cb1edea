"""The cases of ``tools/bench core``: one datagram through udpim's sans-IO core, and the AEAD.

What it owns: the work each case does per datagram, as functions ``run(count)`` that do
it ``count`` times (``PacketCases``), and the two-endpoint session loop
(``SessionPair``, ``session_round``). ``core`` times them and reports; this module only
defines the work.

The cases, all on the same packet (an ACK frame and one whole 200-byte DATA frame, the
shape of a chat message with a piggybacked acknowledgement):

* ``aead_seal`` / ``aead_open``: the baseline. Raw ``ChaCha20Poly1305`` (cryptography)
  encrypt / decrypt of a plaintext of exactly that packet's frame bytes, with the
  packet's header as associated data: the floor any encrypted framing pays.
* ``encode`` / ``decode``: the codec alone (header and frames, no AEAD).
* ``seal``: what the sender does per datagram: encode the header and the frames, and
  seal them (``PacketSealer.seal``: nonce from the packet number, AEAD).
* ``open``: what the receiver does: decode the header, reconstruct the packet number,
  authenticate and decrypt (``PacketOpener.open_untrusted``) and decode the frames.
* ``session``: two ``Endpoint``s (a client and a hub, after their handshake) in a pure
  loop exchanging 200-byte messages, half each way, every datagram delivered at once and
  in order under a virtual clock: both sides' whole per-datagram work (sealing, opening,
  acks, loss recovery bookkeeping, timers, events) plus this loop's own small share
  (about 4 % under cProfile).

Rules it keeps: no sockets, no clock but ``time.perf_counter`` in ``session_round``, and
seeded randomness, so every round does the same work. The addresses below are labels in
the pure loop; nothing is bound or sent.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from udpim.core.config import CookieMode, EndpointConfig
from udpim.core.crypto import PacketOpener, PacketSealer, StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import MessageReceived, SessionEstablished
from udpim.core.frames import AckFrame, DataFrame, Frame
from udpim.core.session import Session
from udpim.core.wire import (
    decode_data_header_untrusted,
    decode_frames_untrusted,
    decode_packet_number,
    encode_data_header,
    encode_frames,
)

__all__ = [
    "PAYLOAD_BYTES",
    "PacketCases",
    "SessionPair",
    "SessionRound",
    "sample_frames",
    "session_round",
]

PAYLOAD_BYTES: Final = 200
"""The message body of every case, the size of a chat message."""
DCID: Final = b"\x0a\x0b\x0c\x0d"
SECRET: Final = bytes(range(32))
CLIENT_ADDRESS: Final = ("127.0.0.1", 40001)
HUB_ADDRESS: Final = ("127.0.0.1", 40002)
STEP_S: Final = 0.001
"""Virtual time between two messages in the session loop."""
SEALED_COPIES: Final = 2048
"""Distinct sealed packets ``open`` cycles through (increasing packet numbers)."""


def sample_frames(number: int) -> list[Frame]:
    """The frames of the benchmark packet: an ACK and one whole 200-byte message."""
    ack = AckFrame(((number - 40, number - 2),), 800)
    data = DataFrame(number, number * PAYLOAD_BYTES, PAYLOAD_BYTES, 0, bytes(PAYLOAD_BYTES))
    return [ack, data]


class PacketCases:
    """The per-packet cases: each method does its case's work ``count`` times."""

    def __init__(self) -> None:
        self.frames = sample_frames(1000)
        self.plaintext = encode_frames(self.frames)
        self.header = encode_data_header(DCID, 0, 1000, 990)
        self.aead = ChaCha20Poly1305(bytes(32))
        self.sealer = PacketSealer(SECRET)
        self.opener = PacketOpener(SECRET)
        self.next_pn = 1
        self.sealed = [self._seal_one(pn) for pn in range(1, SEALED_COPIES + 1)]

    @property
    def datagram_bytes(self) -> int:
        """The size of the sealed datagram (header, frames, AEAD tag)."""
        return len(self.sealed[999])

    def runners(self) -> dict[str, Callable[[int], None]]:
        """Every case by name, in the order they run within a round."""
        return {
            "aead_seal": self.aead_seal,
            "aead_open": self.aead_open,
            "encode": self.encode,
            "decode": self.decode,
            "seal": self.seal,
            "open": self.open,
        }

    def _seal_one(self, pn: int) -> bytes:
        header = encode_data_header(DCID, 0, pn, pn - 1 if pn > 1 else None)
        return header + PacketSealer(SECRET).seal(pn, header, self.plaintext)

    def aead_seal(self, count: int) -> None:
        """Raw ChaCha20-Poly1305 encryption of the packet's plaintext (the baseline)."""
        encrypt, plaintext, header = self.aead.encrypt, self.plaintext, self.header
        for pn in range(count):
            encrypt(pn.to_bytes(12, "big"), plaintext, header)

    def aead_open(self, count: int) -> None:
        """Raw ChaCha20-Poly1305 decryption of the packet's ciphertext (the baseline)."""
        nonce = (1000).to_bytes(12, "big")
        ciphertext = self.aead.encrypt(nonce, self.plaintext, self.header)
        decrypt, header = self.aead.decrypt, self.header
        for _ in range(count):
            decrypt(nonce, ciphertext, header)

    def encode(self, count: int) -> None:
        """Header and frames encoded, no AEAD."""
        frames = self.frames
        for pn in range(1000, 1000 + count):
            encode_data_header(DCID, 0, pn, pn - 10)
            encode_frames(frames)

    def decode(self, count: int) -> None:
        """Header decoded, packet number reconstructed, frames decoded; no AEAD."""
        datagram = self.sealed[999]
        for _ in range(count):
            header = decode_data_header_untrusted(datagram)
            decode_packet_number(header.truncated_pn, header.pn_length, 998)
            decode_frames_untrusted(self.plaintext)

    def seal(self, count: int) -> None:
        """The sender's work per datagram: encode and seal, fresh packet numbers."""
        frames, sealer = self.frames, self.sealer
        for pn in range(self.next_pn, self.next_pn + count):
            header = encode_data_header(DCID, sealer.key_phase, pn, pn - 10 if pn > 10 else None)
            _datagram = header + sealer.seal(pn, header, encode_frames(frames))
        self.next_pn += count

    def open(self, count: int) -> None:
        """The receiver's work per datagram: decode, authenticate, decrypt, decode frames."""
        opener, sealed = self.opener, self.sealed
        for i in range(count):
            datagram = sealed[i % len(sealed)]
            header = decode_data_header_untrusted(datagram)
            size = len(header.header)
            largest = i % len(sealed)  # the packet before this one
            pn = decode_packet_number(header.truncated_pn, header.pn_length, largest or None)
            plaintext = opener.open_untrusted(pn, header.key_phase, header.header, datagram[size:])
            decode_frames_untrusted(plaintext)


class SessionPair:
    """A client and a hub endpoint, established, in a pure delivery loop."""

    def __init__(self, seed: int) -> None:
        """Make both endpoints and complete the handshake (untimed).

        Raises:
            RuntimeError: the handshake did not complete.
        """
        rng = random.Random(seed)
        config = EndpointConfig(cookie_mode=CookieMode.NEVER)
        hub_key = StaticKey.generate(rng.randbytes)
        self.client = Endpoint(config, StaticKey.generate(rng.randbytes), rng.randbytes)
        self.hub = Endpoint(config, hub_key, rng.randbytes)
        self.now = 0.0
        self.datagrams = 0
        self.received = 0
        self.client_session = self.client.connect(hub_key.public, HUB_ADDRESS, self.now, 1)
        self.hub_session: Session | None = None
        self.pump()
        if self.hub_session is None:
            raise RuntimeError("the handshake did not complete")

    def pump(self) -> None:
        """Deliver datagrams both ways until neither side has anything to send."""
        client, hub, now = self.client, self.hub, self.now
        for endpoint in (client, hub):
            deadline = endpoint.get_timer()
            if deadline is not None and deadline <= now:
                endpoint.handle_timer(now)
        while True:
            self._drain_events()
            to_hub = client.datagrams_to_send(now)
            to_client = hub.datagrams_to_send(now)
            if not to_hub and not to_client:
                return
            self.datagrams += len(to_hub) + len(to_client)
            for data, _address in to_hub:
                hub.receive_datagram(data, CLIENT_ADDRESS, now)
            for data, _address in to_client:
                client.receive_datagram(data, HUB_ADDRESS, now)

    def _drain_events(self) -> None:
        for endpoint in (self.client, self.hub):
            while (item := endpoint.next_event()) is not None:
                session, event = item
                if isinstance(event, MessageReceived):
                    self.received += 1
                elif isinstance(event, SessionEstablished) and endpoint is self.hub:
                    self.hub_session = session

    def exchange(self, messages: int) -> None:
        """Send ``messages`` 200-byte messages, alternating client->hub and hub->client."""
        hub_session = self.hub_session
        assert hub_session is not None  # the constructor checked
        payload = bytes(PAYLOAD_BYTES)
        for i in range(messages):
            self.now += STEP_S
            if i % 2:
                self.hub.send_message(hub_session, payload, self.now)
            else:
                self.client.send_message(self.client_session, payload, self.now)
            self.pump()


@dataclass(frozen=True, slots=True)
class SessionRound:
    """One timed session loop."""

    us_per_datagram: float
    messages_per_s: float
    datagrams_per_message: float


def session_round(messages: int, seed: int) -> SessionRound:
    """Time the session loop once over ``messages``; the handshake is not timed.

    Raises:
        RuntimeError: the handshake failed or a message did not arrive.
    """
    pair = SessionPair(seed)
    datagrams_before = pair.datagrams
    started = time.perf_counter()
    pair.exchange(messages)
    elapsed_s = time.perf_counter() - started
    datagrams = pair.datagrams - datagrams_before
    if pair.received != messages:
        raise RuntimeError(f"{pair.received} of {messages} messages arrived")
    return SessionRound(elapsed_s * 1e6 / datagrams, messages / elapsed_s, datagrams / messages)
