"""Frame dispatch and loss handling for an established session.

``Transmitter`` owns what happens between the session's state machine and the wire once
keys exist: opening DATA packets and handing each frame to its owner (ACKs to loss
recovery, data to the receive buffer, FEC repairs to the decoder, LOSS_REPORTs to the
encoder), returning the frames of lost packets to their owners, and the timers of loss
detection, path validation and key discard. ``Session`` decides *whether* (it owns the
state); ``Transmitter`` decides *what*.

Packing the next datagram from everything that wants to go out lives in its base class,
``PacketPacker`` (``packing.py``).
"""

from __future__ import annotations

from typing import final

from udpim.core.ackranges import AckTracker
from udpim.core.config import INITIAL_MAX_DATA_BYTES, SessionConfig
from udpim.core.events import EventQueue, MessageDelivered, MessageReceived
from udpim.core.fec import FecDecoder, FecEncoder
from udpim.core.framecodec import decode_frames_authenticated
from udpim.core.frames import (
    AckFrame,
    CloseFrame,
    CloseReason,
    DataFrame,
    FecFrame,
    Frame,
    LossReportFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    WindowFrame,
)
from udpim.core.keepalive import Keepalive
from udpim.core.owed import OwedFrames
from udpim.core.packing import PacketPacker
from udpim.core.path import PathManager
from udpim.core.protection import SessionKeys
from udpim.core.recovery import MAX_PROBES, LossRecovery, SentPacket
from udpim.core.recvbuffer import ReceiveBuffer
from udpim.core.sendbuffer import SendBuffer
from udpim.core.statistics import Counters

__all__ = ["Transmitter"]

MAX_PENDING_PATH_RESPONSES = 4
"""PATH_CHALLENGEs answered per flush at most; more are a flood and are ignored."""


