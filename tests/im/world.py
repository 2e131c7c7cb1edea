"""A tiny deterministic world for the IM cores: one HubCore, some PeerCores, fake stores
and fake session pipes, all stepped by the test.

* A link is one session between a daemon and the hub: two FIFO queues of payloads,
  reliable and ordered while up (what udpim.core sessions give the IM layer). Closing a
  link drops whatever is still queued, except that the closing side's frames already
  sent go out first (a shell flushes before it closes).
* Store ops queue up in one FIFO per store. ``commit()`` executes them in submission
  order; results go back to the cores at once, or are held (``hold=True``) so a test can
  release them late or out of order.
* A crash discards a core (and its uncommitted ops) and keeps its fake store.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from tests.im.fakestores import FakeHubStore, FakePeerStore, FakeStoreError
from udpim.im.actions import Action, Close, Notify, Send, Store
from udpim.im.events import Event
from udpim.im.hubcore import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_PUSH_WINDOW,
    DEFAULT_PUSH_WINDOW_BYTES,
    HubCore,
)
from udpim.im.ops import Op
from udpim.im.peercore import PeerCore

NOW_MS = 1_700_000_000_000


def key_of(name: str) -> bytes:
    """A distinct 32-byte stand-in static key per name."""
    return name.encode().ljust(32, b"k")


@dataclass
class Peer:
    """One daemon: its core, its store, what it reported, its current link."""

    name: str
    user: str
    key: bytes
    store: FakePeerStore
    rng: random.Random
    core: PeerCore
    events: list[Event] = field(default_factory=list)
    link: Link | None = None

    def arrived_bodies(self) -> list[str]:
        """Bodies of MessageArrived notices, in order."""
        from udpim.im.events import MessageArrived

        return [e.body for e in self.events if isinstance(e, MessageArrived)]


@dataclass
class Link:
    """One session between ``peer`` and the hub."""

    peer: Peer
    peer_sid: bytes
    hub_sid: bytes
    to_hub: deque[bytes] = field(default_factory=deque)
    to_peer: deque[bytes] = field(default_factory=deque)
    up: bool = True


@dataclass
class _Op:
    owner: str  # "hub" or a peer name
    core: object
    token: int
    op: Op


class World:
    """Hub + peers + stores + links, stepped by hand."""

    def __init__(
        self,
        *,
        closed: bool = False,
        seed: int = 1,
        push_window: int = DEFAULT_PUSH_WINDOW,
        push_window_bytes: int = DEFAULT_PUSH_WINDOW_BYTES,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self.seed = seed
        self.now_ms = NOW_MS
        self.hub_store = FakeHubStore()
        self.pacing = (push_window, push_window_bytes, page_size)
        self.closed = closed
        self.hub = self._new_hub()
        self.hub_events: list[Event] = []
        self.hub_closes: list[tuple[bytes, str]] = []
        self.peers: dict[str, Peer] = {}
        self.links: list[Link] = []
        self.queue: deque[_Op] = deque()
        self.held: list[tuple[_Op, object]] = []
        self.fail_next: set[type[Op]] = set()
        self._sids = 0
        self.apply("hub", self.hub.start())

    # ------------------------------------------------------------------ setup

    def _new_hub(self) -> HubCore:
        window, window_bytes, page = self.pacing
        return HubCore(
            closed=self.closed, push_window=window, push_window_bytes=window_bytes, page_size=page
        )

    def add_peer(self, name: str, user: str | None = None, key: bytes | None = None) -> Peer:
        """Create a daemon ``name`` (user defaults to the name) and start its core."""
        user = user or name
        rng = random.Random(f"{self.seed}:{name}")
        core = PeerCore(user=user, rng=rng.randbytes)
        peer = Peer(name, user, key or key_of(user), FakePeerStore(), rng, core)
        self.peers[name] = peer
        self.apply(name, core.start())
        return peer

    def restart_peer(self, name: str, *, commit_pending: bool = False) -> Peer:
        """Crash daemon ``name`` (its link drops silently) and start it again on its store."""
        peer = self.peers[name]
        self._drop_ops(name, commit=commit_pending)
        if peer.link is not None:
            peer.link.up = False
            peer.link = None
        peer.core = PeerCore(user=peer.user, rng=peer.rng.randbytes)
        peer.events.clear()
        self.apply(name, peer.core.start())
        return peer

    def restart_hub(self, *, commit_pending: bool = False) -> None:
        """Crash the hub: every link drops (daemons see the close), state reloads."""
        self._drop_ops("hub", commit=commit_pending)
        for link in self.links:
            if link.up:
                link.up = False
                link.peer.link = None
                self.apply(link.peer.name, link.peer.core.on_disconnected(link.peer_sid))
        self.hub = self._new_hub()
        self.apply("hub", self.hub.start())

    def _drop_ops(self, owner: str, *, commit: bool) -> None:
        kept: deque[_Op] = deque()
        for item in self.queue:
            if item.owner != owner:
                kept.append(item)
            elif commit:
                self._store_of(owner).execute(item.op)
        self.queue = kept
        self.held = [(item, result) for item, result in self.held if item.owner != owner]

    def connect(self, name: str) -> Link:
        """Open a session from daemon ``name`` to the hub (handshake done)."""
        peer = self.peers[name]
        self._sids += 1
        link = Link(peer, b"P%03d" % self._sids, b"H%03d" % self._sids)
        self.links.append(link)
        if not self.hub.accept_key(peer.key):
            link.up = False  # the handshake gets no answer at all
            return link
        peer.link = link
        self.apply("hub", self.hub.on_established(link.hub_sid, peer.key))
        self.apply(name, peer.core.on_connected(link.peer_sid))
        return link

    def disconnect(self, name: str, *, tell_hub: bool = True) -> None:
        """Drop daemon ``name``'s link; the hub hears of it only if ``tell_hub``."""
        peer = self.peers[name]
        link = peer.link
        assert link is not None
        link.up = False
        peer.link = None
        self.apply(name, peer.core.on_disconnected(link.peer_sid))
        if tell_hub:
            self.apply("hub", self.hub.on_closed(link.hub_sid))

    # ------------------------------------------------------------------ actions

    def _store_of(self, owner: str) -> FakeHubStore | FakePeerStore:
        return self.hub_store if owner == "hub" else self.peers[owner].store

    def _core_of(self, owner: str) -> object:
        return self.hub if owner == "hub" else self.peers[owner].core

    def apply(self, owner: str, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Store):
                self.queue.append(_Op(owner, self._core_of(owner), action.token, action.op))
            elif isinstance(action, Notify):
                (self.hub_events if owner == "hub" else self.peers[owner].events).append(
                    action.event
                )
            elif isinstance(action, Send):
                self._send(owner, action.sid, action.payload)
            elif isinstance(action, Close):
                self._close(owner, action.sid, action.reason)

    def _link_by_sid(self, owner: str, sid: bytes) -> Link | None:
        for link in self.links:
            if link.up and (link.hub_sid if owner == "hub" else link.peer_sid) == sid:
                return link
        return None

    def _send(self, owner: str, sid: bytes, payload: bytes) -> None:
        link = self._link_by_sid(owner, sid)
        if link is not None:
            (link.to_peer if owner == "hub" else link.to_hub).append(payload)

    def _close(self, owner: str, sid: bytes, reason: str) -> None:
        if owner == "hub":
            self.hub_closes.append((sid, reason))
        link = self._link_by_sid(owner, sid)
        if link is None:
            if owner == "hub":  # a session the daemon already left: the shell closes it
                self.apply("hub", self.hub.on_closed(sid))
            return
        if owner == "hub":
            while link.to_peer:
                self._to_peer(link)
        link.up = False
        if link.peer.link is link:
            link.peer.link = None
        self.apply(link.peer.name, link.peer.core.on_disconnected(link.peer_sid))
        self.apply("hub", self.hub.on_closed(link.hub_sid))

    def _to_peer(self, link: Link) -> None:
        payload = link.to_peer.popleft()
        self.apply(link.peer.name, link.peer.core.on_message(link.peer_sid, payload, self.now_ms))

    def _to_hub(self, link: Link) -> None:
        payload = link.to_hub.popleft()
        self.apply("hub", self.hub.on_message(link.hub_sid, payload, self.now_ms))

    # ------------------------------------------------------------------ stepping

    def pump(self) -> bool:
        """Deliver every queued frame (repeatedly). Returns True if anything moved."""
        moved = False
        progress = True
        while progress:
            progress = False
            for link in list(self.links):
                while link.up and (link.to_hub or link.to_peer):
                    progress = moved = True
                    if link.to_hub:
                        self._to_hub(link)
                    if link.up and link.to_peer:
                        self._to_peer(link)
        return moved

    def commit(self, count: int | None = None, *, hold: bool = False) -> int:
        """Execute up to ``count`` queued ops (all if None), in FIFO order.

        Results go straight back to their cores, or are kept in ``held`` if ``hold``.
        """
        done = 0
        while self.queue and (count is None or done < count):
            item = self.queue.popleft()
            done += 1
            if type(item.op) in self.fail_next:
                self.fail_next.discard(type(item.op))
                self._feed_error(item, FakeStoreError(f"injected failure of {item.op!r}"))
                continue
            result = self._store_of(item.owner).execute(item.op)
            if hold:
                self.held.append((item, result))
            else:
                self._feed(item, result)
        return done

    def release(self, order: list[int] | None = None) -> None:
        """Hand held results back, in ``order`` (indexes into ``held``) or as held."""
        held, self.held = self.held, []
        for index in order if order is not None else range(len(held)):
            self._feed(*held[index])

    def _feed(self, item: _Op, result: object) -> None:
        if item.core is not self._core_of(item.owner):
            return  # the core crashed meanwhile
        core = item.core
        assert isinstance(core, HubCore | PeerCore)
        self.apply(item.owner, core.on_store_result(item.token, result))

    def _feed_error(self, item: _Op, error: Exception) -> None:
        core = item.core
        if core is self._core_of(item.owner):
            assert isinstance(core, HubCore | PeerCore)
            self.apply(item.owner, core.on_store_error(item.token, error))

    def settle(self, rounds: int = 1000) -> None:
        """Pump and commit until nothing moves."""
        for _ in range(rounds):
            moved = self.pump()
            if not self.commit() and not moved:
                return
        raise AssertionError("world did not settle")

    # ------------------------------------------------------------------ commands

    def send(self, name: str, to: str, body: str) -> str:
        """Daemon ``name`` queues ``body`` for ``to``; returns the message id."""
        self.now_ms += 1
        message_id, actions = self.peers[name].core.send(to, body, self.now_ms)
        self.apply(name, actions)
        return message_id

    def online(self, name: str) -> Link:
        """Connect daemon ``name`` and settle."""
        link = self.connect(name)
        self.settle()
        return link
