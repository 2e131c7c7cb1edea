"""Shortcuts the store tests share: protocol-shaped message ids and submit-then-wait."""

from __future__ import annotations

from udpim.store import Store


def mid(n: int) -> str:
    """Message id number ``n`` in the protocol's form (24 hex chars)."""
    return f"{n:024x}"


async def run(store: Store, op: object) -> object:
    """Submit ``op`` and wait for its result."""
    return await store.submit(op).wait()