@final
class Transmitter(PacketPacker):
    """Opens DATA packets, dispatches frames, and packs outgoing datagrams."""

    __slots__ = (
        "_acks",
        "_config",
        "_events",
        "_fec_baseline",
        "_fec_rx",
        "_fec_tx",
        "_keepalive",
        "_largest_received",
        "_last_gap_packet",
        "_missing",
        "_path",
        "_peer_cid",
        "_received",
        "_recv",
        "_send",
        "closing_deadline",
        "counters",
        "keys",
        "recovery",
    )

    def __init__(
        self,
        *,
        config: SessionConfig,
        recovery: LossRecovery,
        acks: AckTracker,
        send: SendBuffer,
        recv: ReceiveBuffer,
        path: PathManager,
        keepalive: Keepalive,
        events: EventQueue,
    ) -> None:
        self._config = config  # shared, not copied
        self._last_gap_packet = -1
        self.recovery = recovery
        self._acks = acks
        self._send = send
        self._recv = recv
        self._path = path
        self._keepalive = keepalive
        self._events = events
        self.keys: SessionKeys | None = None
        self._peer_cid = b""
        self._next_pn = 0
        self._largest_received: int | None = None
        # Made when something is owed, dropped once all of it went out (idle: None).
        self._pending: OwedFrames | None = None
        # Made on the peer's first LOSS_REPORT that counts a loss (``_on_loss_report``).
        self._fec_tx: FecEncoder | None = None
        self._fec_baseline: int | None = 0 if config.fec else None
        self._fec_rx: FecDecoder | None = None  # made on the peer's first FEC frame
        self._parity: FecFrame | None = None
        # The peer's packets we authenticated, those skipped and not received since, and
        # both as our last LOSS_REPORT carried them.
        self._received = 0
        self._missing = 0
        self._reported = (0, 0)
        # A window above the protocol's initial credit is advertised in the first packet.
        if config.receive_window_bytes > INITIAL_MAX_DATA_BYTES:
            self._owe().window = True
        self._raw: bytes | None = None  # the handshake response, until it is sent
        self.counters = Counters()
        self.closing_deadline = 0.0

    # --- set-up and requests from the session ----------------------------------------

    def install_keys(self, keys: SessionKeys, peer_cid: bytes) -> None:
        """Start protecting packets with ``keys``, addressed to ``peer_cid``."""
        self.keys = keys
        self._peer_cid = peer_cid

    def queue_raw(self, datagram: bytes) -> None:
        """Send ``datagram`` as is, first (the handshake response; one at a time)."""
        assert self._raw is None  # a responder queues its one response, once
        self._raw = datagram

    def queue_message(self, payload: bytes) -> int:
        """Queue an application message; see ``Session.send_message``."""
        number = self._send.push(payload)
        self.counters.messages_sent += 1
        return number

    def request_ping(self) -> None:
        """Owe one ack-eliciting packet (handshake confirmation)."""
        self._owe().ping = True

    def request_heartbeat(self) -> None:
        """Owe a heartbeat; it becomes a PING unless something else elicits an ACK."""
        self._owe().heartbeat = True

    def start_closing(self, code: CloseReason, text: str, now: float) -> None:
        """Queue the CLOSE frame and set the end of the closing period (3 PTO)."""
        pending = self._owe()
        pending.close = CloseFrame(code, text)
        pending.close_resend = True
        self.closing_deadline = now + 3 * self._pto_s()

    def fec_state(self) -> tuple[float, int]:
        """``(members per parity now, 0 when off; parities sent so far)``."""
        fec = self._fec_tx
        return (0, 0) if fec is None else (fec.group_size, fec.parities_sent)

    def buffered_bytes(self) -> tuple[int, int]:
        """``(reassembly bytes held, message bytes queued or unacknowledged)``."""
        return self._recv.buffered_bytes, self._send.buffered_bytes

    def next_message(self) -> MessageReceived | None:
        """The next received message in order, releasing its flow-control credit."""
        message = self._recv.next_message()
        if message is None:
            return None
        self.counters.messages_received += 1
        return MessageReceived(message_number=message[0], payload=message[1])

    # --- input -----------------------------------------------------------------------

    def open_untrusted(self, data: bytes, now: float) -> tuple[int, list[Frame], bool]:
        """Authenticate a DATA datagram and decode its frames.

        Returns:
            ``(packet number, frames, whether it is the largest number so far)``.

        Raises:
            BadPacket: not authentic, replayed or malformed before authentication.
            ProtocolViolation: it authenticated but its frames do not decode.
        """
        assert self.keys is not None  # ``Session`` drops DATA until keys are installed
        packet_number, plaintext = self.keys.open_untrusted(
            data, self._largest_received, now, self._pto_s()
        )
        frames = decode_frames_authenticated(plaintext)
        if self._fec_rx is not None:
            self._fec_rx.on_packet(packet_number, plaintext, now)
        largest = self._largest_received
        is_largest = largest is None or packet_number > largest
        self._received += 1
        if is_largest:
            self._missing += packet_number - (-1 if largest is None else largest) - 1
            self._largest_received = packet_number
        else:
            self._missing -= 1  # late, not lost: it was counted missing when skipped
        return packet_number, frames, is_largest

    def on_frames(self, packet_number: int, frames: list[Frame], now: float) -> CloseFrame | None:
        """Hand each frame of an authenticated packet to its owner.

        Returns:
            The peer's CLOSE frame, if the packet carried one.

        Raises:
            ProtocolViolation: a frame no honest peer sends (from the components).
        """
        eliciting = False  # by a frame other than PING
        ping = False
        close: CloseFrame | None = None
        for frame in frames:
            if isinstance(frame, DataFrame):
                eliciting = True
                self._recv.on_frame(frame)
            elif isinstance(frame, AckFrame):
                self._on_ack(frame, now)
            elif isinstance(frame, CloseFrame):
                close = frame
            elif isinstance(frame, WindowFrame):
                eliciting = True
                self._send.on_max_data(frame.max_data)
            elif isinstance(frame, PathChallengeFrame):
                eliciting = True
                responses = self._owe().path_responses
                if len(responses) < MAX_PENDING_PATH_RESPONSES:
                    responses.append(PathResponseFrame(frame.data))
            elif isinstance(frame, PathResponseFrame):
                eliciting = True
                changed = self._path.on_response(frame.data)
                if changed is not None:
                    self._events.append(changed)
            elif isinstance(frame, PingFrame):
                ping = True
            elif isinstance(frame, FecFrame):
                close = self._on_fec(frame, now) or close
            elif isinstance(frame, LossReportFrame):
                self._on_loss_report(frame)
        # A PING alone (heartbeat, probe, confirmation) is acknowledged without delay.
        self._acks.on_packet_received(
            packet_number, eliciting or ping, now, at_once=ping and not eliciting
        )
        return close

    def _on_fec(self, frame: FecFrame, now: float) -> CloseFrame | None:
        """Rebuild the lost packets ``frame`` determines and process them as received."""
        decoder = self._fec_rx
        if decoder is None:
            decoder = self._fec_rx = FecDecoder()
        keys = self.keys
        assert keys is not None  # frames are processed only once keys exist
        close: CloseFrame | None = None
        for number, plaintext in decoder.on_fec(frame, now, keys.is_missing):
            decoder.on_packet(number, plaintext, now)
            if not keys.mark_recovered(number):
                continue
            # A rebuilt packet's own FEC frames are not followed (no repair chains).
            frames: list[Frame] = [
                f for f in decode_frames_authenticated(plaintext) if not isinstance(f, FecFrame)
            ]
            self.counters.rare.packets_repaired += 1
            close = self.on_frames(number, frames, now) or close
        return close

    def _on_loss_report(self, frame: LossReportFrame) -> None:
        """Feed the peer's LOSS_REPORT to the FEC encoder, made on the first report that
        counts a loss. Until then an encoder would measure no loss and stay off, adding
        nothing to the wire, so all it would keep is the last report's ``received``,
        which the new encoder is then given first, as if it had seen that report."""
        fec = self._fec_tx
        if fec is None:
            baseline = self._fec_baseline
            if baseline is None:
                return  # FEC is off in our config
            if frame.missing == 0:
                self._fec_baseline = max(baseline, frame.received)
                return
            fec = self._fec_tx = FecEncoder()
            fec.on_loss_report(baseline, 0)
        fec.on_loss_report(frame.received, frame.missing)

    def on_packet_while_closing(self, frames: list[Frame]) -> None:
        """In CLOSING, answer the peer's packets with our CLOSE again."""
        self._owe().close_resend = True

    def _on_ack(self, frame: AckFrame, now: float) -> None:
        outcome = self.recovery.on_ack_received(frame, now)
        fec = self._fec_tx
        if fec is not None:
            for packet in outcome.acked:
                fec.forget(packet.packet_number)
        keys = self.keys
        assert keys is not None  # the ACK came in a packet these keys opened
        for packet in outcome.acked:
            keys.on_packet_acked(packet.packet_number)
            for sent in packet.frames:
                if isinstance(sent, DataFrame):
                    for number in self._send.on_frame_acked(sent):
                        self.counters.messages_delivered += 1
                        self._events.append(MessageDelivered(number))
                elif isinstance(sent, AckFrame):
                    self._acks.on_ack_of_ack(sent.largest)
        self._on_lost(outcome.lost)

    def _on_lost(self, packets: tuple[SentPacket, ...] | list[SentPacket]) -> None:
        if not packets:
            return
        rare = self.counters.rare
        rare.packets_lost += len(packets)
        fec = self._fec_tx
        for packet in packets:
            if fec is not None:
                fec.forget(packet.packet_number)  # its data goes again in a new packet
            for frame in packet.frames:
                if isinstance(frame, DataFrame):
                    rare.frames_retransmitted += 1
                    self._send.on_frame_lost(frame)
                elif isinstance(frame, WindowFrame):
                    self._owe().window = True
                elif isinstance(frame, PathChallengeFrame):
                    self._path.on_challenge_lost(frame)

    # --- time ------------------------------------------------------------------------

    def _pto_s(self) -> float:
        return self.recovery.rtt.pto_s(self._config.max_ack_delay_s)

    def pto_s(self) -> float:
        """The current probe timeout, before backoff (docs/PROTOCOL.md 7.8)."""
        return self._pto_s()

    @property
    def heartbeat_owed(self) -> bool:
        """A heartbeat was requested and has not gone out yet (the budget held it)."""
        pending = self._pending
        return pending is not None and pending.heartbeat

    def deadline(self) -> float | None:
        """Earliest of loss detection, delayed ACK, path validation and key discard. An ACK
        the path's budget cannot carry waits for the peer's bytes, not the clock (no spin)."""
        best = self.recovery.deadline()
        ack = self._acks.ack_deadline()
        if ack is not None and (best is None or ack < best) and not self._ack_blocked():
            best = ack
        for candidate in (
            self._fec_tx.deadline() if self._fec_tx is not None else None,
            self._path.deadline(),
            self.keys.deadline() if self.keys is not None else None,
        ):
            if candidate is not None and (best is None or candidate < best):
                best = candidate
        return best

    def on_timer(self, now: float) -> None:
        """Run loss detection / PTO, path validation timeout and key discard."""
        deadline = self.recovery.deadline()
        if deadline is not None and now >= deadline:
            outcome = self.recovery.on_timeout(now)
            self._on_lost(outcome.lost)
            self._probe(outcome.probes)
        self._path.on_timeout(now)
        if self._fec_tx is not None:
            # Always close an expired group (else its deadline stays in the past); a newer
            # parity replaces one still unsent.
            self._parity = self._fec_tx.on_timer(now) or self._parity
        keys = self.keys
        assert keys is not None  # timers run only in the states that have keys
        discard = keys.deadline()
        if discard is not None and now >= discard:
            keys.discard_previous()

    def on_peer_reappeared(self, now: float) -> None:
        """The peer was heard after a silence longer than a PTO or on a newly validated
        path: reset the probe backoff and probe overdue data at once (``recovery.py``).
        Each overdue packet repaired this way counts one reachability gap, lasting from
        its first send until now."""
        outcome = self.recovery.on_peer_reappeared(now)
        overdue = outcome.overdue
        if overdue is None:
            return
        self._probe(outcome.probes)
        if overdue.packet_number != self._last_gap_packet:
            self._last_gap_packet = overdue.packet_number
            self.counters.on_gap(now - overdue.time_sent)

    def _probe(self, probes: int) -> None:
        """Owe ``probes`` probes, carrying the oldest unacknowledged data: if it was lost,
        a probe repairs it one RTO sooner than waiting for the ACK would."""
        if not probes:
            return
        # Probes the path could not carry yet do not pile up across expiries.
        pending = self._owe()
        pending.probes = min(MAX_PROBES, pending.probes + probes)
        for packet in self.recovery.oldest_unacked(probes):
            for frame in packet.frames:
                if isinstance(frame, DataFrame):
                    self._send.on_frame_lost(frame)
