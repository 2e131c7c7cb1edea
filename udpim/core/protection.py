"""One session's packet protection: sealing, opening, anti-replay and key updates.

Rules (docs/PROTOCOL.md "Keys"):

* Each direction has its own secret from the handshake. The nonce of every DATA packet
  is its packet number, and packet numbers are never reused, so a (key, nonce) pair is
  never used twice.
* Anti-replay: a packet number is checked against the sliding window *before*
  decryption (cheap rejection) and marked *after* authentication, so forged packets
  cannot poison the window.
* Key updates (rekeying without interrupting delivery): each side moves its *send*
  direction to the next key epoch on its own schedule, after ``rekey_after_s`` or
  ``rekey_after_packets`` packets, whichever comes first, and only once a packet sent in
  the current epoch has been acknowledged (so the peer has seen the current phase and
  can derive the next key). The phase bit in the header tells the receiver. Packet
  numbers, in-flight data and message streams are untouched: delivery never pauses.
* The receiver keeps the previous key for late, reordered packets until
  ``3 x PTO`` after it first saw the new phase, then forgets it (forward secrecy per
  epoch: old traffic cannot be decrypted with a later key).
"""

from __future__ import annotations

from typing import final

from udpim.core.config import SessionConfig
from udpim.core.crypto import PacketOpener, PacketSealer, ReplayWindow
from udpim.core.errors import BadPacket, DropReason
from udpim.core.wire import (
    decode_data_header_untrusted,
    decode_packet_number,
    encode_data_header,
    packet_number_length,
)

__all__ = ["SessionKeys"]


@final
class SessionKeys:
    """Seal and open a session's DATA packets.

    Args:
        send_secret: the handshake's secret for packets we send.
        recv_secret: the handshake's secret for packets we receive.
        config: supplies the rekey thresholds and the replay window size.
        now: when the keys were installed.
    """

    __slots__ = (
        "_config",
        "_discard_at",
        "_epoch_acked",
        "_epoch_first_pn",
        "_epoch_packets",
        "_epoch_started",
        "_opener",
        "_replay",
        "_sealer",
    )

    def __init__(
        self, send_secret: bytes, recv_secret: bytes, config: SessionConfig, now: float
    ) -> None:
        self._sealer = PacketSealer(send_secret)
        self._opener = PacketOpener(recv_secret)
        self._replay = ReplayWindow(config.replay_window_packets)
        self._config = config  # shared, not copied: the rekey thresholds
        self._epoch_started = now
        self._epoch_packets = 0
        self._epoch_first_pn = 0
        self._epoch_acked = False
        self._discard_at: float | None = None

    @property
    def key_updates_sent(self) -> int:
        """Key updates of our send direction so far."""
        return self._sealer.epoch

    @property
    def key_updates_received(self) -> int:
        """Key updates of the peer's send direction we followed so far."""
        return self._opener.epoch

    def seal(
        self,
        dcid: bytes,
        packet_number: int,
        largest_acked: int | None,
        plaintext: bytes,
        now: float,
    ) -> bytes:
        """Return the whole DATA datagram carrying ``plaintext``.

        Moves the send direction to the next key epoch first when it is due.
        """
        config = self._config
        if self._epoch_acked and (
            now - self._epoch_started >= config.rekey_after_s
            or self._epoch_packets >= config.rekey_after_packets
        ):
            self._sealer.update()
            self._epoch_started = now
            self._epoch_packets = 0
            self._epoch_first_pn = packet_number
            self._epoch_acked = False
        header = encode_data_header(dcid, self._sealer.key_phase, packet_number, largest_acked)
        self._epoch_packets += 1
        return header + self._sealer.seal(packet_number, header, plaintext)

    def header_bytes(self, dcid: bytes, packet_number: int, largest_acked: int | None) -> int:
        """Size of the header ``seal`` would write for this packet number: first byte,
        ``dcid`` and the truncated packet number (counted, not encoded: packet sizing asks
        several times per datagram)."""
        return 1 + len(dcid) + packet_number_length(packet_number, largest_acked)

    def on_packet_acked(self, packet_number: int) -> None:
        """A packet we sent was acknowledged: the peer can follow our next update."""
        if packet_number >= self._epoch_first_pn:
            self._epoch_acked = True

    def open_untrusted(
        self, data: bytes, largest_received: int | None, now: float, pto_s: float
    ) -> tuple[int, bytes]:
        """Authenticate and decrypt a DATA datagram.

        Args:
            data: the datagram.
            largest_received: the largest packet number authenticated so far.
            now: the current time.
            pto_s: the current probe timeout, to time out the previous key.

        Returns:
            ``(packet number, plaintext frames)``.

        Raises:
            BadPacket: TRUNCATED/MALFORMED header, REPLAYED, or DECRYPT_FAILED.
        """
        if self._discard_at is not None and now >= self._discard_at:
            self.discard_previous()
        header = decode_data_header_untrusted(data)
        packet_number = decode_packet_number(
            header.truncated_pn, header.pn_length, largest_received
        )
        if not self._replay.check(packet_number):
            raise BadPacket(DropReason.REPLAYED, f"packet {packet_number}")
        phase = self._opener.key_phase
        plaintext = self._opener.open_untrusted(
            packet_number, header.key_phase, header.header, data[len(header.header) :]
        )
        self._replay.mark(packet_number)
        if self._opener.key_phase != phase:
            self._discard_at = now + 3 * pto_s
        return packet_number, plaintext

    def is_missing(self, packet_number: int) -> bool:
        """Whether a packet could still be received: never seen, and not too old for the
        replay window (FEC solves only for these)."""
        return self._replay.check(packet_number)

    def mark_recovered(self, packet_number: int) -> bool:
        """Record a packet rebuilt by FEC as received; False if it already was (or is too
        old for the replay window), in which case it must not be processed again."""
        if not self._replay.check(packet_number):
            return False
        self._replay.mark(packet_number)
        return True

    def deadline(self) -> float | None:
        """When the previous receive key should be forgotten, if one is kept."""
        return self._discard_at

    def discard_previous(self) -> None:
        """Forget the previous receive key now."""
        self._opener.discard_previous()
        self._discard_at = None
