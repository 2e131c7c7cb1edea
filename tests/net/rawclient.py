"""A hand-driven client for the hub: a bare udpim ``Endpoint`` that speaks IM frames the
test writes itself (the core plays the remote peer), on a netsim host.

It lets a test send what no honest daemon sends (extra members, another user's name)
and see exactly which frames the hub answers with.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from netsim.socket import Host
from udpim.core.config import EndpointConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import Event, MessageReceived, SessionClosed
from udpim.core.session import Session
from udpim.net.udp import EndpointDriver


class RawClient:
    """One session to the hub; frames in as JSON objects, frames out as dicts."""

    def __init__(self, driver: EndpointDriver, session: Session) -> None:
        self._driver = driver
        self._session = session
        self.frames: list[dict[str, object]] = []
        self.closed: SessionClosed | None = None
        self._changed = trio.Event()

    def on_event(self, session: Session, event: Event) -> None:
        if isinstance(event, MessageReceived):
            self.frames.append(json.loads(event.payload))
        elif isinstance(event, SessionClosed):
            self.closed = event
        self._changed.set()

    def send(self, frame: dict[str, object]) -> None:
        payload = json.dumps(frame, separators=(",", ":")).encode()
        self._driver.send_message(self._session, payload)

    async def wait_frame(self, kind: str, *, timeout_s: float = 60.0) -> dict[str, object]:
        """The first received frame of type ``kind`` (waiting for it)."""
        with trio.fail_after(timeout_s):
            while True:
                for frame in self.frames:
                    if frame["t"] == kind:
                        return frame
                self._changed = trio.Event()
                await self._changed.wait()

    async def wait_closed(self, *, timeout_s: float = 60.0) -> SessionClosed:
        with trio.fail_after(timeout_s):
            while self.closed is None:
                self._changed = trio.Event()
                await self._changed.wait()
        return self.closed


@asynccontextmanager
async def open_raw_client(
    host: Host, key: StaticKey, hub: tuple[str, int], hub_key: bytes, seed: int
) -> AsyncIterator[RawClient]:
    """Dial the hub from ``host`` with ``key``; yields once the dial started."""
    import random

    rng = random.Random(f"raw/{seed}").randbytes
    sock = host.socket()
    await sock.bind(("0.0.0.0", 0))
    holder: list[RawClient] = []

    def on_event(session: Session, event: Event) -> None:
        holder[0].on_event(session, event)

    driver = EndpointDriver(
        Endpoint(EndpointConfig(), key, rng),
        sock,
        on_event,
        wall_clock_ns=lambda: 1_800_000_000_000_000_000 + round(trio.current_time() * 1e9),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.serve)
        client = RawClient(driver, driver.connect(hub_key, hub))
        holder.append(client)
        try:
            yield client
        finally:
            nursery.cancel_scope.cancel()
            sock.close()
