"""PeerCore: a daemon's IM state machine (hello, outbox, inbox, receipts, presence).

Sans-IO: inputs are the shell's session events, user commands and store results;
outputs are ``Action`` lists executed in order (``udpim.im.actions``).

Rules (docs/IM.md):

* Nothing is said to the hub before the durable state is loaded (``LoadPeerState``);
  the first frame of every session is ``hello``; nothing but ``welcome``/``refused`` is
  accepted before ``welcome``.
* ``send()`` returns the new id and emits ``EnqueueOutbox``; the ``send`` frame goes
  out only after that commit, in outbox order (``Outbox``). After every welcome the
  queued outbox is transmitted again, in order.
* A ``deliver`` is stored (``StoreInbox``, which dedupes by (from, id)) before it is
  acked; acks are cumulative, in seq order, on the session the delivers came on.
  ``MessageArrived`` is reported only for messages new to the inbox.
* State changes are reported (``OutboxChanged``) only after they are on disk; a
  ``receipt_ack`` goes out only after ``delivered`` is on disk.
* The keepalive the shell set (``set_keepalive``) is announced after every welcome and
  whenever it changes; ``nat_probe`` requests go out only while welcomed (docs/IM.md 16).

Theory: each connection gets a generation number; store results that belong to an
older connection still update the disk-derived state but never send on the new one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, cast, final

from udpim.core.errors import LocalProtocolError
from udpim.im.actions import Action, Close, Notify, Send, Store
from udpim.im.contacts import WatchList
from udpim.im.events import (
    MessageArrived,
    OutboxChanged,
    PresenceChanged,
    Refused,
    StateLoaded,
    StoreFailed,
    Welcomed,
)
from udpim.im.inboxacks import AckTracker
from udpim.im.ops import (
    EnqueueOutbox,
    LoadPeerState,
    OutboxState,
    PeerState,
    PinHubKey,
    SetOutboxState,
    StoreInbox,
)
from udpim.im.outbox import Outbox
from udpim.im.peerrecords import (
    ConnectionPhase,
    Enqueueing,
    LoadingState,
    Marking,
    PeerPending,
    PinningKey,
    StoringInbox,
)
from udpim.im.pending import PendingOps
from udpim.im.protocol import (
    MAX_PROBE_DELAY_MS,
    AcceptedFrame,
    AckFrame,
    BadFrame,
    DeliverFrame,
    Frame,
    HelloFrame,
    KeepaliveFrame,
    NatProbeFrame,
    PresenceFrame,
    ReceiptAckFrame,
    ReceiptFrame,
    RefusedFrame,
    RejectedFrame,
    SendFrame,
    UnknownFrame,
    WatchFrame,
    WelcomeFrame,
    decode_frame_untrusted,
    encode_frame,
    valid_body,
    valid_user_name,
)

__all__ = ["DEFAULT_ACK_EVERY", "DEFAULT_SEND_WINDOW", "ConnectionPhase", "PeerCore"]

DEFAULT_SEND_WINDOW: Final = 256
"""Most ``send`` frames transmitted and not yet accepted per connection."""
DEFAULT_ACK_EVERY: Final = 16
"""Ack at least every this many stored delivers (and whenever none is left pending)."""
MESSAGE_ID_BYTES: Final = 12
DEVICE_ID_BYTES: Final = 8


@final
class PeerCore:
    """The daemon's IM state machine for user ``user``.

    Args:
        user: our user name (``[a-z0-9_.-]{1,32}``).
        rng: randomness for message and device ids (``os.urandom`` in production).
        send_window: most unaccepted ``send`` frames in flight per connection.
        ack_every: ack at least every this many stored delivers.

    Raises:
        LocalProtocolError: ``user`` is not a valid user name.
    """

    def __init__(
        self,
        *,
        user: str,
        rng: Callable[[int], bytes],
        send_window: int = DEFAULT_SEND_WINDOW,
        ack_every: int = DEFAULT_ACK_EVERY,
    ) -> None:
        if not valid_user_name(user):
            raise LocalProtocolError(f"bad user name {user!r}")
        self._user = user
        self._rng = rng
        self._started = False
        self._loaded = False
        self._device: str | None = None
        self._hub_key: bytes | None = None
        self._last_seq = 0
        self._sid: bytes | None = None
        self._phase = ConnectionPhase.DISCONNECTED
        self._connection = 0
        self._outbox = Outbox(window=send_window)
        self._acks = AckTracker(every=ack_every)
        self._delivering: set[str] = set()  # ids whose ``delivered`` write is pending
        self._presence: dict[str, bool] = {}
        self._watching = WatchList(user)
        self._pending: PendingOps[PeerPending] = PendingOps()
        self._keepalive: KeepaliveFrame | None = None
        self._unknown_frames = 0

    # ------------------------------------------------------------------ properties

    @property
    def device(self) -> str | None:
        """This daemon's device id, once the state is loaded."""
        return self._device

    @property
    def hub_key(self) -> bytes | None:
        """The pinned hub key (None until loaded, or before the first pin)."""
        return self._hub_key

    @property
    def phase(self) -> ConnectionPhase:
        """The current connection's phase."""
        return self._phase

    @property
    def unknown_frames(self) -> int:
        """Frames from the hub of a type this version does not know, ignored (docs/IM.md
        section 3)."""
        return self._unknown_frames

    # ------------------------------------------------------------------ commands

    def start(self) -> list[Action]:
        """Begin: load the durable state (a fresh data dir gets a new random device id).

        Raises:
            LocalProtocolError: called twice.
        """
        if self._started:
            raise LocalProtocolError("PeerCore already started")
        self._started = True
        return [
            self._pending.submit(LoadPeerState(self._rng(DEVICE_ID_BYTES).hex()), LoadingState())
        ]

    def send(self, to: str, body: str, now_ms: int) -> tuple[str, list[Action]]:
        """Queue a message for ``to``; it goes out once it is on disk.

        Args:
            to: the recipient's user name.
            body: the text (at most 64 KiB of UTF-8).
            now_ms: our wall clock, unix ms (the message's ``sent_at``).

        Returns:
            The new message id (24 hex chars) and the actions (``EnqueueOutbox`` first).
            ``OutboxChanged(id, to, queued)`` is reported once the enqueue committed.

        Raises:
            LocalProtocolError: bad user name or body, or ``start()`` not called.
        """
        if not self._started:
            raise LocalProtocolError("PeerCore.send before start()")
        if not valid_user_name(to):
            raise LocalProtocolError(f"bad user name {to!r}")
        if not valid_body(body):
            raise LocalProtocolError("message body must be text of at most 64 KiB UTF-8")
        message_id = self._rng(MESSAGE_ID_BYTES).hex()
        while message_id in self._outbox:
            message_id = self._rng(MESSAGE_ID_BYTES).hex()
        self._outbox.add(message_id, to, body, now_ms)
        op = EnqueueOutbox(message_id, to, body, now_ms)
        actions: list[Action] = [self._pending.submit(op, Enqueueing(message_id))]
        return message_id, actions + self._add_contacts([to])

    def watch(self, users: Iterable[str]) -> list[Action]:
        """Follow the presence of ``users`` (replaces the previous explicit list).

        Correspondents (recipients of our sends, senders of our deliveries) are
        followed too, up to ``MAX_WATCH_USERS`` names in all.

        Raises:
            LocalProtocolError: a bad user name.
        """
        names = list(dict.fromkeys(users))
        for name in names:
            if not valid_user_name(name):
                raise LocalProtocolError(f"bad user name {name!r}")
        self._watching.set_explicit(names)
        return self._send_watch()

    def pin_hub_key(self, key: bytes) -> list[Action]:
        """Record ``key`` as the hub's key (trust on first use by the shell)."""
        self._hub_key = key
        return [self._pending.submit(PinHubKey(key), PinningKey())]

    def set_keepalive(self, interval_s: float, nat_timeout_s: float | None) -> list[Action]:
        """Announce our heartbeat interval (and the learned NAT timeout, if known) to the
        hub now if welcomed, and after every later welcome.

        Raises:
            LocalProtocolError: the interval is not positive.
        """
        if not interval_s > 0:
            raise LocalProtocolError(f"heartbeat interval must be positive, not {interval_s}")
        nat_timeout_ms = round(nat_timeout_s * 1000) if nat_timeout_s else 0
        frame = KeepaliveFrame(max(1, round(interval_s * 1000)), nat_timeout_ms)
        if frame == self._keepalive:
            return []
        self._keepalive = frame
        return self._send_keepalive()

    def request_nat_probe(self, token: bytes, delay_s: float) -> list[Action]:
        """Ask the hub to echo ``token`` (8 bytes) in ``delay_s`` (``nat_probe``).

        Returns:
            The ``Send``, or nothing when not welcomed (the request is not queued: the
            shell retries the test once welcomed again).

        Raises:
            LocalProtocolError: a token that is not 8 bytes, or a delay out of range.
        """
        delay_ms = round(delay_s * 1000)
        if len(token) != 8 or not 0 <= delay_ms <= MAX_PROBE_DELAY_MS:
            raise LocalProtocolError("a NAT probe needs an 8-byte token and a delay of 0..900 s")
        if self._phase is not ConnectionPhase.WELCOMED or self._sid is None:
            return []
        return [Send(self._sid, encode_frame(NatProbeFrame(token.hex(), delay_ms)))]

    def status(self) -> dict[str, object]:
        """A snapshot for ``udpim status`` (JSON-ready values only)."""
        return {
            "user": self._user,
            "device": self._device,
            "state_loaded": self._loaded,
            "connection": self._phase.value,
            "connected": self._phase is not ConnectionPhase.DISCONNECTED,
            "welcomed": self._phase is ConnectionPhase.WELCOMED,
            "hub_key": self._hub_key.hex() if self._hub_key is not None else None,
            "outbox": self._outbox.counts(),
            "last_seq": self._last_seq,
            "presence": dict(sorted(self._presence.items())),
            "watching": self._watching.users(),
        }

    # ------------------------------------------------------------------ session events

    def on_connected(self, sid: bytes) -> list[Action]:
        """A session to the hub (local connection ID ``sid``) is established."""
        self._sid = sid
        self._connection += 1
        self._acks.reset()
        self._presence.clear()
        if not self._loaded:
            self._phase = ConnectionPhase.AWAITING_STATE
            return []
        return self._hello()

    def on_disconnected(self, sid: bytes) -> list[Action]:
        """The session ``sid`` ended (closed, refused or given up)."""
        if sid != self._sid:
            return []
        self._sid = None
        self._phase = ConnectionPhase.DISCONNECTED
        self._presence.clear()
        return []

    def on_message(self, sid: bytes, payload: bytes, now_ms: int) -> list[Action]:
        """One session message from the hub (``now_ms``: our wall clock, unix ms)."""
        if sid != self._sid or self._phase is ConnectionPhase.DISCONNECTED:
            return []
        try:
            frame = decode_frame_untrusted(payload)
        except UnknownFrame:  # a later version's frame type: ignored, in any phase
            self._unknown_frames += 1
            return []
        except BadFrame as exc:
            return [Close(sid, f"bad frame: {exc}")]
        if self._phase is not ConnectionPhase.WELCOMED:
            if isinstance(frame, WelcomeFrame) and self._phase is ConnectionPhase.HELLO_SENT:
                return self._on_welcome(sid, frame)
            if isinstance(frame, RefusedFrame):
                return [Notify(Refused(frame.reason))]
            return [Close(sid, "frame before welcome")]
        return self._dispatch(sid, frame, now_ms)

    def _dispatch(self, sid: bytes, frame: Frame, now_ms: int) -> list[Action]:
        if isinstance(frame, DeliverFrame):
            return self._on_deliver(sid, frame, now_ms)
        if isinstance(frame, AcceptedFrame):
            return self._on_accepted(frame)
        if isinstance(frame, ReceiptFrame):
            return self._on_receipt(sid, frame)
        if isinstance(frame, RejectedFrame):
            item = self._outbox.finish(frame.id, OutboxState.REJECTED)
            if item is None:
                return []
            return [self._mark(item.id, item.to, OutboxState.REJECTED, reason=frame.reason)]
        if isinstance(frame, PresenceFrame):
            self._presence[frame.user] = frame.online
            return [Notify(PresenceChanged(frame.user, frame.online))]
        if isinstance(frame, RefusedFrame):
            return [Notify(Refused(frame.reason))]
        return [Close(sid, f"unexpected frame {type(frame).__name__}")]

    # ------------------------------------------------------------------ store results

    def on_store_result(self, token: int, result: object) -> list[Action]:
        """The op submitted with ``token`` committed with ``result`` (unknown tokens: ignored)."""
        record = self._pending.pop(token)
        if isinstance(record, LoadingState):
            return self._on_loaded(cast(PeerState, result))
        if isinstance(record, Enqueueing):
            item = self._outbox.mark_durable(record.message_id)
            if item is None:
                return []
            changed = OutboxChanged(item.id, item.to, OutboxState.QUEUED)
            return [Notify(changed), *self._transmit()]
        if isinstance(record, Marking):
            return self._on_marked(record)
        if isinstance(record, StoringInbox):
            return self._on_inbox_stored(record, new=bool(result))
        return []

    def on_store_error(self, token: int, error: Exception) -> list[Action]:
        """The op submitted with ``token`` failed; nothing of it was written.

        A failed load leaves the core unable to connect (the shell should stop). A failed
        enqueue drops that message (never transmitted). A failed inbox write closes the
        session so the hub redelivers. A failed state write is retried by the protocol
        (the hub repeats ``accepted`` and ``receipt`` on later sessions).
        """
        record = self._pending.pop(token)
        if record is None:
            return []
        actions: list[Action] = [Notify(StoreFailed(type(record).__name__, str(error)))]
        if isinstance(record, Enqueueing):
            self._outbox.discard(record.message_id)
        elif isinstance(record, Marking):
            self._delivering.discard(record.message_id)
        elif (
            isinstance(record, StoringInbox)
            and record.connection == self._connection
            and self._sid is not None
        ):
            actions.append(Close(self._sid, "inbox store failure"))
        return actions

    # ------------------------------------------------------------------ internals

    def _on_loaded(self, state: PeerState) -> list[Action]:
        self._loaded = True
        self._device = state.device
        if self._hub_key is None:
            self._hub_key = state.hub_key
        self._last_seq = max(self._last_seq, state.last_seq)
        self._outbox.load(state.outbox)
        self._watching.add_contacts(self._outbox.recipients())
        loaded = StateLoaded(state.device, self._hub_key, state.last_seq)
        actions: list[Action] = [Notify(loaded)]
        if self._phase is ConnectionPhase.AWAITING_STATE:
            actions += self._hello()
        return actions

    def _hello(self) -> list[Action]:
        assert self._sid is not None
        assert self._device is not None
        self._phase = ConnectionPhase.HELLO_SENT
        return [Send(self._sid, encode_frame(HelloFrame(self._user, self._device)))]

    def _on_welcome(self, sid: bytes, frame: WelcomeFrame) -> list[Action]:
        if frame.user != self._user or frame.device != self._device:
            return [Close(sid, "welcome does not match our hello")]
        self._phase = ConnectionPhase.WELCOMED
        self._outbox.restart(self._connection)
        actions: list[Action] = [Notify(Welcomed(frame.user, frame.device, frame.hub_time))]
        return actions + self._send_keepalive() + self._send_watch() + self._transmit()

    def _send_keepalive(self) -> list[Action]:
        if self._phase is not ConnectionPhase.WELCOMED or self._sid is None:
            return []
        if self._keepalive is None:
            return []
        return [Send(self._sid, encode_frame(self._keepalive))]

    def _transmit(self) -> list[Action]:
        if self._phase is not ConnectionPhase.WELCOMED or self._sid is None:
            return []
        sid = self._sid
        return [
            Send(sid, encode_frame(SendFrame(item.id, item.to, item.body, item.sent_at)))
            for item in self._outbox.take_sendable()
        ]

    def _send_watch(self) -> list[Action]:
        if self._phase is not ConnectionPhase.WELCOMED or self._sid is None:
            return []
        users = self._watching.users()
        if not users:
            return []
        return [Send(self._sid, encode_frame(WatchFrame(tuple(users))))]

    def _add_contacts(self, users: Iterable[str]) -> list[Action]:
        return self._send_watch() if self._watching.add_contacts(users) else []

    def _mark(
        self, message_id: str, to: str, state: OutboxState, at: int | None = None, reason: str = ""
    ) -> Store:
        op = SetOutboxState(message_id, state)
        return self._pending.submit(op, Marking(message_id, to, state, at, reason))

    def _on_accepted(self, frame: AcceptedFrame) -> list[Action]:
        item = self._outbox.on_accepted(frame.id)
        if item is None:
            return []
        return [self._mark(item.id, item.to, OutboxState.ACCEPTED), *self._transmit()]

    def _on_receipt(self, sid: bytes, frame: ReceiptFrame) -> list[Action]:
        if frame.id in self._delivering:
            return []  # its write is pending; the receipt_ack follows its commit
        item = self._outbox.finish(frame.id, OutboxState.DELIVERED)
        if item is None:  # already delivered (or never ours): nothing left to store
            return [Send(sid, encode_frame(ReceiptAckFrame(frame.id)))]
        self._delivering.add(frame.id)
        mark = self._mark(item.id, frame.to, OutboxState.DELIVERED, at=frame.at)
        return [mark, *self._transmit()]

    def _on_marked(self, record: Marking) -> list[Action]:
        changed = OutboxChanged(
            record.message_id, record.to, record.state, record.at, record.reason
        )
        actions: list[Action] = [Notify(changed)]
        if record.state is OutboxState.DELIVERED:
            self._delivering.discard(record.message_id)
            if self._phase is ConnectionPhase.WELCOMED and self._sid is not None:
                ack = ReceiptAckFrame(record.message_id)
                actions.append(Send(self._sid, encode_frame(ack)))
        return actions

    def _on_deliver(self, sid: bytes, frame: DeliverFrame, now_ms: int) -> list[Action]:
        if frame.to != self._user:
            return [Close(sid, "deliver for another user")]
        arrived = MessageArrived(
            frame.seq, frame.id, frame.sender, frame.to, frame.body, frame.sent_at, now_ms
        )
        op = StoreInbox(
            frame.seq, frame.id, frame.sender, frame.to, frame.body, frame.sent_at, now_ms
        )
        slot = self._acks.received(frame.seq)
        record = StoringInbox(self._connection, slot, arrived)
        return [self._pending.submit(op, record), *self._add_contacts([frame.sender])]

    def _on_inbox_stored(self, record: StoringInbox, *, new: bool) -> list[Action]:
        arrived = record.arrived
        self._last_seq = max(self._last_seq, arrived.seq)
        actions: list[Action] = [Notify(arrived)] if new else []
        if record.connection != self._connection or self._sid is None:
            return actions
        seq = self._acks.committed(record.slot)
        if seq is not None and self._phase is ConnectionPhase.WELCOMED:
            actions.append(Send(self._sid, encode_frame(AckFrame(seq))))
        return actions
