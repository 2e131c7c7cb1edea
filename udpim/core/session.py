"""``Session``: one secure, reliable UDP session, as a sans-IO state machine.

This is the one object drivers touch (directly, or through ``Endpoint``). It is fed
datagrams and time, and it returns datagrams, one timer deadline and events:

    session.receive_datagram(data, address, now)     # any bytes from the network
    session.send_message(payload, now) -> int          # queue an application message
    session.close(now)
    session.set_heartbeat_interval(s); session.set_liveness(dead_s, idle_s)
    session.datagrams_to_send(now) -> [(bytes, address)]
    session.get_timer() -> float | None                # one absolute deadline
    session.handle_timer(now)
    session.next_event() -> Event | None
    session.statistics() -> SessionStatistics

Rules:

* Hostile input never raises out of ``receive_datagram``: it is dropped and counted
  under a ``DropReason`` (``statistics().drops``). Only *authenticated* input that no
  honest peer sends (``ProtocolViolation``) ends the session, with a CLOSE to the peer.
* API misuse raises ``LocalProtocolError`` and leaves the session unchanged.
* Legality of every state change is decided by ``state.next_state``; this module only
  feeds it inputs.
* Frames are retransmitted, never datagrams: each sent packet records its frames, and
  frames of lost packets go back to their owners (``SendBuffer``, ``PathManager``, the
  window) to be packed again under a new packet number. Packet numbers and message
  numbers are separate, so nonces never repeat and RTT samples are never ambiguous.
* Receiving alone produces output (acks, path responses), so the caller pulls
  ``datagrams_to_send`` after every input, after draining events.

Frame dispatch lives in ``transmit.py`` and packet assembly in ``packing.py``; the
components live in their own modules
(``recovery``, ``ackranges``, ``sendbuffer``, ``recvbuffer``, ``keepalive``, ``path``,
``protection``, ``dialer``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import final

from udpim.core.ackranges import AckTracker
from udpim.core.config import INITIAL_MAX_DATA_BYTES, MAX_MESSAGE_BYTES, SessionConfig
from udpim.core.crypto import StaticKey
from udpim.core.dialer import Dialer
from udpim.core.errors import BadPacket, DropReason, LocalProtocolError, ProtocolViolation
from udpim.core.events import (
    Event,
    EventQueue,
    PeerReachable,
    PeerUnreachable,
    SessionClosed,
    SessionEstablished,
)
from udpim.core.frames import CloseFrame, CloseReason
from udpim.core.handshake import HandshakeResult
from udpim.core.keepalive import Keepalive
from udpim.core.path import Address, PathManager
from udpim.core.protection import SessionKeys
from udpim.core.recovery import LossRecovery
from udpim.core.recvbuffer import ReceiveBuffer
from udpim.core.sendbuffer import SendBuffer
from udpim.core.state import Role, SessionInput, SessionState, next_state
from udpim.core.statistics import SessionStatistics, build_statistics
from udpim.core.transmit import Transmitter
from udpim.core.wire import MAX_CLOSE_TEXT_BYTES, PacketType, peek_packet_type_untrusted

__all__ = ["Role", "Session", "SessionStatistics"]  # Role, SessionStatistics: re-exported

Rng = Callable[[int], bytes]

_SENDING_STATES = frozenset(
    {
        SessionState.INITIATING,
        SessionState.CONFIRMING,
        SessionState.ESTABLISHED,
        SessionState.UNREACHABLE,
    }
)


@final
class Session:
    """A secure, reliable, ordered message session with one peer.

    Create one with ``Session.initiate`` (the side that knows the peer's key) or let
    ``Endpoint`` create responders with ``Session.accept``.
    """

    __slots__ = (
        "_config",
        "_dialer",
        "_events",
        "_keepalive",
        "_path",
        "_recv",
        "_rng",
        "_tx",
        "local_cid",
        "peer_public",
        "role",
        "state",
    )

    def __init__(
        self,
        *,
        config: SessionConfig,
        role: Role,
        state: SessionState,
        local_cid: bytes,
        path: PathManager,
        rng: Rng,
        now: float,
    ) -> None:
        self._config = config
        self.role = role
        self.state = state
        self.local_cid = local_cid
        self.peer_public = b""
        self._rng = rng
        self._path = path
        self._dialer: Dialer | None = None
        self._events = EventQueue()
        self._keepalive = Keepalive(config, now, heartbeats=role is Role.INITIATOR)
        self._recv = ReceiveBuffer(config.receive_window_bytes, MAX_MESSAGE_BYTES)
        self._tx = Transmitter(
            config=config,
            recovery=LossRecovery(config),
            acks=AckTracker(config),
            send=SendBuffer(config.max_message_bytes, INITIAL_MAX_DATA_BYTES),
            recv=self._recv,
            path=path,
            keepalive=self._keepalive,
            events=self._events,
        )

    # --- construction ----------------------------------------------------------------

    @classmethod
    def initiate(
        cls,
        *,
        config: SessionConfig,
        local_key: StaticKey,
        peer_public: bytes,
        peer_address: Address,
        local_cid: bytes,
        rng: Rng,
        now: float,
        timestamp_ns: int,
    ) -> Session:
        """Start a session to a peer whose static public key we know.

        The first initiation is ready in ``datagrams_to_send(now)``. Messages may be
        queued at once; they go out when the handshake completes.

        Args:
            config: session tunables.
            local_key: our static identity.
            peer_public: the responder's static public key (32 bytes).
            peer_address: where to send.
            local_cid: our connection ID (4 bytes, unique on our endpoint).
            rng: randomness (``os.urandom`` in production, seeded in simulations).
            now: the current time (seconds, any monotonic origin).
            timestamp_ns: wall-clock time in nanoseconds (handshake replay protection).
        """
        path = PathManager(
            peer_address,
            validated=True,
            received_bytes=0,
            timeout_s=config.path_validation_timeout_s,
        )
        session = cls(
            config=config,
            role=Role.INITIATOR,
            state=SessionState.INITIATING,
            local_cid=local_cid,
            path=path,
            rng=rng,
            now=now,
        )
        session.peer_public = peer_public
        session._dialer = Dialer(config, local_key, peer_public, local_cid, rng, now, timestamp_ns)
        return session

    @classmethod
    def accept(
        cls,
        *,
        config: SessionConfig,
        result: HandshakeResult,
        response: bytes,
        local_cid: bytes,
        peer_address: Address,
        received_bytes: int,
        rng: Rng,
        now: float,
    ) -> Session:
        """Create the responder's session after a valid initiation.

        Args:
            config: session tunables.
            result: the handshake's outcome (peer key, peer cid, secrets).
            response: the RESPONSE datagram to send first.
            local_cid: our connection ID.
            peer_address: where the initiation came from (not yet validated).
            received_bytes: size of the initiation (the amplification budget).
            rng: randomness.
            now: the current time.
        """
        path = PathManager(
            peer_address,
            validated=False,
            received_bytes=received_bytes,
            timeout_s=config.path_validation_timeout_s,
        )
        session = cls(
            config=config,
            role=Role.RESPONDER,
            state=SessionState.CONFIRMING,
            local_cid=local_cid,
            path=path,
            rng=rng,
            now=now,
        )
        session._install(result, now)
        session._tx.queue_raw(response)
        return session

    def _install(self, result: HandshakeResult, now: float) -> None:
        self.peer_public = result.peer_public
        keys = SessionKeys(result.send_secret, result.recv_secret, self._config, now)
        self._tx.install_keys(keys, result.peer_cid)

    # --- the application's calls -----------------------------------------------------

    @property
    def peer_address(self) -> Address:
        """Where this session currently sends."""
        return self._path.address

    def send_message(self, payload: bytes, now: float) -> int:
        """Queue ``payload`` for reliable, ordered, exactly-once delivery.

        Returns:
            The message number; ``MessageDelivered(number)`` follows once the peer
            acknowledged every fragment.

        Raises:
            LocalProtocolError: if the session is closing or closed, or the message
                is larger than ``max_message_bytes``.
        """
        if self.state not in _SENDING_STATES:
            raise LocalProtocolError(f"cannot send in state {self.state.value!r}")
        return self._tx.queue_message(payload)

    def close(self, now: float, code: CloseReason = CloseReason.NORMAL, text: str = "") -> None:
        """Close the session, telling the peer why (authenticated CLOSE).

        ``text`` goes to the peer cut to 255 UTF-8 bytes at a character boundary.

        Raises:
            LocalProtocolError: if the session is already closing or closed.
        """
        self._advance(SessionInput.APP_CLOSE)
        self._closed(code, text, by_peer=False, now=now)

    def set_heartbeat_interval(self, interval_s: float) -> None:
        """Change the heartbeat interval (adaptive keepalive); see ``Keepalive``.

        A driver behind an ``Endpoint`` calls ``Endpoint.touch`` afterwards, so the new
        deadline is taken into account.

        Raises:
            ValueError: if the interval is not positive.
        """
        self._keepalive.set_heartbeat_interval(interval_s)

    def set_liveness(self, dead_peer_timeout_s: float, idle_timeout_s: float) -> None:
        """Change the dead-peer and idle timeouts (docs/PROTOCOL.md 8.1), e.g. when the
        peer announced a longer heartbeat interval, so it is not declared unreachable
        between two heartbeats. Both count from the last authenticated packet; a session
        already unreachable stays so until the peer is heard. A driver behind an
        ``Endpoint`` calls ``Endpoint.touch`` afterwards.

        Raises:
            ValueError: if either timeout is not positive (nothing is changed).
        """
        self._keepalive.set_liveness(dead_peer_timeout_s, idle_timeout_s)

    def silent_for_s(self, now: float) -> float:
        """Seconds since the last authenticated packet from the peer (or since creation)."""
        return self._keepalive.silent_for_s(now)

    # --- input -----------------------------------------------------------------------

    def receive_datagram(self, data: bytes, address: Address, now: float) -> None:
        """Feed one datagram from ``address``. Never raises for any input bytes."""
        # Handshake replies matter only while initiating (not after close() or a timeout).
        dialer = self._dialer if self.state is SessionState.INITIATING else None
        try:
            kind = peek_packet_type_untrusted(data)
            if kind is PacketType.DATA:
                self._receive_data(data, address, now)
            elif kind is PacketType.RESPONSE and dialer is not None:
                self._receive_response(dialer, data, now)
            elif kind is PacketType.COOKIE_REPLY and dialer is not None:
                dialer.on_cookie_reply_untrusted(data, now)
                self._advance(SessionInput.COOKIE_RECEIVED)
            else:
                raise BadPacket(DropReason.UNEXPECTED, f"{kind.name} in {self.state.value}")
        except BadPacket as exc:
            self._tx.counters.drop(exc.reason)
        except ProtocolViolation as exc:
            self._violation(exc, now)

    def _receive_response(self, dialer: Dialer, data: bytes, now: float) -> None:
        result = dialer.on_response_untrusted(data)
        self._advance(SessionInput.RESPONSE_RECEIVED)
        self._dialer = None
        self._keepalive.on_authenticated(now)
        self._install(result, now)
        self._events.append(SessionEstablished(peer_static_key=result.peer_public))
        # Confirm the handshake to the responder even if we have no data to send.
        self._tx.request_ping()

    def _receive_data(self, data: bytes, address: Address, now: float) -> None:
        if self.state in (SessionState.INITIATING, SessionState.CLOSED):
            raise BadPacket(DropReason.UNEXPECTED, f"DATA in {self.state.value}")
        packet_number, frames, is_largest = self._tx.open_untrusted(data, now)
        # The peer re-appears if it was silent for longer than a PTO (docs/PROTOCOL.md 7.8).
        reappeared = now - self._keepalive.last_received > self._tx.pto_s()
        self._keepalive.on_authenticated(now)
        self._tx.counters.on_received(len(data))
        before = self.state
        self._advance(SessionInput.PACKET_AUTHENTICATED)
        if before is SessionState.CONFIRMING and self.role is Role.RESPONDER:
            # The initiator got our response: its address is proven, unless this packet
            # came from elsewhere (then the path logic below validates the new one).
            if address == self._path.address:
                self._path.mark_validated()
            self._events.append(SessionEstablished(peer_static_key=self.peer_public))
        elif before is SessionState.UNREACHABLE:
            self._events.append(PeerReachable())
        self._path.on_authenticated(
            address, len(data), is_largest=is_largest, now=now, rng=self._rng
        )
        if self.state is SessionState.CLOSING:
            self._tx.on_packet_while_closing(frames)
            if any(isinstance(frame, CloseFrame) for frame in frames):
                self._advance(SessionInput.PEER_CLOSED)
            return
        migrations = self._path.migrations
        closed = self._tx.on_frames(packet_number, frames, now)
        if closed is None and (reappeared or self._path.migrations != migrations):
            self._tx.on_peer_reappeared(now)
        if closed is not None:
            self._advance(SessionInput.PEER_CLOSED)
            self._drain_messages()
            self._events.append(SessionClosed(closed.code, closed.text, by_peer=True))

    # --- time ------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The one absolute deadline at which ``handle_timer`` must be called, if any."""
        state = self.state
        if state is SessionState.CLOSED:
            return None
        if state is SessionState.INITIATING:
            assert self._dialer is not None
            return self._dialer.deadline()
        if state is SessionState.CLOSING:
            return self._tx.closing_deadline
        deadline = self._keepalive.idle_deadline()
        if state is SessionState.ESTABLISHED:
            deadline = min(deadline, self._keepalive.dead_peer_deadline())
        # A heartbeat already owed waits for room on the path, not for the clock.
        if state is not SessionState.CONFIRMING and not self._tx.heartbeat_owed:
            heartbeat = self._keepalive.heartbeat_deadline()
            if heartbeat is not None:
                deadline = min(deadline, heartbeat)
        other = self._tx.deadline()
        return deadline if other is None else min(deadline, other)

    def handle_timer(self, now: float) -> None:
        """Act on every deadline that has passed by ``now``. Safe to call early."""
        state = self.state
        if state is SessionState.CLOSED:
            return
        if state is SessionState.INITIATING:
            assert self._dialer is not None
            if self._dialer.timed_out(now):
                self._advance(SessionInput.HANDSHAKE_TIMEOUT)
                self._closed(CloseReason.HANDSHAKE_TIMEOUT, "", by_peer=False, now=now)
            return
        if state is SessionState.CLOSING:
            if now >= self._tx.closing_deadline:
                self._advance(SessionInput.CLOSING_DONE)
            return
        if now >= self._keepalive.idle_deadline():
            self._advance(SessionInput.IDLE_TIMEOUT)
            if state is not SessionState.CONFIRMING or self.role is Role.INITIATOR:
                self._closed(CloseReason.IDLE_TIMEOUT, "", by_peer=False, now=now)
            return  # a responder never announced a half-open session: it ends quietly
        if state is SessionState.ESTABLISHED and now >= self._keepalive.dead_peer_deadline():
            self._advance(SessionInput.DEAD_PEER_TIMEOUT)
            self._events.append(PeerUnreachable(silent_for_s=self._keepalive.silent_for_s(now)))
        heartbeat = self._keepalive.heartbeat_deadline()
        if state is not SessionState.CONFIRMING and heartbeat is not None and now >= heartbeat:
            self._tx.request_heartbeat()
        self._tx.on_timer(now)

    # --- output ----------------------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Every datagram that should go out now, with its destination."""
        if self._dialer is not None:
            if self.state is SessionState.INITIATING and self._dialer.initiation_due(now):
                return [(self._dialer.next_initiation(now), self._path.address)]
            return []
        if self.state is SessionState.CLOSED:
            return []
        # A responder sends nothing but its response until the initiator confirms.
        confirmed = self.state is not SessionState.CONFIRMING or self.role is Role.INITIATOR
        return self._tx.datagrams(now, confirmed=confirmed)

    def next_event(self) -> Event | None:
        """The next event, or None. Received messages are handed out in order here, and
        the flow-control window reopens only as the application takes them."""
        if self._events:
            return self._events.popleft()
        if self.state in (SessionState.ESTABLISHED, SessionState.UNREACHABLE):
            return self._tx.next_message()
        return None

    def statistics(self) -> SessionStatistics:
        """A snapshot of counters and estimates (see ``SessionStatistics``)."""
        return build_statistics(self.state, self.role, self._path, self._keepalive, self._tx)

    # --- internals -------------------------------------------------------------------

    def _advance(self, event: SessionInput) -> None:
        self.state = next_state(self.state, event)

    def _closed(self, code: CloseReason, text: str, *, by_peer: bool, now: float) -> None:
        """Entered CLOSING or CLOSED: report it once, and queue a CLOSE if closing."""
        if self.state is SessionState.CLOSING:
            self._tx.start_closing(code, _close_frame_text(text), now)
        self._drain_messages()
        self._events.append(SessionClosed(code, text, by_peer=by_peer))

    def _drain_messages(self) -> None:
        while (message := self._tx.next_message()) is not None:
            self._events.append(message)

    def _violation(self, exc: ProtocolViolation, now: float) -> None:
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        self._advance(SessionInput.VIOLATION)
        self._closed(exc.code, exc.detail, by_peer=False, now=now)


def _close_frame_text(text: str) -> str:
    """``text`` as a CLOSE frame can carry it: at most ``MAX_CLOSE_TEXT_BYTES`` of UTF-8,
    cut at a character boundary (characters UTF-8 cannot encode, such as lone
    surrogates, become "?"). The local ``SessionClosed`` keeps the whole text."""
    encoded = text.encode("utf-8", "replace")
    return encoded[:MAX_CLOSE_TEXT_BYTES].decode("utf-8", "ignore")
