"""Where a hub's memory per idle logged-in session goes, measured in this process.

What it owns: ``census_sessions``, which builds a hub-side ``Endpoint`` and the hub's IM
state machine (``HubCore``, open, as ``python -m udpim hub`` runs it) holding N idle
welcomed sessions with no sockets and no disk (client endpoints in the same process hand
datagrams over directly; store ops are answered at once, as an empty store would answer
them), and measures with ``tracemalloc`` what the hub keeps:

1. tracing starts; the hub endpoint, its ``HubCore`` and the client endpoints are made;
   every client dials, the handshakes complete, each client sends its ``hello`` as a new
   user ``idle-N`` (as ``tools/bench idle``'s fleet does), the hub binds the name,
   touches the device and answers ``welcome``, and each side acknowledges; time then
   jumps past every delayed acknowledgement, so every session is idle and nothing is in
   flight;
2. the client endpoints are dropped and the garbage collector runs, so what is still
   allocated since step 1 is the hub endpoint, its sessions and the IM layer's records;
3. the snapshot is grouped by source line (the line that allocated each live block),
   divided by N, and summed per layer: ``udpim/core`` (the session layer), ``udpim/im``
   (the IM layer), and everything else (the interpreter, ``cryptography``'s bindings).

What it leaves out: the Trio driver's own tables (``udpim/net``) and the store (sqlite's
page cache is bounded, not per session). ``tracemalloc`` counts the bytes Python asked
for, not the allocator's overhead or memory held by OpenSSL (an AEAD context lives in C,
outside Python's allocator), so RSS per session is larger.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from udpim.core.config import CookieMode, EndpointConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import MessageReceived, SessionEstablished
from udpim.im.actions import Action, Close, Send, Store
from udpim.im.hubcore import HubCore
from udpim.im.ops import BindAccount, LoadAccounts, TouchDevice
from udpim.im.protocol import HelloFrame, encode_frame

__all__ = ["Census", "census_sessions"]

_HUB = ("127.0.0.2", 7575)
_CLIENTS_PER_ENDPOINT = 64
_LAYERS = ("udpim/core", "udpim/im")


@dataclass(frozen=True, slots=True)
class Census:
    """A census of ``sessions`` idle welcomed hub-side sessions.

    Attributes:
        sessions: how many sessions the hub held.
        bytes_per_session: live Python bytes per session (tracemalloc), all lines.
        blocks_per_session: live allocations per session.
        layer_bytes: bytes per session by layer: ``udpim/core``, ``udpim/im``, ``other``.
        top_lines: ``(file:line, bytes per session)``, largest first.
    """

    sessions: int
    bytes_per_session: float
    blocks_per_session: float
    layer_bytes: dict[str, float]
    top_lines: list[tuple[str, float]]


def census_sessions(count: int, seed: int = 1, top: int = 12) -> Census:
    """Measure ``count`` idle welcomed hub-side sessions (see the module docstring).

    Raises:
        RuntimeError: a handshake or a login did not complete (a bug; never expected).
    """
    rng = random.Random(seed).randbytes
    gc.collect()
    tracemalloc.start(1)
    try:
        before = tracemalloc.take_snapshot()
        hub = _Hub(rng)
        _connect_clients(hub, count, rng)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    if len(hub.endpoint) != count or hub.core.statistics().welcomed_sessions != count:
        raise RuntimeError(f"{len(hub.endpoint)} of {count} sessions established")
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = after.filter_traces(filters).compare_to(before.filter_traces(filters), "lineno")
    total = sum(stat.size_diff for stat in stats)
    blocks = sum(stat.count_diff for stat in stats)
    layers = dict.fromkeys((*_LAYERS, "other"), 0.0)
    for stat in stats:
        name = _short(stat.traceback[0].filename)
        layer = next((layer for layer in _LAYERS if name.startswith(layer + "/")), "other")
        layers[layer] += stat.size_diff / count
    lines = [
        (f"{_short(stat.traceback[0].filename)}:{stat.traceback[0].lineno}", stat.size_diff / count)
        for stat in sorted(stats, key=lambda stat: stat.size_diff, reverse=True)[:top]
    ]
    del hub
    return Census(count, total / count, blocks / count, layers, lines)


class _Hub:
    """A hub endpoint and its ``HubCore``, joined as ``udpim.net.hub`` joins them, with
    store ops answered at once (an empty store: no accounts, cursor 0, no mail)."""

    def __init__(self, rng: Callable[[int], bytes]) -> None:
        config = EndpointConfig(cookie_mode=CookieMode.NEVER)
        self.endpoint = Endpoint(config, StaticKey.generate(rng), rng)
        self.core = HubCore(closed=False)
        self.now = 0.0
        self._run(self.core.start())

    def drain_events(self) -> None:
        while (item := self.endpoint.next_event()) is not None:
            session, event = item
            sid = session.local_cid
            if isinstance(event, SessionEstablished):
                self._run(self.core.on_established(sid, event.peer_static_key))
            elif isinstance(event, MessageReceived):
                self._run(self.core.on_message(sid, event.payload, int(self.now * 1000)))

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                session = self.endpoint.session(action.sid)
                assert session is not None
                self.endpoint.send_message(session, action.payload, self.now)
            elif isinstance(action, Store):
                self._run(self.core.on_store_result(action.token, _answer(action)))
            elif isinstance(action, Close):
                raise RuntimeError(f"the hub closed a session: {action.reason}")  # noqa: TRY004 (a bug, not a type)


def _answer(action: Store) -> object:
    """What an empty store answers ``action.op``."""
    if isinstance(action.op, LoadAccounts):
        return {}
    if isinstance(action.op, TouchDevice):
        return 0
    if isinstance(action.op, BindAccount):
        return [action.op.key]  # the name's keys: the binding took
    return []  # LoadReceipts, LoadMailbox


def _connect_clients(hub: _Hub, count: int, rng: Callable[[int], bytes]) -> None:
    """Dial ``count`` sessions into ``hub``, log each in and settle them; the clients are
    then dropped."""
    clients: list[Endpoint] = []
    for index in range(count):
        if index % _CLIENTS_PER_ENDPOINT == 0:
            clients.append(Endpoint(EndpointConfig(), StaticKey.generate(rng), rng))
        clients[-1].static_key = StaticKey.generate(rng)  # a key per user, as in production
        session = clients[-1].connect(hub.endpoint.static_key.public, _HUB, 0.0, 1_000_000 + index)
        hello = encode_frame(HelloFrame(f"idle-{index}", rng(8).hex()))  # as the fleet does
        clients[-1].send_message(session, hello, 0.0)
    # initiation, response, confirmation + hello, welcome + ack, ack
    for _ in range(5):
        _exchange(hub, clients)
    hub.now += 1.0  # past every delayed acknowledgement
    hub.endpoint.handle_timer(hub.now)
    for client in clients:
        client.handle_timer(hub.now)
    _exchange(hub, clients)


def _exchange(hub: _Hub, clients: list[Endpoint]) -> None:
    now = hub.now
    for number, client in enumerate(clients):
        while client.next_event() is not None:
            pass
        source = ("127.0.0.1", 10_000 + number)
        for data, _ in client.datagrams_to_send(now):
            hub.endpoint.receive_datagram(data, source, now)
    hub.drain_events()
    for data, (_, port) in hub.endpoint.datagrams_to_send(now):
        clients[port - 10_000].receive_datagram(data, _HUB, now)


def _short(filename: str) -> str:
    marker = "/udpim/"
    at = filename.rfind(marker)
    return filename[at + 1 :] if at >= 0 else filename.rsplit("/", 1)[-1]
