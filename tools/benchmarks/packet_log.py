"""Decrypting a benchmark's capture: every DATA packet of both directions, with its fate.

What it owns: ``decrypt_capture`` and the values it returns (``LoggedPacket``,
``PacketLog``). It turns the two ``CapturingSocket`` records of a ``UdpimPair`` into the
frames each packet carried, when it left, and when (if ever) the other side received it:
the raw material of the tail-latency profile (``tail_profile``). A qlog from a pcap,
made possible because the benchmark owns both ends.

Rules it keeps:

* Only udpim's public API: ``handshake.respond_untrusted`` rebuilds the server's half
  of the handshake from the captured INITIATION, replaying the server's recorded
  32-byte random draws as its ephemeral key; the draw whose RESPONSE equals the
  captured RESPONSE byte for byte is the one the server used (self-checking: a wrong
  guess cannot produce the same bytes). Its ``HandshakeResult`` holds both directions'
  secrets; ``PacketOpener`` and the wire decoders do the rest.
* A datagram's fate is read from the receiver's capture: the proxy neither corrupts nor
  duplicates in this grid, so a sent datagram arrived iff the same bytes were received.
* Datagrams that are not DATA, or that no recovered key opens, are counted in
  ``undecrypted`` and otherwise skipped; nothing here raises for captured bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from tools.benchmarks.capture import CapturingSocket, Datagram, RecordingRng
from udpim.core.crypto import KEY_BYTES, PacketOpener, StaticKey
from udpim.core.errors import BadPacket, LocalProtocolError
from udpim.core.frames import Frame
from udpim.core.handshake import HandshakeResult, respond_untrusted
from udpim.core.wire import (
    PacketType,
    decode_data_header_untrusted,
    decode_frames_untrusted,
    decode_initiation_untrusted,
    decode_packet_number,
    decode_response_untrusted,
    peek_packet_type_untrusted,
)

__all__ = ["LoggedPacket", "PacketLog", "decrypt_capture"]


@dataclass(frozen=True, slots=True)
class LoggedPacket:
    """One DATA packet as it went over the link.

    Attributes:
        sent_at: Trio time the sender handed it to its socket.
        arrived_at: Trio time the receiver's socket returned it; None if it was lost.
        packet_number: its full packet number.
        size_bytes: the datagram's size (UDP payload).
        frames: what it carried.
    """

    sent_at: float
    arrived_at: float | None
    packet_number: int
    size_bytes: int
    frames: tuple[Frame, ...]


@dataclass(frozen=True, slots=True)
class PacketLog:
    """Both directions of one session, in send order.

    Attributes:
        up: client -> server DATA packets.
        down: server -> client DATA packets.
        undecrypted: captured datagrams that are not DATA or that no key opened.
    """

    up: tuple[LoggedPacket, ...]
    down: tuple[LoggedPacket, ...]
    undecrypted: int


def _of_type(datagrams: Iterable[Datagram], kind: PacketType) -> list[bytes]:
    found = []
    for _, data in datagrams:
        try:
            if peek_packet_type_untrusted(data) is kind:
                found.append(data)
        except BadPacket:
            continue
    return found


def _replay(draw: bytes) -> Callable[[int], bytes]:
    """An rng that answers its one call with ``draw``."""

    def rng(count: int) -> bytes:
        return draw[:count]

    return rng


def recover_secrets(
    server: CapturingSocket, server_key: StaticKey, server_rng: RecordingRng
) -> dict[bytes, HandshakeResult]:
    """The server's handshake results, by the server's connection ID.

    Args:
        server: the server's capture (INITIATIONs received, RESPONSEs sent).
        server_key: the server's static key.
        server_rng: the server's generator, with its draws.

    Returns:
        One result per RESPONSE the server sent that could be rebuilt.
    """
    initiations: dict[bytes, list[bytes]] = {}
    for data in _of_type(server.received, PacketType.INITIATION):
        initiations.setdefault(decode_initiation_untrusted(data).sender_cid, []).append(data)
    draws = [draw for draw in server_rng.draws if len(draw) == KEY_BYTES]
    results: dict[bytes, HandshakeResult] = {}
    for response in _of_type(server.sent, PacketType.RESPONSE):
        fields = decode_response_untrusted(response)
        for initiation in initiations.get(fields.receiver_cid, []):
            for draw in draws:
                try:
                    _, rebuilt, result = respond_untrusted(
                        server_key, initiation, fields.sender_cid, _replay(draw)
                    )
                except (BadPacket, LocalProtocolError):
                    continue
                if rebuilt == response:
                    results[fields.sender_cid] = result
    return results


def _open_all(
    sent: Sequence[Datagram], received: Sequence[Datagram], secrets: dict[bytes, bytes]
) -> tuple[list[LoggedPacket], int]:
    """Decrypt the DATA datagrams of ``sent`` with the secret of their destination cid."""
    arrivals: dict[bytes, float] = {}
    for at, data in received:
        arrivals.setdefault(data, at)
    openers = {cid: PacketOpener(secret) for cid, secret in secrets.items()}
    largest: dict[bytes, int] = {}
    packets: list[LoggedPacket] = []
    skipped = 0
    for sent_at, data in sent:
        try:
            header = decode_data_header_untrusted(data)
        except BadPacket:  # a handshake packet
            skipped += 1
            continue
        opener = openers.get(header.dcid)
        if opener is None:  # a session whose handshake was not recovered
            skipped += 1
            continue
        try:
            number = decode_packet_number(
                header.truncated_pn, header.pn_length, largest.get(header.dcid)
            )
            plaintext = opener.open_untrusted(
                number, header.key_phase, header.header, data[len(header.header) :]
            )
            frames = tuple(decode_frames_untrusted(plaintext))
        except BadPacket:
            skipped += 1
            continue
        largest[header.dcid] = max(number, largest.get(header.dcid, -1))
        packets.append(LoggedPacket(sent_at, arrivals.get(data), number, len(data), frames))
    return packets, skipped


def decrypt_capture(
    client: CapturingSocket,
    server: CapturingSocket,
    server_key: StaticKey,
    server_rng: RecordingRng,
) -> PacketLog:
    """Decrypt both directions of a captured pair.

    Args:
        client: the client's capture.
        server: the server's capture.
        server_key: the server's static key.
        server_rng: the server's recording generator.

    Returns:
        Every DATA packet both ways, with its fate and frames.
    """
    results = recover_secrets(server, server_key, server_rng)
    up_secrets = {cid: result.recv_secret for cid, result in results.items()}
    down_secrets = {result.peer_cid: result.send_secret for result in results.values()}
    up, up_skipped = _open_all(client.sent, server.received, up_secrets)
    down, down_skipped = _open_all(server.sent, client.received, down_secrets)
    return PacketLog(tuple(up), tuple(down), up_skipped + down_skipped)
