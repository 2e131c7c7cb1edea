"""Every peer operation on an inline peer store: meta, outbox states and order, inbox dedupe."""

from __future__ import annotations

import pytest
import trio

from tests.store.shortcuts import mid, run
from udpim.im.ops import (
    EnqueueOutbox,
    InboxEntry,
    LoadAccounts,
    LoadInbox,
    LoadPeerState,
    OutboxCounts,
    OutboxEntry,
    OutboxState,
    PeerState,
    PinHubKey,
    SetOutboxState,
    StoreInbox,
)
from udpim.store import SqliteStore, StoreError

DEVICE = "0123456789abcdef"
HUB_KEY = bytes(range(32))


def outgoing(n: int, to: str = "bob") -> EnqueueOutbox:
    return EnqueueOutbox(mid(n), to, f"text {n}", 1_700_000_000_000 + n)


def incoming(seq: int, n: int, sender: str = "bob") -> StoreInbox:
    return StoreInbox(seq, mid(n), sender, "alice", f"hello {n}", 1000 + n, 2000 + n)


async def load_state(store: SqliteStore) -> PeerState:
    state = await run(store, LoadPeerState("ffffffffffffffff"))
    assert isinstance(state, PeerState)
    return state


async def test_fresh_state_stores_the_offered_device_once(
    autojump_clock: trio.testing.MockClock, peer_store: SqliteStore
) -> None:
    state = await run(peer_store, LoadPeerState(DEVICE))
    assert state == PeerState(device=DEVICE, hub_key=None, outbox=[], last_seq=0)
    again = await load_state(peer_store)
    assert again.device == DEVICE


async def test_hub_key_is_pinned(
    autojump_clock: trio.testing.MockClock, peer_store: SqliteStore
) -> None:
    assert await run(peer_store, PinHubKey(HUB_KEY)) is None
    assert (await load_state(peer_store)).hub_key == HUB_KEY
    with pytest.raises(StoreError, match="PinHubKey failed"):
        await run(peer_store, PinHubKey(b"\x00" * 31))
    assert (await load_state(peer_store)).hub_key == HUB_KEY


async def test_outbox_keeps_enqueue_order_and_ignores_duplicates(
    autojump_clock: trio.testing.MockClock, peer_store: SqliteStore
) -> None:
    for n in (5, 1, 3):
        assert await run(peer_store, outgoing(n)) is None
    await run(peer_store, EnqueueOutbox(mid(1), "carol", "other text", 1))  # duplicate id
    state = await load_state(peer_store)
    assert state.outbox == [
        OutboxEntry(mid(n), "bob", f"text {n}", 1_700_000_000_000 + n, OutboxState.QUEUED)
        for n in (5, 1, 3)
    ]


async def test_settled_messages_leave_the_loaded_outbox(
    autojump_clock: trio.testing.MockClock, peer_store: SqliteStore
) -> None:
    for n in range(1, 5):
        await run(peer_store, outgoing(n))
    await run(peer_store, SetOutboxState(mid(1), OutboxState.ACCEPTED))
    await run(peer_store, SetOutboxState(mid(2), OutboxState.DELIVERED))
    await run(peer_store, SetOutboxState(mid(3), OutboxState.REJECTED))
    state = await load_state(peer_store)
    assert [(e.id, e.state) for e in state.outbox] == [
        (mid(1), OutboxState.ACCEPTED),
        (mid(4), OutboxState.QUEUED),
    ]
    assert await run(peer_store, OutboxCounts()) == {
        "queued": 1,
        "accepted": 1,
        "delivered": 1,
        "rejected": 1,
    }


