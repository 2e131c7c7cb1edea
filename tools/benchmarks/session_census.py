"""Where a hub's transport memory per session goes, measured in this process.

What it owns: ``census_sessions``, which builds a hub-side ``Endpoint`` holding N idle
established sessions with no sockets at all (client endpoints in the same process hand
datagrams over directly), and measures with ``tracemalloc`` what the hub endpoint keeps:

1. tracing starts; the hub endpoint and the client endpoints are made; every client
   dials, the handshakes complete, each client sends one short message (as a login's
   ``hello`` would be) and the hub acknowledges it; time then jumps past every delayed
   acknowledgement, so every session is idle and nothing is in flight;
2. the client endpoints are dropped and the garbage collector runs, so what is still
   allocated since step 1 is the hub endpoint and its sessions;
3. the snapshot is grouped by source line (the line that allocated each live block),
   and divided by N.

That is the session layer only (``udpim.core``): the real hub adds its IM layer (a
``HubSession`` per session, accounts, presence, the store), which the hub process's
RSS in ``tools/bench idle`` includes and this census does not. ``tracemalloc`` counts
the bytes Python asked for, not the allocator's overhead or memory held by OpenSSL
(an AEAD context lives in C, outside Python's allocator), so RSS per session is larger.
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

__all__ = ["Census", "census_sessions"]

_HUB = ("127.0.0.2", 7575)
_CLIENTS_PER_ENDPOINT = 64


@dataclass(frozen=True, slots=True)
class Census:
    """A census of ``sessions`` idle hub-side sessions.

    Attributes:
        sessions: how many sessions the hub endpoint held.
        bytes_per_session: live Python bytes per session (tracemalloc), all lines.
        blocks_per_session: live allocations per session.
        top_lines: ``(file:line, bytes per session)``, largest first.
    """

    sessions: int
    bytes_per_session: float
    blocks_per_session: float
    top_lines: list[tuple[str, float]]


def census_sessions(count: int, seed: int = 1, top: int = 12) -> Census:
    """Measure ``count`` idle hub-side sessions (see the module docstring).

    Raises:
        RuntimeError: a handshake did not complete (a core bug; never expected).
    """
    rng = random.Random(seed).randbytes
    gc.collect()
    tracemalloc.start(1)
    try:
        before = tracemalloc.take_snapshot()
        hub = Endpoint(EndpointConfig(cookie_mode=CookieMode.NEVER), StaticKey.generate(rng), rng)
        _connect_clients(hub, count, rng)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    if len(hub) != count:
        raise RuntimeError(f"{len(hub)} of {count} sessions established")
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = after.filter_traces(filters).compare_to(before.filter_traces(filters), "lineno")
    total = sum(stat.size_diff for stat in stats)
    blocks = sum(stat.count_diff for stat in stats)
    lines = [
        (f"{_short(stat.traceback[0].filename)}:{stat.traceback[0].lineno}", stat.size_diff / count)
        for stat in sorted(stats, key=lambda stat: stat.size_diff, reverse=True)[:top]
    ]
    del hub
    return Census(count, total / count, blocks / count, lines)


def _connect_clients(hub: Endpoint, count: int, rng: Callable[[int], bytes]) -> None:
    """Dial ``count`` sessions into ``hub`` and settle them; the clients are then dropped."""
    now = 0.0
    clients: list[Endpoint] = []
    for index in range(count):
        if index % _CLIENTS_PER_ENDPOINT == 0:
            clients.append(Endpoint(EndpointConfig(), StaticKey.generate(rng), rng))
        clients[-1].static_key = StaticKey.generate(rng)  # a key per user, as in production
        session = clients[-1].connect(hub.static_key.public, _HUB, now, 1_000_000 + index)
        clients[-1].send_message(session, b'{"t":"hello"}', now)
    for _ in range(4):  # initiation, response, confirmation + message, acknowledgement
        _exchange(hub, clients, now)
    now += 1.0  # past every delayed acknowledgement
    hub.handle_timer(now)
    for client in clients:
        client.handle_timer(now)
    _exchange(hub, clients, now)
    while hub.next_event() is not None:
        pass


def _exchange(hub: Endpoint, clients: list[Endpoint], now: float) -> None:
    for number, client in enumerate(clients):
        while client.next_event() is not None:
            pass
        source = ("127.0.0.1", 10_000 + number)
        for data, _ in client.datagrams_to_send(now):
            hub.receive_datagram(data, source, now)
    while hub.next_event() is not None:
        pass
    for data, (_, port) in hub.datagrams_to_send(now):
        clients[port - 10_000].receive_datagram(data, _HUB, now)


def _short(filename: str) -> str:
    marker = "/udpim/"
    at = filename.rfind(marker)
    return filename[at + 1 :] if at >= 0 else filename.rsplit("/", 1)[-1]
