"""Executing an IM core's actions under Trio: sends, closes, store ops and notices.

What it owns: ``ActionRunner``, the one place where a core's ``Action`` lists
(``udpim.im.actions``) become effects, and ``SessionCloser``, which closes sessions
without dropping the frames queued on them.

Rules (docs/IM.md section 14, "Shell contract"):

* Actions run IN ORDER, synchronously, in the task that produced them (the driver's
  event handler, the completion task, a control command). Nothing here blocks.
* ``Store(token, op)``: ``store.submit(op)`` at once (the store executes FIFO), and the
  ``(token, op, pending)`` joins ONE bounded FIFO. One completion task awaits the oldest
  pending, then takes it and every later one already finished (``result_nowait``) in
  the same step, in submission order, feeding each to ``core.on_store_result`` or
  ``core.on_store_error`` and running the actions those return. A group commit of N
  ops is thus consumed in one scheduler step, not N (``tools/bench relay``: one step
  per op left the completion task, not the disk, setting the pace).
* Backpressure: ``wait_for_room`` (the driver's input gate, and every user command)
  waits while ``STORE_BACKLOG_LIMIT`` ops are unanswered, so the backlog stays bounded
  by that limit times what one input can cause. The FIFO's hard capacity
  (``STORE_CHANNEL_CAPACITY``) is far above that; reaching it is a bug and raises.
* ``Send(sid, payload)``: ``driver.send_message`` on the session whose local connection
  ID is ``sid``; a session that is gone or closing is skipped (the core learns through
  its ``SessionClosed``).
* ``Close(sid, reason)``: ``SessionCloser`` closes the session once every message
  queued on it was acknowledged by the peer (a ``refused`` frame precedes its ``Close``,
  and ``Session.close`` would drop it), or after ``CLOSE_GRACE_S`` at the latest. A
  session with nothing in flight closes at once. Choice documented here because the
  session layer offers no "close after flush": waiting for the acknowledgement is exact,
  and the grace period bounds how long a dead peer can hold a doomed session open.
* ``Notify(event)``: handed to the owner's callback (logs, control-socket waiters).
* ``SetLiveness``: ``Session.set_liveness`` on that session (skipped if it is gone or
  closing), ``Endpoint.touch`` so its deadline is re-read, then the owner's
  ``on_liveness`` (the hub's reachability book). ``ScheduleEcho``: the owner's
  ``on_echo`` (the hub's one echo scheduler); ignored without one.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol, final

import trio

from udpim.core.errors import LocalProtocolError
from udpim.core.events import Event as SessionEvent
from udpim.core.events import MessageDelivered, SessionClosed
from udpim.core.frames import CloseReason
from udpim.core.session import Session
from udpim.core.state import SessionState
from udpim.im.actions import Action, Close, Notify, ScheduleEcho, Send, SetLiveness, Store
from udpim.im.events import Event
from udpim.im.ops import Op
from udpim.net.udp import EndpointDriver
from udpim.store.base import Pending, StoreError
from udpim.store.base import Store as StoreBackend

__all__ = [
    "CLOSE_GRACE_S",
    "STORE_BACKLOG_LIMIT",
    "STORE_CHANNEL_CAPACITY",
    "ActionRunner",
    "CoreSink",
    "SessionCloser",
    "StoreDone",
]

log = logging.getLogger("udpim.net.actions")

STORE_BACKLOG_LIMIT: Final = 1024
"""Stop reading input while this many store ops are unanswered."""
STORE_CHANNEL_CAPACITY: Final = 64 * STORE_BACKLOG_LIMIT
"""Hard bound of the completion FIFO (ops caused by store results pass the gate)."""
CLOSE_GRACE_S: Final = 3.0
"""Longest a ``Close`` waits for the session's queued messages to be acknowledged."""