TRANSITIONS = [
    # (path of requested states, resulting state)
    (["accepted"], "accepted"),
    (["delivered"], "delivered"),
    (["rejected"], "rejected"),
    (["accepted", "delivered"], "delivered"),
    (["accepted", "rejected"], "rejected"),
    (["delivered", "accepted"], "delivered"),
    (["delivered", "queued"], "delivered"),
    (["accepted", "queued"], "accepted"),
    (["rejected", "accepted"], "rejected"),
    (["rejected", "delivered"], "rejected"),
    (["delivered", "rejected"], "delivered"),
    (["accepted", "accepted"], "accepted"),
]


@pytest.mark.parametrize(("path", "final"), TRANSITIONS)
async def test_outbox_state_only_moves_forward(
    autojump_clock: trio.testing.MockClock,
    peer_store: SqliteStore,
    path: list[str],
    final: str,
) -> None:
    await run(peer_store, outgoing(1))
    for state in path:
        assert await run(peer_store, SetOutboxState(mid(1), OutboxState(state))) is None
    counts = await run(peer_store, OutboxCounts())
    assert isinstance(counts, dict)
    assert {state: count for state, count in counts.items() if count} == {final: 1}


async def test_outbox_state_of_an_unknown_id_is_a_no_op(
    autojump_clock: trio.testing.MockClock, peer_store: SqliteStore
) -> None:
    await run(peer_store, outgoing(1))
    await run(peer_store, SetOutboxState(mid(2), OutboxState.DELIVERED))
    counts = await run(peer_store, OutboxCounts())
    assert counts == {"queued": 1, "accepted": 0, "delivered": 0, "rejected": 0}


async def test_outbox_state_must_be_a_known_state(
    autojump_clock: trio.testing.MockClock, peer_store: SqliteStore
) -> None:
    await run(peer_store, outgoing(1))
    bogus = SetOutboxState(mid(1), "lost")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="unknown outbox state 'lost'"):
        await run(peer_store, bogus)


async def test_inbox_dedupes_by_sender_and_id_and_tracks_last_seq(
    autojump_clock: trio.testing.MockClock, peer_store: SqliteStore
) -> None:
    assert await run(peer_store, incoming(1, 1)) is True
    assert await run(peer_store, incoming(2, 2)) is True
    assert await run(peer_store, incoming(3, 1)) is False  # resent under a new seq
    assert await run(peer_store, incoming(4, 1, sender="carol")) is True
    assert (await load_state(peer_store)).last_seq == 4
    await run(peer_store, incoming(2, 2))  # an old duplicate does not move last_seq back
    assert (await load_state(peer_store)).last_seq == 4
    entries = await run(peer_store, LoadInbox(0, 100))
    assert isinstance(entries, list)
    assert [(e.sender, e.id) for e in entries] == [
        ("bob", mid(1)),
        ("bob", mid(2)),
        ("carol", mid(1)),
    ]


async def test_load_inbox_pages_by_rowid(
    autojump_clock: trio.testing.MockClock, peer_store: SqliteStore
) -> None:
    for n in range(1, 6):
        await run(peer_store, incoming(n, 10 - n))
    first = await run(peer_store, LoadInbox(0, 2))
    assert isinstance(first, list)
    assert first[0] == InboxEntry(first[0].rowid, mid(9), "bob", "alice", "hello 9", 1009, 2009)
    assert [e.id for e in first] == [mid(9), mid(8)]
    rest = await run(peer_store, LoadInbox(first[-1].rowid, 100))
    assert isinstance(rest, list)
    assert [e.id for e in rest] == [mid(7), mid(6), mid(5)]
    rowids = [e.rowid for e in first + rest]
    assert rowids == sorted(rowids)
    assert len(set(rowids)) == 5
    assert await run(peer_store, LoadInbox(rowids[-1], 100)) == []
    with pytest.raises(StoreError, match="limit"):
        await run(peer_store, LoadInbox(0, -5))


async def test_a_hub_op_fails_on_a_peer_store(
    autojump_clock: trio.testing.MockClock, peer_store: SqliteStore
) -> None:
    with pytest.raises(StoreError, match="peer store cannot execute LoadAccounts"):
        await run(peer_store, LoadAccounts())
