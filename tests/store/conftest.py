"""Fixtures of the store tests: inline hub and peer stores in a temporary directory.

Inline stores (``threaded=False``) run every op inside ``submit``, so the op tests are
deterministic and run on the autojump ``MockClock``; the writer thread has its own tests
(test_writer.py) on the real clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from udpim.store import SqliteStore


@pytest.fixture
async def hub_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An empty inline hub store."""
    async with await SqliteStore.open(tmp_path / "hub.db", "hub", threaded=False) as store:
        yield store


@pytest.fixture
async def peer_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An empty inline peer store."""
    async with await SqliteStore.open(tmp_path / "peer.db", "peer", threaded=False) as store:
        yield store
