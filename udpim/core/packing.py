"""Packing the next datagram: what goes into it, in which order, and sealing it.

``PacketPacker`` is the output half of ``Transmitter`` (``transmit.py``), its base class,
so a session stays one object for both halves (a helper object per session would cost
about 100 bytes on each of a hub's idle sessions). It holds the slots only this half
writes (the next packet number, the owed output, the handshake response, a parity
waiting to go, the last LOSS_REPORT sent); the annotations name the ones it reads from
``Transmitter``.

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

from udpim.core.ackranges import AckTracker
from udpim.core.config import SessionConfig
from udpim.core.fec import FEC_OVERHEAD_BYTES, FecEncoder
from udpim.core.frames import CloseFrame, DataFrame, FecFrame, Frame, LossReportFrame, PingFrame
from udpim.core.keepalive import Keepalive
from udpim.core.owed import OwedFrames
from udpim.core.path import PathManager
from udpim.core.protection import SessionKeys
from udpim.core.recovery import LossRecovery, SentPacket
from udpim.core.recvbuffer import ReceiveBuffer
from udpim.core.sendbuffer import SendBuffer
from udpim.core.statistics import Counters
from udpim.core.wire import AEAD_TAG_BYTES, encode_frames, frame_size

__all__ = ["LOSS_REPORT_EVERY", "MAX_DATAGRAMS_PER_FLUSH", "MIN_DATA_FRAME_BYTES", "PacketPacker"]

MIN_DATA_FRAME_BYTES = 32
"""Smallest room worth starting a new DATA frame in (below it, wait for the window)."""

LOSS_REPORT_EVERY = 64
"""Packets received between two LOSS_REPORTs when none went missing."""

MAX_DATAGRAMS_PER_FLUSH = 256
"""Upper bound on one ``datagrams()`` call, so one session cannot starve a driver."""


class PacketPacker:
    """Packs and seals outgoing datagrams (the output half of ``Transmitter``)."""

    __slots__ = ("_next_pn", "_parity", "_pending", "_raw", "_reported")

    # This half's own state (the slots above; ``Transmitter.__init__`` sets them).
    _next_pn: int
    _parity: FecFrame | None
    _pending: OwedFrames | None
    _raw: bytes | None
    _reported: tuple[int, int]
    # Read (and some written through) from ``Transmitter``'s slots.
    _acks: AckTracker
    _config: SessionConfig
    _fec_tx: FecEncoder | None
    _keepalive: Keepalive
    _missing: int
    _path: PathManager
    _peer_cid: bytes
    _received: int
    _recv: ReceiveBuffer
    _send: SendBuffer
    counters: Counters
    keys: SessionKeys | None
    recovery: LossRecovery

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
