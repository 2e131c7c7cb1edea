"""HubCore: the hub's IM state machine (accounts, routing, mailboxes, receipts, presence).

Sans-IO: inputs are session events and store results, outputs are ``Action`` lists the
shell executes in order (``udpim.im.actions``). Nothing here blocks, reads a clock or
touches a disk.

Rules (docs/IM.md):

* The user of a session is the hub's own conclusion from the authenticated static key
  and the hello, never client input: ``from`` of every stored message is that user.
* Accounts: a name is bound to the first key that says hello with it (trust on first
  use), unless the hub is closed; then only pre-registered (name, key) pairs get in.
  Until ``LoadAccounts`` answers, hellos are held (closed hubs refuse handshakes). A
  hello the book would refuse is judged again with the name's stored keys, and a
  closed hub that refused a handshake key re-reads the accounts when the shell next
  calls ``reload_accounts``: accounts added while the hub runs are honoured
  (``hubaccounts``).
* ``accepted`` goes out only after ``StoreMessage`` committed; a duplicate (sender, id)
  is answered ``accepted`` again and never stored or pushed twice.
* Each welcomed device session is fed its user's mailbox from its durable cursor, in seq
  order, with a bounded number of unacked pushes (``MailboxFeed``).
* A device's ``ack`` advances its cursor (``AckMailbox``); receipts the store creates are
  pushed to the sending device if connected, else on its next welcome.
* Store results may come back long after later inputs, or for sessions that have ended:
  each result names its session record, and applies only while that record is live.
* ``keepalive`` sets the session's liveness (``udpim.im.liveness``) and ``nat_probe``
  asks the shell's echo scheduler for an echo (docs/IM.md section 16); neither touches
  the store, and both are accepted only once welcomed.

Theory: ``on_message`` decodes, checks the session phase, and dispatches on the frame
type; every store op gets a token and a record (``hubsession``) saying what to do with
its result. Presence lives in ``PresenceBoard``, mailbox pacing in ``MailboxFeed``.
"""

from __future__ import annotations

from typing import Final, cast, final

from udpim.im.accounts import Admission
from udpim.im.actions import Action, Close, Notify, ScheduleEcho, Send
from udpim.im.events import (
    AccountBound,
    PresenceChanged,
    SessionRefused,
    SessionWelcomed,
    StoreFailed,
)
from udpim.im.hubaccounts import HubAccounts
from udpim.im.hubrouting import Router
from udpim.im.hubsession import (
    Acking,
    BindingAccount,
    CheckingAccount,
    DeletingReceipt,
    HubCounters,
    HubSession,
    HubStatistics,
    LoadingAccounts,
    LoadingPage,
    LoadingReceipts,
    PendingOp,
    ReloadingAccounts,
    SessionPhase,
    StoringMessage,
    TouchingDevice,
)
from udpim.im.liveness import liveness_for
from udpim.im.ops import Delivery, ReceiptDue, TouchDevice
from udpim.im.pending import PendingOps
from udpim.im.presence import PresenceBoard
from udpim.im.protocol import (
    PROTOCOL_VERSION,
    AckFrame,
    BadFrame,
    HelloFrame,
    KeepaliveFrame,
    NatProbeFrame,
    PresenceFrame,
    ReceiptAckFrame,
    RefusedFrame,
    RejectedFrame,
    SendFrame,
    UnknownFrame,
    WatchFrame,
    WelcomeFrame,
    decode_frame_untrusted,
    encode_frame,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PUSH_WINDOW",
    "DEFAULT_PUSH_WINDOW_BYTES",
    "HubCore",
    "HubStatistics",
]

DEFAULT_PUSH_WINDOW: Final = 256
"""Most ``deliver`` frames pushed to one session and not yet acked."""
DEFAULT_PUSH_WINDOW_BYTES: Final = 1 << 20
"""Stop pushing to a session once its unacked bodies reach about this many chars."""
DEFAULT_PAGE_SIZE: Final = 64
"""Mailbox entries per ``LoadMailbox``."""
DEFAULT_IDLE_TIMEOUT_S: Final = 600.0
"""The session idle timeout a ``keepalive`` never lowers (SessionConfig's default)."""

