"""``Endpoint``: many sessions behind one UDP socket, with one timer structure.

The endpoint demultiplexes datagrams by connection ID, answers handshakes (statelessly
with a cookie when under load), and keeps every session's deadline in one heap, so a
driver needs one receive loop and one timer loop for 100 000 sessions, not a task each.

Rules:

* Nothing is allocated for a datagram until it proves something: an initiation must
  carry a valid mac1 (the sender knows our public key) before any Diffie-Hellman, and
  under load a valid mac2 (a cookie bound to its source address) before any state.
  See ``cookies.py`` for the DoS essay.
* A replayed initiation (timestamp not newer than the last accepted from that key) is
  dropped; an initiation from a key the owner refuses (``accept_peer``) is dropped
  without an answer.
* A retried initiation (same initiator key and connection ID) does not replace the
  half-open session of the previous attempt: it is kept beside it, up to
  ``KEPT_ATTEMPTS`` per dialer. The initiator retries when a response is late, not only
  when it is lost, and accepts a response to any of its last ``KEPT_ATTEMPTS``
  initiations (``dialer.py``); replacing would strand an initiator whose round trip
  exceeds ``handshake_retry_s``. The first sibling to authenticate a packet is the
  attempt the initiator completed, and the endpoint then forgets the others.
  Initiations with another connection ID are other dials (a redial, a second session,
  another device with the same key). Half-open sessions live as long as silent
  established ones (see ``state.py``), so at most ``MAX_HALF_OPEN_PER_KEY`` are kept per
  initiator key, oldest forgotten first. Established sessions are never replaced here:
  the owner decides.
* Work is proportional to what happened: only sessions touched since the last flush are
  asked for datagrams and events; the heap holds (deadline, cid) entries (cid: the
  session's own ``local_cid`` object, not a copy) and stale ones are skipped lazily.

Theory of operation for a driver (see ``udpim.net.udp``): after every datagram or timer,
drain ``next_event()``, then send ``datagrams_to_send(now)``, then sleep until
``get_timer()``.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import final

from udpim.core.config import CookieMode, EndpointConfig
from udpim.core.cookies import CookieGuard, TimestampGuard, verify_mac1_untrusted
from udpim.core.crypto import StaticKey
from udpim.core.dialer import KEPT_ATTEMPTS
from udpim.core.errors import BadPacket, DropReason, LocalProtocolError
from udpim.core.events import Event, MessageReceived
from udpim.core.frames import CloseReason
from udpim.core.handshake import respond_untrusted
from udpim.core.session import Session
from udpim.core.state import SessionState
from udpim.core.wire import (
    CID_BYTES,
    MAX_DATAGRAM_BYTES,
    PacketType,
    decode_cookie_reply_untrusted,
    decode_response_untrusted,
    peek_packet_type_untrusted,
)

__all__ = ["MAX_HALF_OPEN_PER_KEY", "Endpoint", "EndpointStatistics"]

MAX_HALF_OPEN_PER_KEY = 2 * KEPT_ATTEMPTS
"""Unconfirmed sessions kept per initiator key: the retries of the current dial and of
one more (a redial, or a second device sharing the key); older ones are forgotten."""

Address = tuple[str, int]
Rng = Callable[[int], bytes]


@final
@dataclass(frozen=True, slots=True)
class EndpointStatistics:
    """Endpoint-wide counters: sessions, handshakes and drops before any session."""

    sessions: int
    handshakes_accepted: int
    cookie_replies_sent: int
    drops: dict[str, int]


@final
class Endpoint:
    """Demultiplexes datagrams to sessions and owns their timers.

    Args:
        config: endpoint tunables (and the sessions' ``SessionConfig``).
        static_key: our long-term identity.
        rng: randomness (``os.urandom`` in production, seeded in simulations).
        accept_peer: called with an initiator's static public key; False refuses it
            (closed hubs). Default: accept everyone (trust on first use is the
            owner's business).
    """

    def __init__(
        self,
        config: EndpointConfig,
        static_key: StaticKey,
        rng: Rng,
        *,
        accept_peer: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.config = config
        self.static_key = static_key
        self._rng = rng
        self._sessions: dict[bytes, Session] = {}
        # Half-open sessions by initiator key: (initiator cid, our cid), oldest first.
        self._half_open: dict[bytes, list[tuple[bytes, bytes]]] = {}
        self._half_open_key: dict[bytes, bytes] = {}  # our cid -> initiator key
        self._dirty: dict[bytes, None] = {}  # cids touched since the last flush (ordered set)
        self._eventful: dict[bytes, None] = {}  # cids that may have events
        # (deadline, cid): equal deadlines run in cid order, which is as replayable as
        # any (cids come from ``rng``) and costs no sequence number per entry
        self._heap: list[tuple[float, bytes]] = []
        self._scheduled: dict[bytes, float] = {}
        self._stateless: deque[tuple[bytes, Address]] = deque()
        self._cookies = CookieGuard(static_key.public, rng, config.cookie_secret_lifetime_s)
        self._admission = _Admission(accept_peer, TimestampGuard(config.max_sessions))
        self._load_window_start = 0.0
        self._load_count = 0
        self._accepted = 0
        self._cookie_replies = 0
        self._drops: dict[DropReason, int] = {}

    # --- sessions --------------------------------------------------------------------

    def connect(
        self, peer_public: bytes, address: Address, now: float, timestamp_ns: int
    ) -> Session:
        """Start a session to ``peer_public`` at ``address`` (we are the initiator).

        Args:
            peer_public: the peer's static public key (32 bytes).
            address: where to send.
            now: the current time.
            timestamp_ns: wall-clock nanoseconds, for handshake replay protection.

        Raises:
            LocalProtocolError: if the endpoint holds ``max_sessions`` already.
        """
        if len(self._sessions) >= self.config.max_sessions:
            raise LocalProtocolError("session limit reached")
        cid = self._new_cid()
        session = Session.initiate(
            config=self.config.session,
            local_key=self.static_key,
            peer_public=peer_public,
            peer_address=address,
            local_cid=cid,
            rng=self._rng,
            now=now,
            timestamp_ns=timestamp_ns,
        )
        self._sessions[cid] = session
        self._touch(cid)
        return session

    def send_message(self, session: Session, payload: bytes, now: float) -> int:
        """``session.send_message`` and remember to flush it.

        Raises:
            LocalProtocolError: see ``Session.send_message``.
        """
        number = session.send_message(payload, now)
        self._touch(session.local_cid)
        return number

    def close_session(
        self,
        session: Session,
        now: float,
        code: CloseReason = CloseReason.NORMAL,
        text: str = "",
    ) -> None:
        """``session.close`` and remember to flush it.

        Raises:
            LocalProtocolError: see ``Session.close``.
        """
        session.close(now, code, text)
        self._touch(session.local_cid)

    def touch(self, session: Session) -> None:
        """Re-read ``session``'s deadline at the next flush: call it after changing the
        session's settings directly (``set_heartbeat_interval``, ``set_liveness``)."""
        if self._sessions.get(session.local_cid) is session:
            self._touch(session.local_cid)

    def session(self, cid: bytes) -> Session | None:
        """The session that owns ``cid``, if any."""
        return self._sessions.get(cid)

    def sessions(self) -> list[Session]:
        """All sessions, in creation order."""
        return list(self._sessions.values())

    def __len__(self) -> int:
        return len(self._sessions)

    # --- input -----------------------------------------------------------------------

    def receive_datagram(self, data: bytes, address: Address, now: float) -> None:
        """Feed one datagram from the socket. Never raises for any input bytes."""
        try:
            if len(data) > MAX_DATAGRAM_BYTES:
                raise BadPacket(DropReason.OVERSIZED, f"{len(data)} bytes")
            kind = peek_packet_type_untrusted(data)
            if kind is PacketType.INITIATION:
                self._on_initiation(data, address, now)
                return
            if kind is PacketType.DATA:
                if len(data) < 1 + CID_BYTES:
                    raise BadPacket(DropReason.TRUNCATED, "DATA shorter than its header")
                cid = bytes(data[1 : 1 + CID_BYTES])
            elif kind is PacketType.RESPONSE:
                cid = decode_response_untrusted(data).receiver_cid
            else:
                cid = decode_cookie_reply_untrusted(data).receiver_cid
            session = self._sessions.get(cid)
            if session is None:
                raise BadPacket(DropReason.UNKNOWN_CONNECTION, cid.hex())
        except BadPacket as exc:
            self._drops[exc.reason] = self._drops.get(exc.reason, 0) + 1
            return
        confirming = session.state is SessionState.CONFIRMING
        session.receive_datagram(data, address, now)
        if confirming and session.state is not SessionState.CONFIRMING:
            self._on_confirmed(cid)
        self._touch(cid)

    def _on_initiation(self, data: bytes, address: Address, now: float) -> None:
        verify_mac1_untrusted(data, self.static_key.public)
        if len(self._sessions) >= self.config.max_sessions:
            raise BadPacket(DropReason.RATE_LIMITED, "session limit reached")
        if self._cookie_required(now) and not self._cookies.check_mac2(data, address, now):
            self._stateless.append((self._cookies.make_reply(data, address, now), address))
            self._cookie_replies += 1
            raise BadPacket(DropReason.COOKIE_REQUIRED, "cookie round trip")
        cid = self._new_cid()
        info, response, result = respond_untrusted(
            self.static_key, data, cid, self._rng, timestamp_guard=self._admission
        )
        session = Session.accept(
            config=self.config.session,
            result=result,
            response=response,
            local_cid=cid,
            peer_address=address,
            received_bytes=len(data),
            rng=self._rng,
            now=now,
        )
        self._sessions[cid] = session
        self._add_half_open(info.initiator_public, info.initiator_cid, cid)
        self._accepted += 1
        self._touch(cid)

    def _cookie_required(self, now: float) -> bool:
        mode = self.config.cookie_mode
        if mode is CookieMode.ALWAYS:
            return True
        if mode is CookieMode.NEVER:
            return False
        if now - self._load_window_start >= 1.0:
            self._load_window_start = now
            self._load_count = 0
        self._load_count += 1
        return self._load_count > self.config.load_threshold_handshakes

    def _add_half_open(self, key: bytes, initiator_cid: bytes, cid: bytes) -> None:
        entries = self._half_open.setdefault(key, [])
        entries.append((initiator_cid, cid))
        self._half_open_key[cid] = key
        siblings = [ours for theirs, ours in entries if theirs == initiator_cid]
        if len(siblings) > KEPT_ATTEMPTS:
            self._forget(siblings[0])  # older than any response the initiator still accepts
        elif len(entries) > MAX_HALF_OPEN_PER_KEY:
            self._forget(entries[0][1])  # an abandoned dial (the initiator redialled)

    def _on_confirmed(self, cid: bytes) -> None:
        """A half-open session authenticated a packet: its siblings will never be used."""
        key = self._half_open_key.get(cid)
        if key is None:
            return
        initiator_cid = next(theirs for theirs, ours in self._half_open[key] if ours == cid)
        for theirs, ours in list(self._half_open[key]):
            if theirs == initiator_cid and ours != cid:
                self._forget(ours)
        self._drop_half_open(cid)

    def _drop_half_open(self, cid: bytes) -> None:
        key = self._half_open_key.pop(cid, None)
        if key is None:
            return
        entries = [entry for entry in self._half_open[key] if entry[1] != cid]
        if entries:
            self._half_open[key] = entries
        else:
            del self._half_open[key]
            if not self._half_open:
                # Nothing is half-open: fresh tables, since emptied dicts keep theirs (a
                # burst of logins would otherwise leave ~74 bytes a session behind).
                self._half_open = {}
                self._half_open_key = {}

    # --- time ------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest deadline of any session, or None."""
        heap = self._heap
        while heap:
            deadline, cid = heap[0]
            if self._scheduled.get(cid) == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Run every session whose deadline has passed."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, cid = heapq.heappop(heap)
            if self._scheduled.get(cid) != deadline:
                continue
            del self._scheduled[cid]
            # Scheduled means held: only held sessions are scheduled; ``_forget`` unschedules.
            self._sessions[cid].handle_timer(now)
            self._touch(cid)

    # --- output ----------------------------------------------------------------------

    def next_event(self) -> tuple[Session, Event] | None:
        """The next event of any session, with its session, or None."""
        while self._eventful:
            cid = next(iter(self._eventful))
            session = self._sessions.get(cid)
            event = session.next_event() if session is not None else None
            if event is not None and session is not None:
                if isinstance(event, MessageReceived):
                    self._dirty[cid] = None  # credit reopened: a WINDOW may be due
                return session, event
            del self._eventful[cid]
            if not self._eventful:
                self._eventful = {}  # a drained dict keeps its table; a new one is small
            if session is not None and session.state is SessionState.CLOSED:
                self._forget(cid)
        return None

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Every datagram any touched session (or the endpoint) wants to send now."""
        out = list(self._stateless)
        self._stateless.clear()
        dirty = self._dirty
        self._dirty = {}
        for cid in dirty:
            session = self._sessions.get(cid)
            if session is None:
                continue
            out.extend(session.datagrams_to_send(now))
            self._schedule(session)
        return out

    def statistics(self) -> EndpointStatistics:
        """Endpoint-wide counters (per-session ones are in ``Session.statistics``)."""
        return EndpointStatistics(
            sessions=len(self._sessions),
            handshakes_accepted=self._accepted,
            cookie_replies_sent=self._cookie_replies,
            drops={reason.value: count for reason, count in self._drops.items()},
        )

    # --- internals -------------------------------------------------------------------

    def _touch(self, cid: bytes) -> None:
        self._dirty[cid] = None
        self._eventful[cid] = None

    def _schedule(self, session: Session) -> None:
        cid = session.local_cid  # the held key, not a copy parsed from a datagram
        deadline = session.get_timer()
        if deadline is None:
            self._scheduled.pop(cid, None)
            return
        if self._scheduled.get(cid) == deadline:
            return
        self._scheduled[cid] = deadline
        heapq.heappush(self._heap, (deadline, cid))
        if len(self._heap) > 2 * len(self._scheduled) + 64:
            # Stale entries piled up: file each deadline anew, so a long-lived hub's heap
            # stays O(sessions).
            self._heap = [(when, held) for held, when in self._scheduled.items()]
            heapq.heapify(self._heap)

    def _forget(self, cid: bytes) -> None:
        self._sessions.pop(cid, None)
        self._scheduled.pop(cid, None)
        self._dirty.pop(cid, None)
        self._eventful.pop(cid, None)
        self._drop_half_open(cid)

    def _new_cid(self) -> bytes:
        while True:
            cid = self._rng(CID_BYTES)
            if cid not in self._sessions:
                return cid


@final
class _Admission:
    """Who may complete a handshake: the owner's key policy first, then replay rejection.

    The policy runs before the timestamp guard so refused keys never occupy the guard's
    bounded memory (and cannot evict genuine initiators' replay protection).
    """

    __slots__ = ("_accept_peer", "_timestamps")

    def __init__(
        self, accept_peer: Callable[[bytes], bool] | None, timestamps: TimestampGuard
    ) -> None:
        self._accept_peer = accept_peer
        self._timestamps = timestamps

    def accept(self, initiator_public: bytes, timestamp_ns: int) -> bool:
        """True to proceed; False for a replay. Raises BadPacket(UNKNOWN_PEER) if refused."""
        if self._accept_peer is not None and not self._accept_peer(initiator_public):
            raise BadPacket(DropReason.UNKNOWN_PEER, initiator_public.hex())
        return self._timestamps.accept(initiator_public, timestamp_ns)