class CoreSink(Protocol):
    """The part of a core (``HubCore``, ``PeerCore``) that consumes store outcomes."""

    def on_store_result(self, token: int, result: object) -> list[Action]: ...

    def on_store_error(self, token: int, error: Exception) -> list[Action]: ...


StoreDone = Callable[[Op, object, StoreError | None], None]
"""Told of every finished op after the core: ``(op, result, None)`` or ``(op, None, error)``."""


@final
class _FailedSubmit:
    """The pending of an op the store refused at ``submit`` (it is closed)."""

    __slots__ = ("_error",)

    def __init__(self, error: StoreError) -> None:
        self._error = error

    async def wait(self) -> object:
        await trio.lowlevel.checkpoint()
        raise self._error

    def result_nowait(self) -> object:
        raise self._error


@final
class SessionCloser:
    """Closes sessions after their queued messages, or after ``grace_s`` (see module doc).

    Args:
        driver: the endpoint driver whose sessions are closed.
        grace_s: the longest wait for queued messages.
    """

    def __init__(self, driver: EndpointDriver, *, grace_s: float = CLOSE_GRACE_S) -> None:
        self._driver = driver
        self._grace_s = grace_s
        self._waiting: dict[bytes, tuple[float, str]] = {}  # sid -> (deadline, reason)
        self._heap: list[tuple[float, bytes]] = []
        self._wake = trio.Event()

    def request(self, sid: bytes, reason: str) -> None:
        """Close session ``sid`` once its queued messages are acknowledged."""
        session = self._driver.endpoint.session(sid)
        if session is None or session.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        if sid in self._waiting:
            return
        if session.statistics().send_buffered_bytes == 0:
            self._close(session, reason)
            return
        deadline = trio.current_time() + self._grace_s
        self._waiting[sid] = (deadline, reason)
        heapq.heappush(self._heap, (deadline, sid))
        self._wake.set()

    def on_session_event(self, session: Session, event: SessionEvent) -> None:
        """Feed every session event: a delivery may let a waiting close proceed."""
        sid = session.local_cid
        if sid not in self._waiting:
            return
        if isinstance(event, SessionClosed):
            del self._waiting[sid]
        elif isinstance(event, MessageDelivered) and session.statistics().send_buffered_bytes == 0:
            _, reason = self._waiting.pop(sid)
            self._close(session, reason)

    @property
    def waiting(self) -> int:
        """Sessions waiting to be closed."""
        return len(self._waiting)

    async def run(self) -> None:
        """Close sessions whose grace period ran out, until cancelled."""
        while True:
            self._wake = trio.Event()
            deadline = self._heap[0][0] if self._heap else math.inf
            with trio.move_on_at(deadline):
                await self._wake.wait()
            now = trio.current_time()
            while self._heap and self._heap[0][0] <= now:
                deadline, sid = heapq.heappop(self._heap)
                entry = self._waiting.get(sid)
                if entry is None or entry[0] != deadline:
                    continue
                del self._waiting[sid]
                session = self._driver.endpoint.session(sid)
                if session is not None:
                    self._close(session, entry[1])

    def _close(self, session: Session, reason: str) -> None:
        try:
            self._driver.close_session(session, CloseReason.NORMAL, reason)
        except LocalProtocolError:  # closed meanwhile: nothing left to say
            return