REASON_TAKEN: Final = "user name belongs to another key"
REASON_UNKNOWN_USER: Final = "unknown user"
REASON_VERSION: Final = "unsupported protocol version"
REASON_REPLACED: Final = "replaced by a newer session of this device"
REASON_STORE: Final = "hub store failure"


@final
class HubCore:
    """The hub's IM state machine.

    Args:
        closed: only pre-registered users may log in (and ``accept_key`` refuses others).
        push_window: most unacked ``deliver`` frames per session.
        push_window_bytes: about the most unacked body chars per session.
        page_size: mailbox entries per load.
        idle_timeout_s: the hub's session idle timeout, the floor of the idle timeout a
            ``keepalive`` sets.
    """

    def __init__(
        self,
        *,
        closed: bool,
        push_window: int = DEFAULT_PUSH_WINDOW,
        push_window_bytes: int = DEFAULT_PUSH_WINDOW_BYTES,
        page_size: int = DEFAULT_PAGE_SIZE,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        self._idle_timeout_s = idle_timeout_s
        self._sessions: dict[bytes, HubSession] = {}
        self._devices: dict[tuple[str, str], HubSession] = {}  # past hello, not ended
        self._presence = PresenceBoard()
        self._pending: PendingOps[PendingOp] = PendingOps()
        self._counters = HubCounters()
        self._accounts = HubAccounts(self._pending, self._counters, closed=closed)
        self._router = Router(
            self._pending,
            self._counters,
            window=push_window,
            window_bytes=push_window_bytes,
            page_size=page_size,
        )

    # ------------------------------------------------------------------ public inputs

    def start(self) -> list[Action]:
        """Begin: load the accounts. Call once at start (again only after it failed)."""
        return [self._accounts.load_at_start()]

    def accept_key(self, key: bytes) -> bool:
        """Whether to answer a handshake from ``key`` (the Endpoint's ``accept_peer``).

        Open hubs accept every key. Closed hubs accept keys bound to some user, and
        none until the accounts are loaded; a refused key makes ``reload_due`` true.
        """
        return self._accounts.accept_key(key)

    @property
    def reload_due(self) -> bool:
        """A closed hub refused a key since the accounts were last read."""
        return self._accounts.reload_due

    def reload_accounts(self) -> list[Action]:
        """Re-read the accounts if a key was refused since they were last read (the
        shell calls this at most every few seconds): an account added while the hub
        runs (``udpim hub adduser``) is merged in, and its key answered from then on."""
        return list(self._accounts.reload_accounts())

    def add_account(self, user: str, key: bytes) -> list[Action]:
        """Bind ``key`` to ``user`` while running (``udpim hub adduser`` on a live hub)."""
        return list(self._accounts.bind(user, key))

    def on_established(self, sid: bytes, peer_key: bytes) -> list[Action]:
        """Session ``sid`` completed its handshake with static key ``peer_key``."""
        old = self._sessions.get(sid)
        self._sessions[sid] = HubSession(sid=sid, key=peer_key)
        return self._detach(old) if old is not None else []

    def on_message(self, sid: bytes, payload: bytes, now_ms: int) -> list[Action]:
        """One session message arrived on ``sid`` (``now_ms``: hub wall clock, unix ms)."""
        session = self._sessions.get(sid)
        if session is None or session.phase is SessionPhase.ENDED:
            return []
        try:
            frame = decode_frame_untrusted(payload)
        except UnknownFrame:  # a later version's frame type: ignored, in any phase
            self._counters.unknown_frames += 1
            return []
        except BadFrame as exc:
            self._counters.bad_frames += 1
            return self._end(session, f"bad frame: {exc}")
        if session.phase is SessionPhase.AWAITING_HELLO:
            if not isinstance(frame, HelloFrame):
                return self._end(session, "expected hello first")
            return self._on_hello(session, frame, now_ms)
        if not session.welcomed:
            return self._end(session, "frame before welcome")
        if isinstance(frame, SendFrame):
            return self._on_send(session, frame)
        if isinstance(frame, AckFrame):
            return self._router.on_ack(session, frame, now_ms)
        if isinstance(frame, ReceiptAckFrame):
            return [self._router.forget_receipt(session, frame)]
        if isinstance(frame, WatchFrame):
            return self._on_watch(session, frame)
        if isinstance(frame, KeepaliveFrame):
            self._counters.keepalives += 1
            action = liveness_for(session.sid, frame, self._idle_timeout_s)
            return [] if action is None else [action]
        if isinstance(frame, NatProbeFrame):
            self._counters.nat_probes += 1
            return [ScheduleEcho(session.sid, bytes.fromhex(frame.token), frame.delay_ms / 1000)]
        return self._end(session, f"unexpected frame {type(frame).__name__}")

    def on_unreachable(self, sid: bytes) -> list[Action]:
        """Session ``sid`` reported ``PeerUnreachable``: it no longer counts for presence."""
        return self._set_reachable(sid, reachable=False)

    def on_reachable(self, sid: bytes) -> list[Action]:
        """Session ``sid`` reported ``PeerReachable`` again."""
        return self._set_reachable(sid, reachable=True)

    def on_closed(self, sid: bytes) -> list[Action]:
        """Session ``sid`` ended (``SessionClosed``, for whatever reason)."""
        session = self._sessions.pop(sid, None)
        if session is None:
            return []
        return self._detach(session)

    def on_store_result(self, token: int, result: object) -> list[Action]:
        """The op submitted with ``token`` committed with ``result``.

        Unknown or repeated tokens are ignored.
        """
        record = self._pending.pop(token)
        if record is None:
            return []
        if isinstance(record, LoadingAccounts):
            return self._on_accounts(cast(dict[str, list[bytes]], result))
        if isinstance(record, ReloadingAccounts):
            self._accounts.merge_all(cast(dict[str, list[bytes]], result))
            return []
        if isinstance(record, BindingAccount):
            return self._on_bound(record, cast(list[bytes], result))
        if isinstance(record, CheckingAccount):
            return self._on_checked(record, cast(list[bytes], result))
        if isinstance(record, TouchingDevice):
            return self._on_touched(record.session, cast(int, result))
        if isinstance(record, StoringMessage):
            seq, new = cast(tuple[int, bool], result)
            return self._router.on_stored(record, seq, new)
        if isinstance(record, LoadingPage):
            return self._router.on_page(record, cast(list[Delivery], result))
        if isinstance(record, Acking | LoadingReceipts):
            return self._router.push_receipts(cast(list[ReceiptDue], result))
        return []  # DeletingReceipt: nothing follows

    def on_store_error(self, token: int, error: Exception) -> list[Action]:
        """The op submitted with ``token`` failed (nothing of it was written).

        The session it served is closed (its daemon reconnects and retries, losing
        nothing: no ``accepted`` or cursor move happened). A failed ``LoadAccounts``
        refuses the waiting sessions; the shell may call ``start()`` again.
        """
        record = self._pending.pop(token)
        if record is None:
            return []
        self._counters.store_errors += 1
        actions: list[Action] = [Notify(StoreFailed(type(record).__name__, str(error)))]
        if isinstance(record, LoadingAccounts):
            for session in list(self._sessions.values()):
                if session.phase is SessionPhase.AWAITING_ACCOUNTS:
                    actions += self._end(session, REASON_STORE)
        elif isinstance(record, BindingAccount):
            actions += self._unbind(record.user, record.key)
        elif not isinstance(record, DeletingReceipt | ReloadingAccounts):
            actions += self._end(record.session, REASON_STORE)
        return actions

    def statistics(self) -> HubStatistics:
        """Counters and gauges, for logs and ``udpim status``-style reports."""
        c = self._counters
        return HubStatistics(
            sessions=len(self._sessions),
            welcomed_sessions=self._router.session_count,
            online_users=self._presence.online_count,
            accounts=len(self._accounts),
            messages_stored=c.messages_stored,
            duplicate_sends=c.duplicate_sends,
            rejected_sends=c.rejected_sends,
            delivers_pushed=c.delivers_pushed,
            receipts_pushed=c.receipts_pushed,
            refused_hellos=c.refused_hellos,
            bad_frames=c.bad_frames,
            unknown_frames=c.unknown_frames,
            refused_keys=c.refused_keys,
            accounts_reloaded=c.accounts_reloaded,
            store_errors=c.store_errors,
            store_ops_pending=len(self._pending),
            keepalives=c.keepalives,
            nat_probes=c.nat_probes,
        )

    # ------------------------------------------------------------------ accounts, hello

    def _on_accounts(self, accounts: dict[str, list[bytes]]) -> list[Action]:
        self._accounts.load(accounts)
        actions: list[Action] = []
        for session in list(self._sessions.values()):
            if session.phase is SessionPhase.AWAITING_ACCOUNTS and session.hello is not None:
                actions += self._admit(session)
        return actions

    def _on_checked(self, record: CheckingAccount, keys: list[bytes]) -> list[Action]:
        session = record.session
        if session.phase is not SessionPhase.AWAITING_ACCOUNTS:
            return []  # ended meanwhile
        self._accounts.merge(record.hello.user, keys)
        return self._admit(session, record.hello, checked=True)

    def _on_bound(self, record: BindingAccount, keys: list[bytes]) -> list[Action]:
        """A first-use binding found the name bound in the store to other keys (an
        ``adduser`` while the hub ran): the name is theirs, as a restarted hub would see."""
        user, key = record.user, record.key
        if self._accounts.on_bound(user, key, keys):
            return []
        actions: list[Action] = []
        for session in list(self._sessions.values()):
            live = session.phase is not SessionPhase.ENDED
            if live and session.user == user and session.key == key:
                actions += self._refuse(session, user, REASON_TAKEN)
        return actions

    def _on_hello(self, session: HubSession, hello: HelloFrame, now_ms: int) -> list[Action]:
        session.hello = hello
        session.hello_ms = now_ms
        if not self._accounts.loaded:
            session.advance(SessionPhase.AWAITING_ACCOUNTS)
            return []
        return self._admit(session)

    def _admit(
        self, session: HubSession, hello: HelloFrame | None = None, *, checked: bool = False
    ) -> list[Action]:
        """Judge ``hello`` (else the one the session holds). A verdict of unknown or taken
        is first checked against the store's keys for the name (``checked``: it was)."""
        if hello is None:
            hello, session.hello = session.hello, None  # judged once; a welcomed session
        assert hello is not None  # keeps only its user and device (memory per idle session)
        if hello.v != PROTOCOL_VERSION:
            return self._refuse(session, hello.user, REASON_VERSION)
        actions: list[Action] = []
        admission = self._accounts.check(hello.user, session.key)
        if admission in (Admission.UNKNOWN, Admission.TAKEN) and not checked:
            if session.phase is SessionPhase.AWAITING_HELLO:
                session.advance(SessionPhase.AWAITING_ACCOUNTS)
            return [self._accounts.read_keys(session, hello)]
        if admission is Admission.UNKNOWN:
            return self._refuse(session, hello.user, REASON_UNKNOWN_USER)
        if admission is Admission.TAKEN:
            return self._refuse(session, hello.user, REASON_TAKEN)
        if admission is Admission.NEW_NAME:
            actions += self._accounts.bind(hello.user, session.key, first_use=True)
            actions.append(Notify(AccountBound(hello.user, session.key)))
        old = self._devices.get((hello.user, hello.device))
        if old is not None and not old.welcomed:  # a newer hello wins over a pending one
            session.replaces = old.replaces
            actions += self._end(old, REASON_REPLACED)
        elif old is not None:  # ended at our welcome, so presence does not flap
            session.replaces = old
        session.user, session.device = hello.user, hello.device
        self._devices[hello.user, hello.device] = session
        session.advance(SessionPhase.AWAITING_DEVICE)
        op = TouchDevice(session.user, session.device)
        actions.append(self._pending.submit(op, TouchingDevice(session)))
        return actions

    def _refuse(self, session: HubSession, user: str, reason: str) -> list[Action]:
        self._counters.refused_hellos += 1
        frame = encode_frame(RefusedFrame(reason))
        actions: list[Action] = [
            Notify(SessionRefused(session.sid, user, reason)),
            Send(session.sid, frame),
        ]
        return actions + self._end(session, reason)

    def _unbind(self, user: str, key: bytes) -> list[Action]:
        """A BindAccount failed: forget the binding and end the sessions that relied on it."""
        self._accounts.unbind(user, key)
        actions: list[Action] = []
        for session in list(self._sessions.values()):
            if session.user == user and session.key == key:
                actions += self._end(session, REASON_STORE)
        return actions

    def _on_touched(self, session: HubSession, cursor: int) -> list[Action]:
        if session.phase is not SessionPhase.AWAITING_DEVICE:
            return []  # ended meanwhile
        session.advance(SessionPhase.WELCOMED)
        welcome = WelcomeFrame(session.user, session.device, session.hello_ms)
        actions: list[Action] = [
            Send(session.sid, encode_frame(welcome)),
            Notify(SessionWelcomed(session.sid, session.user, session.device)),
        ]
        actions += self._update_presence(session)
        if session.replaces is not None:
            actions += self._end(session.replaces, REASON_REPLACED)
            session.replaces = None
        return actions + self._router.add(session, cursor)

    # ------------------------------------------------------------------ session lifetime

    def _end(self, session: HubSession, reason: str) -> list[Action]:
        """End ``session`` now: no more pushes; the shell closes it, then ``on_closed``."""
        if session.phase is SessionPhase.ENDED:
            return []
        return [*self._detach(session), Close(session.sid, reason)]

    def _detach(self, session: HubSession) -> list[Action]:
        was_welcomed = session.welcomed
        session.advance(SessionPhase.ENDED)
        if self._devices.get((session.user, session.device)) is session:
            del self._devices[session.user, session.device]
            if session.replaces is not None and session.replaces.welcomed:
                self._devices[session.user, session.device] = session.replaces  # still live
        self._presence.unwatch(session.sid)
        if not was_welcomed:
            return []
        self._router.remove(session)
        return self._update_presence(session)

    def _set_reachable(self, sid: bytes, *, reachable: bool) -> list[Action]:
        session = self._sessions.get(sid)
        if session is None:
            return []
        session.reachable = reachable
        return self._update_presence(session) if session.welcomed else []

    def _update_presence(self, session: HubSession) -> list[Action]:
        live = session.welcomed and session.reachable
        if not self._presence.set_live(session.user, session.sid, live):
            return []
        user = session.user
        online = self._presence.is_online(user)
        payload = encode_frame(PresenceFrame(user, online))
        actions: list[Action] = [Send(sid, payload) for sid in self._presence.watchers(user)]
        actions.append(Notify(PresenceChanged(user, online)))
        return actions

    def _on_watch(self, session: HubSession, frame: WatchFrame) -> list[Action]:
        users = self._presence.watch(session.sid, frame.users)
        return [
            Send(session.sid, encode_frame(PresenceFrame(u, self._presence.is_online(u))))
            for u in users
        ]

    def _on_send(self, session: HubSession, frame: SendFrame) -> list[Action]:
        if not self._accounts.has_user(frame.to):
            self._counters.rejected_sends += 1
            rejected = RejectedFrame(frame.id, REASON_UNKNOWN_USER)
            return [Send(session.sid, encode_frame(rejected))]
        return [self._router.store(session, frame)]
