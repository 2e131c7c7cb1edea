"""``PeerHandle``: what a running daemon offers its users (control socket, tests, demo).

What it owns: sending with optional waiting for a state, reading the inbox, subscribing
to the daemon's notices, and the status snapshot. ``serve_peer`` reports one in its
``PeerInfo``; the control socket (``udpim.net.peercontrol``) is a thin JSON layer on it.

Rules:

* ``send`` returns only once the message is on the daemon's disk (state ``queued``), or
  later if asked to wait for ``accepted`` or ``delivered``. States are reported in order
  and only after they are on disk (``OutboxChanged``). A rejected message (no such user)
  raises ``UnknownUser``; a wait that runs out raises ``SendTimeout`` and leaves the
  message in the outbox, to be delivered later.
* Subscribers get every notice through a bounded channel (``SUBSCRIBER_BUFFER``). The
  daemon never waits for a subscriber: one that falls that far behind is dropped (its
  channel ends) rather than slowing the daemon or growing memory.
* ``inbox`` and ``status`` read the store with the read-only ops ``LoadInbox`` and
  ``OutboxCounts`` directly (they change nothing, so the core need not know).
* Commands wait for room in the store backlog first (backpressure, ``ActionRunner``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Final, Literal, final

import trio

from udpim.core.config import SessionConfig
from udpim.core.session import Session
from udpim.im.events import Event, OutboxChanged
from udpim.im.ops import EnqueueOutbox, InboxEntry, LoadInbox, Op, OutboxCounts, OutboxState
from udpim.im.peercore import PeerCore
from udpim.net.actions import ActionRunner
from udpim.net.errors import SendTimeout, ServiceFailed, UnknownUser
from udpim.net.natlearning import KeepaliveManager
from udpim.net.reconnect import HubConnector
from udpim.settings import Address, format_address
from udpim.store.base import Store, StoreError

__all__ = ["INBOX_PAGE", "SUBSCRIBER_BUFFER", "PeerHandle", "WaitFor"]

SUBSCRIBER_BUFFER: Final = 1024
"""Notices a subscriber may lag behind before it is dropped."""
INBOX_PAGE: Final = 500
"""Inbox rows per ``LoadInbox``."""

WaitFor = Literal["accepted", "delivered"]
StateCallback = Callable[[OutboxChanged], Awaitable[None]]

_RANK: Final = {
    OutboxState.QUEUED: 0,
    OutboxState.ACCEPTED: 1,
    OutboxState.DELIVERED: 2,
}


@final
class _Waiter:
    """The state changes of one message a ``send`` follows (filled by ``on_notify``).

    Cheaper than a memory channel per message: a deque and, only while the sender
    sleeps, an event. It needs no bound: a message changes state at most four times.
    The sender is woken only by a change it acts on (``wakes_for``): with no ``on_state``
    callback, a ``send`` waiting for ``delivered`` sleeps through ``queued`` and
    ``accepted`` and takes them in order when it wakes (one task switch per message,
    not three). ``close`` ends it (the daemon stopped).
    """

    __slots__ = ("_closed", "_items", "_wake", "_wake_rank", "state")

    def __init__(self, wake_rank: int) -> None:
        self._items: deque[OutboxChanged | StoreError] = deque()
        self._wake: trio.Event | None = None
        self._wake_rank = wake_rank
        self._closed = False
        self.state = "not yet on disk"  # the last state put, for error messages

    def put(self, item: OutboxChanged | StoreError) -> None:
        self._items.append(item)
        if isinstance(item, OutboxChanged):
            self.state = item.state.value
            rank = _RANK.get(item.state)
            if rank is not None and rank < self._wake_rank:
                return  # a state before the wanted one: the sender need not run yet
        if self._wake is not None:
            self._wake.set()

    def close(self) -> None:
        self._closed = True
        if self._wake is not None:
            self._wake.set()

    async def next(self) -> OutboxChanged | StoreError | None:
        """The next change in order, or None once closed and drained.

        Sleeps until a change that wakes it arrives (or it is closed); then hands out
        every change put so far, in order.
        """
        if not self._items:
            while not self._closed and not self._ready():
                self._wake = trio.Event()
                await self._wake.wait()
                self._wake = None
            if not self._items:
                return None
        return self._items.popleft()

    def _ready(self) -> bool:
        """Whether a change the sender acts on is queued."""
        for item in self._items:
            if not isinstance(item, OutboxChanged):
                return True
            rank = _RANK.get(item.state)
            if rank is None or rank >= self._wake_rank:
                return True
        return False


@final
class PeerHandle:
    """A running daemon's API. Obtain it from ``PeerInfo.handle`` (``serve_peer``)."""

    def __init__(
        self,
        *,
        core: PeerCore,
        runner: ActionRunner,
        store: Store,
        connector: HubConnector,
        hub: Address,
        address: Address,
        session_config: SessionConfig,
        wall_clock_ms: Callable[[], int],
        keepalive: KeepaliveManager | None = None,
    ) -> None:
        self._core = core
        self._keepalive = keepalive
        self._runner = runner
        self._store = store
        self._connector = connector
        self._hub = hub
        self._address = address
        self._session_config = session_config
        self._wall_clock_ms = wall_clock_ms
        self._waiters: dict[str, _Waiter] = {}
        self._subscribers: list[trio.MemorySendChannel[Event]] = []
        self._closed = False

    @property
    def device(self) -> str:
        """This daemon's device id."""
        return self._core.device or ""

    # ------------------------------------------------------------------ commands

    async def send(
        self,
        to: str,
        text: str,
        *,
        wait: WaitFor | None = None,
        timeout_s: float | None = None,
        on_state: StateCallback | None = None,
    ) -> OutboxChanged:
        """Queue a message for ``to`` and wait until it is on disk (or later, see ``wait``).

        Args:
            to: the recipient's user name.
            text: the message (at most 64 KiB of UTF-8).
            wait: also wait until the hub has it (``"accepted"``) or a device of the
                recipient has it (``"delivered"``).
            timeout_s: the longest wait (None: no limit).
            on_state: awaited with each state change of the message, in order.

        Returns:
            The last state change reached (``queued``, or the one waited for).

        Raises:
            LocalProtocolError: a bad user name or text.
            UnknownUser: the hub rejected the message (no such user).
            SendTimeout: the wanted state was not reached within ``timeout_s``.
            ServiceFailed: the store could not queue the message, or the daemon stopped
                meanwhile (the message may or may not be on disk).
        """
        self._check_running()
        await self._runner.wait_for_room()
        self._check_running()
        message_id, actions = self._core.send(to, text, self._wall_clock_ms())
        wanted = OutboxState.QUEUED if wait is None else OutboxState(wait)
        waiter = _Waiter(0 if on_state is not None else _RANK[wanted])
        self._waiters[message_id] = waiter
        try:
            self._runner.run(actions)
            if timeout_s is None:
                return await self._follow(message_id, to, waiter, wanted, on_state)
            with trio.move_on_after(timeout_s):
                return await self._follow(message_id, to, waiter, wanted, on_state)
            raise SendTimeout(_timeout_text(message_id, to, waiter.state, wanted, timeout_s))
        finally:
            del self._waiters[message_id]

    async def _follow(
        self,
        message_id: str,
        to: str,
        waiter: _Waiter,
        wanted: OutboxState,
        on_state: StateCallback | None,
    ) -> OutboxChanged:
        while True:
            item = await waiter.next()
            if item is None:
                raise ServiceFailed(f"the daemon stopped; message {message_id} was {waiter.state}")
            if isinstance(item, StoreError):
                raise ServiceFailed(f"cannot queue the message: {item}")
            if on_state is not None:
                await on_state(item)
            if item.state is OutboxState.REJECTED:
                if item.reason in ("", "unknown user"):
                    raise UnknownUser(f"unknown user {to}")
                raise UnknownUser(f"message to {to} rejected: {item.reason}")
            if _RANK[item.state] >= _RANK[wanted]:
                return item

    async def inbox(self, after: int = 0, *, limit: int | None = None) -> list[InboxEntry]:
        """Stored messages with an inbox position above ``after``, oldest first.

        Raises:
            StoreError: the store failed.
        """
        entries: list[InboxEntry] = []
        while limit is None or len(entries) < limit:
            page = INBOX_PAGE if limit is None else min(INBOX_PAGE, limit - len(entries))
            rows = await self._read(LoadInbox(after, page))
            assert isinstance(rows, list)
            entries += rows
            if len(rows) < page:
                break
            after = rows[-1].rowid
        return entries

    def watch(self, users: Iterable[str]) -> None:
        """Follow the presence of ``users`` (besides correspondents); see ``PeerCore.watch``.

        Raises:
            LocalProtocolError: a bad user name.
            ServiceFailed: the daemon is not running.
        """
        self._check_running()
        self._runner.run(self._core.watch(users))

    @contextmanager
    def subscribe(self) -> Iterator[trio.MemoryReceiveChannel[Event]]:
        """Receive every notice (``udpim.im.events``) while the block runs.

        The channel ends if the subscriber falls ``SUBSCRIBER_BUFFER`` notices behind, or
        when the daemon stops.
        """
        sender, receiver = trio.open_memory_channel[Event](SUBSCRIBER_BUFFER)
        if self._closed:
            sender.close()
        else:
            self._subscribers.append(sender)
        try:
            yield receiver
        finally:
            if sender in self._subscribers:
                self._subscribers.remove(sender)
            sender.close()

    async def status(self) -> dict[str, object]:
        """A JSON-ready snapshot: user, device, connection, session figures, keepalive
        (learned NAT timeout, heartbeat interval, learning phase, path changes),
        reachability history, outbox and inbox counts, presence of contacts.

        Raises:
            StoreError: the store failed.
        """
        status = self._core.status()
        status["address"] = format_address(self._address)
        status["hub"] = format_address(self._hub)
        status["session"] = self._session_status()
        next_at = self._connector.next_attempt_at
        status["reconnect"] = {
            "attempts": self._connector.attempts,
            "next_attempt_in_s": None
            if next_at is None
            else round(max(0.0, next_at - trio.current_time()), 1),
        }
        status.update(self.keepalive_status())
        status["outbox"] = await self._read(OutboxCounts())
        status["inbox"] = len(await self.inbox())
        return status

    def keepalive_status(self) -> dict[str, object]:
        """The keepalive part of ``status()`` without reading the store: ``keepalive``
        (learned NAT timeout, heartbeat interval, learning phase, path changes, tests)
        and ``reachability`` (recent events); empty without a keepalive manager."""
        if self._keepalive is None:
            return {}
        return {
            "keepalive": self._keepalive.status(),
            "reachability": self._keepalive.history.events(),
        }

    # ------------------------------------------------------------------ daemon feed

    def on_notify(self, event: Event) -> None:
        """Every notice of the core: wake waiters, feed subscribers (never blocks)."""
        if isinstance(event, OutboxChanged):
            waiter = self._waiters.get(event.id)
            if waiter is not None and not self._closed:
                waiter.put(event)
        for sender in list(self._subscribers):
            try:
                sender.send_nowait(event)
            except trio.WouldBlock:
                self._subscribers.remove(sender)
                sender.close()

    def on_store_done(self, op: Op, result: object, error: StoreError | None) -> None:
        """Every finished store op: a failed enqueue fails its ``send``."""
        del result
        if error is not None and isinstance(op, EnqueueOutbox):
            waiter = self._waiters.get(op.id)
            if waiter is not None and not self._closed:
                waiter.put(error)

    def close(self) -> None:
        """The daemon stops: end every subscription and every ``send`` still waiting."""
        self._closed = True
        for sender in self._subscribers:
            sender.close()
        self._subscribers.clear()
        for waiter in self._waiters.values():
            waiter.close()

    # ------------------------------------------------------------------ internals

    def _check_running(self) -> None:
        if self._closed:
            raise ServiceFailed("the daemon is not running")

    async def _read(self, op: Op) -> object:
        self._check_running()
        await self._runner.wait_for_room()
        return await self._store.submit(op).wait()

    def _session_status(self) -> dict[str, object] | None:
        session: Session | None = self._connector.session
        if session is None:
            return None
        stats = session.statistics()
        sent = stats.packets_sent
        return {
            "state": stats.state.value,
            "peer_address": format_address(stats.peer_address),
            "rtt_ms": _ms(stats.smoothed_rtt_s),
            "rtt_var_ms": _ms(stats.rttvar_s),
            "min_rtt_ms": _ms(stats.min_rtt_s),
            "packets_sent": sent,
            "packets_received": stats.packets_received,
            "packets_lost": stats.packets_lost,
            "loss_percent": round(100 * stats.packets_lost / sent, 2) if sent else 0.0,
            "frames_retransmitted": stats.frames_retransmitted,
            "probes_sent": stats.probes_sent,
            "heartbeats_sent": stats.heartbeats_sent,
            "heartbeat_interval_s": stats.heartbeat_interval_s,
            "dead_peer_timeout_s": stats.dead_peer_timeout_s,
            "messages_sent": stats.messages_sent,
            "messages_received": stats.messages_received,
            "path_migrations": stats.path_migrations,
            "drops": dict(stats.drops),
        }


def _ms(seconds: float) -> float | None:
    return round(seconds * 1000, 1) if math.isfinite(seconds) else None


def _timeout_text(
    message_id: str, to: str, state: str, wanted: OutboxState, timeout_s: float | None
) -> str:
    waited = f"after {timeout_s:g} s" if timeout_s is not None else ""
    if state in ("queued", "not yet on disk"):
        return (
            f"hub unreachable: message {message_id} to {to} still {state} {waited} "
            "(it stays in the outbox and is sent when the hub is back)"
        )
    return (
        f"message {message_id} to {to} not {wanted.value} {waited}: the hub has it, "
        f"{to} has not received it yet (offline?)"
    )