@final
class ActionRunner:
    """Executes a core's actions (see the module docstring).

    Args:
        core: the core fed with store outcomes.
        driver: the endpoint driver the sessions live on.
        store: the durable store.
        on_notify: called with every ``Notify`` event; must not block.
        on_store_done: optional; told of every finished op (after the core).
        on_liveness: optional; told of every applied ``SetLiveness``.
        on_echo: optional; executes ``ScheduleEcho`` (must not block).
    """

    def __init__(
        self,
        core: CoreSink,
        driver: EndpointDriver,
        store: StoreBackend,
        *,
        on_notify: Callable[[Event], None],
        on_store_done: StoreDone | None = None,
        on_liveness: Callable[[SetLiveness], None] | None = None,
        on_echo: Callable[[ScheduleEcho], None] | None = None,
    ) -> None:
        self._core = core
        self._on_liveness = on_liveness
        self._on_echo = on_echo
        self._driver = driver
        self._store = store
        self._on_notify = on_notify
        self._on_store_done = on_store_done
        self.closer = SessionCloser(driver)
        self._unanswered: deque[tuple[int, Op, Pending]] = deque()
        self._submitted = trio.Event()
        self._room: trio.Event | None = None

    @property
    def store_backlog(self) -> int:
        """Store ops submitted and not yet answered."""
        return len(self._unanswered)

    def run(self, actions: list[Action]) -> None:
        """Execute ``actions`` in order (synchronously).

        Raises:
            RuntimeError: the completion FIFO is full (a backpressure bug).
        """
        for action in actions:
            if isinstance(action, Send):
                self._send(action)
            elif isinstance(action, Store):
                self._submit(action)
            elif isinstance(action, Close):
                self.closer.request(action.sid, action.reason)
            elif isinstance(action, Notify):
                self._on_notify(action.event)
            elif isinstance(action, SetLiveness):
                self._set_liveness(action)
            elif self._on_echo is not None:
                self._on_echo(action)

    async def wait_for_room(self) -> None:
        """Wait while ``STORE_BACKLOG_LIMIT`` store ops are unanswered (backpressure)."""
        while len(self._unanswered) >= STORE_BACKLOG_LIMIT:
            if self._room is None:
                self._room = trio.Event()
            await self._room.wait()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the completion task and the closer until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._complete)
            nursery.start_soon(self.closer.run)
            task_status.started()

    def _send(self, action: Send) -> None:
        session = self._driver.endpoint.session(action.sid)
        if session is None:
            return
        try:
            self._driver.send_message(session, action.payload)
        except LocalProtocolError:  # closing or closed: its SessionClosed tells the core
            return

    def _set_liveness(self, action: SetLiveness) -> None:
        endpoint = self._driver.endpoint
        session = endpoint.session(action.sid)
        if session is None or session.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        session.set_liveness(action.dead_peer_timeout_s, action.idle_timeout_s)
        endpoint.touch(session)
        self._driver.request_flush()
        if self._on_liveness is not None:
            self._on_liveness(action)

    def _submit(self, action: Store) -> None:
        if len(self._unanswered) >= STORE_CHANNEL_CAPACITY:
            raise RuntimeError("store completion FIFO full (backpressure bug)")
        pending: Pending
        try:
            pending = self._store.submit(action.op)
        except StoreError as exc:
            pending = _FailedSubmit(exc)
        self._unanswered.append((action.token, action.op, pending))
        self._submitted.set()

    async def _complete(self) -> None:
        unanswered = self._unanswered
        while True:
            if not unanswered:
                self._submitted = trio.Event()
                await self._submitted.wait()
                continue
            with contextlib.suppress(StoreError):  # taken (again) by _answer_finished
                await unanswered[0][2].wait()
            self._answer_finished()

    def _answer_finished(self) -> None:
        """Answer the oldest ops while they are finished, in submission order."""
        core, unanswered = self._core, self._unanswered
        while unanswered:
            token, op, pending = unanswered[0]
            try:
                result = pending.result_nowait()
            except trio.WouldBlock:
                return
            except StoreError as exc:
                log.warning("store op %s failed: %s", type(op).__name__, exc)
                actions = core.on_store_error(token, exc)
                done: tuple[object, StoreError | None] = (None, exc)
            else:
                actions = core.on_store_result(token, result)
                done = (result, None)
            unanswered.popleft()
            if self._room is not None and len(unanswered) < STORE_BACKLOG_LIMIT:
                self._room.set()
                self._room = None
            if self._on_store_done is not None:
                self._on_store_done(op, *done)
            self.run(actions)
