"""Packet assembly and frame dispatch for an established session.

``Transmitter`` owns what happens between the session's state machine and the wire once
keys exist: opening DATA packets and handing each frame to its owner, and packing the
next datagram from everything that wants to go out. ``Session`` decides *whether* (it
owns the state); this module decides *what* and *in which order*.

Packing order of one datagram (docs/PROTOCOL.md "Packing"):

1. an ACK, when one is pending and either due now or the packet goes out anyway;
2. control frames: PATH_RESPONSEs, a PATH_CHALLENGE, a WINDOW update;
3. message data: retransmissions first, then new fragments, while the congestion
   window allows (probes, heartbeats and the first confirmation may exceed it);
4. a PING if the packet must elicit an acknowledgement (probe, heartbeat,
   confirmation) and carries nothing else that does;
5. when a forward-error-correction group closes (``fec.py``), its parity, alone in a
   packet of its own that is neither ack-eliciting nor recorded.

A packet that elicits an acknowledgement is recorded with the frames it carried; frames
of packets declared lost go back to their owners. ACK-only packets are not recorded:
losing one costs nothing, the next ACK repeats its ranges.
"""

from __future__ import annotations

from typing import final

from udpim.core.ackranges import AckTracker
from udpim.core.config import INITIAL_MAX_DATA_BYTES, SessionConfig
from udpim.core.events import EventQueue, MessageDelivered, MessageReceived
from udpim.core.fec import FEC_OVERHEAD_BYTES, FecDecoder, FecEncoder
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
from udpim.core.path import PathManager
from udpim.core.protection import SessionKeys
from udpim.core.recovery import MAX_PROBES, LossRecovery, SentPacket
from udpim.core.recvbuffer import ReceiveBuffer
from udpim.core.sendbuffer import SendBuffer
from udpim.core.statistics import Counters
from udpim.core.wire import AEAD_TAG_BYTES, encode_frames, frame_size

__all__ = ["Transmitter"]

MAX_PENDING_PATH_RESPONSES = 4
"""PATH_CHALLENGEs answered per flush at most; more are a flood and are ignored."""

MIN_DATA_FRAME_BYTES = 32
"""Smallest room worth starting a new DATA frame in (below it, wait for the window)."""

LOSS_REPORT_EVERY = 64
"""Packets received between two LOSS_REPORTs when none went missing."""

MAX_DATAGRAMS_PER_FLUSH = 256
"""Upper bound on one ``datagrams()`` call, so one session cannot starve a driver."""


@final
class Transmitter:
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
        "_next_pn",
        "_parity",
        "_path",
        "_peer_cid",
        "_pending",
        "_raw",
        "_received",
        "_recv",
        "_reported",
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

    # --- output ----------------------------------------------------------------------

    def datagrams(self, now: float, *, confirmed: bool) -> list[tuple[bytes, tuple[str, int]]]:
        """Everything that should go out now (see the module docstring)."""
        out: list[tuple[bytes, tuple[str, int]]] = []
        raw = self._raw
        if raw is not None:
            self._account(raw, now)
            out.append((raw, self._path.address))
            self._raw = None
        if self.keys is None or not confirmed:
            return out
        pending = self._pending
        if pending is not None and pending.close is not None:
            close = pending.close
            if pending.close_resend:
                # Within the path's budget, without text if need be, else at the next packet.
                room = self._room()
                if frame_size(close) > room:
                    close = CloseFrame(close.code, "")
                if frame_size(close) <= room:
                    pending.close_resend = False
                    out.append((self._seal([close], now), self._path.address))
            return out
        while len(out) < MAX_DATAGRAMS_PER_FLUSH:
            self._send_parity(out, now)
            built = self._build(now)
            if built is None:
                break
            out.append((built, self._path.address))
        self._send_parity(out, now)
        pending = self._pending
        if pending is not None and pending.settled:
            self._pending = None  # nothing owed is left: an idle session keeps no record
        return out

    def _send_parity(self, out: list[tuple[bytes, tuple[str, int]]], now: float) -> None:
        """Send a closed FEC group's parity (alone, not ack-eliciting) on a validated path."""
        parity, self._parity = self._parity, None
        if parity is not None and self._path.send_budget() is None:
            out.append((self._seal([parity], now), self._path.address))

    def _build(self, now: float) -> bytes | None:
        pending = self._pending
        ack_deadline = self._acks.ack_deadline()
        ack_due = ack_deadline is not None and ack_deadline <= now
        owes_control = (
            pending is not None or self._path.challenge_owed or self._recv.window_update_due
        )
        if not (owes_control or ack_due or self._send.pending):
            return None  # the idle case (and every flush's last call), before any sizing
        overhead = self._overhead()
        room = self._room(overhead)
        if room <= 0:
            return None
        forced = pending is not None and (pending.probes > 0 or pending.ping or pending.heartbeat)
        # New data fills what the congestion window admits (a probe may exceed it): a
        # packet need not be full-size to go out, so small messages are not held back
        # waiting for room for 1200 bytes.
        data_room = room if forced else min(room, self.recovery.window_room() - overhead)
        data_ok = self._send.pending and data_room >= MIN_DATA_FRAME_BYTES
        control = self._control_frames(room) if owes_control else []
        if not (control or forced or data_ok or ack_due):
            return None
        room -= sum(frame_size(frame) for frame in control)
        frames: list[Frame] = []
        head = b""  # the ACK (and LOSS_REPORT) encoded once: sized by it, sealed with it
        if ack_deadline is not None:
            report = LossReportFrame(self._received, self._missing) if self._report_due() else None
            reserved = 0 if report is None else frame_size(report)
            ack = self._acks.build_ack(now, max_bytes=room - reserved)
            if ack is not None:
                frames.append(ack)
                if report is not None:  # it rides with an ACK
                    frames.append(report)
                    self._reported = (report.received, report.missing)
                head = encode_frames(frames)
                room -= len(head)
        leading = len(frames)
        frames += control
        eliciting = bool(control)
        data_room = min(data_room, room)
        while data_ok and data_room > 0:
            data = self._send.next_frame(data_room)
            if data is None:
                break
            frames.append(data)
            room -= frame_size(data)
            data_room -= frame_size(data)
            eliciting = True
        if forced and not eliciting and room > 0:
            frames.append(PingFrame())
            eliciting = True
        if not frames:
            return None
        if eliciting and pending is not None:
            if pending.probes > 0:
                pending.probes -= 1
                self.counters.rare.probes_sent += 1
            if pending.heartbeat:
                pending.heartbeat = False
                self._keepalive.on_heartbeat_sent(now)
            pending.ping = False
        plaintext = head + encode_frames(frames[leading:]) if head else encode_frames(frames)
        return self._seal_plaintext(frames, plaintext, now, ack_eliciting=eliciting)

    def _report_due(self) -> bool:
        """A LOSS_REPORT rides with an ACK when packets went missing since the last one,
        or every ``LOSS_REPORT_EVERY`` packets received."""
        received, missing = self._reported
        return self._missing != missing or self._received - received >= LOSS_REPORT_EVERY

    def _ack_blocked(self) -> bool:
        """The path's budget cannot carry the pending ACK: it waits for the peer's bytes."""
        if self.keys is None or self._path.send_budget() is None:
            return False
        size = self._acks.pending_ack_bytes()
        return size is not None and size > self._room()

    def _room(self, overhead: int | None = None) -> int:
        """Frame bytes that fit in the next datagram (header, tag and budget deducted);
        ``overhead`` is ``_overhead()`` when the caller has it already."""
        limit = self._config.max_datagram_bytes
        budget = self._path.send_budget()
        if budget is not None:
            limit = min(limit, budget)
        if self._fec_tx is not None and self._fec_tx.active:
            limit -= FEC_OVERHEAD_BYTES  # a parity must fit a datagram too
        return limit - (self._overhead() if overhead is None else overhead)

    def _overhead(self) -> int:
        """Bytes of the next datagram that are not frames: its header and AEAD tag."""
        assert self.keys is not None
        header = self.keys.header_bytes(self._peer_cid, self._next_pn, self.recovery.largest_acked)
        return header + AEAD_TAG_BYTES

    def _control_frames(self, room: int) -> list[Frame]:
        return self._owe().control_frames(room, self._path, self._recv)

    def _owe(self) -> OwedFrames:
        """The record of output owed, made when the first thing is owed."""
        pending = self._pending
        if pending is None:
            pending = self._pending = OwedFrames()
        return pending

    def _seal(self, frames: list[Frame], now: float, *, ack_eliciting: bool = False) -> bytes:
        return self._seal_plaintext(frames, encode_frames(frames), now, ack_eliciting=ack_eliciting)

    def _seal_plaintext(
        self, frames: list[Frame], plaintext: bytes, now: float, *, ack_eliciting: bool
    ) -> bytes:
        """Seal ``plaintext``, the encoding of ``frames``, as the next packet."""
        assert self.keys is not None
        packet_number = self._next_pn
        self._next_pn += 1
        datagram = self.keys.seal(
            self._peer_cid, packet_number, self.recovery.largest_acked, plaintext, now
        )
        self.recovery.on_packet_number_used(packet_number)
        if ack_eliciting:
            self.recovery.on_packet_sent(
                SentPacket(packet_number, now, len(datagram), True, True, tuple(frames))
            )
            fec = self._fec_tx
            if fec is not None and any(type(frame) is DataFrame for frame in frames):
                self._parity = fec.on_data_packet(packet_number, plaintext, now) or self._parity
        self._account(datagram, now)
        return datagram

    def _account(self, datagram: bytes, now: float) -> None:
        self._path.on_sent(len(datagram))
        self._keepalive.on_sent(now)
        self.counters.on_sent(len(datagram))
