"""Every hub operation on an inline hub store: results, idempotence, seqs, cursors, receipts."""

from __future__ import annotations

import pytest
import trio

from tests.store.shortcuts import mid, run
from udpim.im.ops import (
    AckMailbox,
    BindAccount,
    DeleteReceipt,
    Delivery,
    LoadAccounts,
    LoadMailbox,
    LoadPeerState,
    LoadReceipts,
    LoadUserKeys,
    ReceiptDue,
    StoreMessage,
    TouchDevice,
)
from udpim.store import SqliteStore, StoreError

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


def message(n: int, *, sender: str = "alice", to: str = "bob", device: str = "a1") -> StoreMessage:
    return StoreMessage(sender, device, mid(n), to, f"body {n}", 1_700_000_000_000 + n)


async def test_accounts_bind_and_load(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    assert await run(hub_store, LoadAccounts()) == {}
    assert await run(hub_store, BindAccount("alice", KEY_A)) == [KEY_A]
    assert await run(hub_store, BindAccount("alice", KEY_A)) == [KEY_A]  # again: no-op
    assert await run(hub_store, BindAccount("alice", KEY_B)) == sorted([KEY_A, KEY_B])
    assert await run(hub_store, BindAccount("bob", KEY_B)) == [KEY_B]
    accounts = await run(hub_store, LoadAccounts())
    assert accounts == {"alice": sorted([KEY_A, KEY_B]), "bob": [KEY_B]}
    assert await run(hub_store, LoadUserKeys("alice")) == sorted([KEY_A, KEY_B])
    assert await run(hub_store, LoadUserKeys("carol")) == []


async def test_a_first_use_binding_takes_only_a_free_name(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    assert await run(hub_store, BindAccount("alice", KEY_A, first_use=True)) == [KEY_A]
    assert await run(hub_store, BindAccount("alice", KEY_A, first_use=True)) == [KEY_A]
    # The name is taken: the answer is its keys, without the newcomer's; nothing written.
    assert await run(hub_store, BindAccount("alice", KEY_B, first_use=True)) == [KEY_A]
    assert await run(hub_store, LoadAccounts()) == {"alice": [KEY_A]}


async def test_bind_account_rejects_a_malformed_key(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    with pytest.raises(StoreError, match="BindAccount failed"):
        await run(hub_store, BindAccount("alice", b"short"))
    assert await run(hub_store, LoadAccounts()) == {}


async def test_store_message_gives_increasing_seqs_per_recipient(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    assert await run(hub_store, message(1)) == (1, True)
    assert await run(hub_store, message(2)) == (2, True)
    assert await run(hub_store, message(3, to="carol")) == (1, True)
    assert await run(hub_store, message(4, sender="carol")) == (3, True)


async def test_duplicate_message_returns_the_stored_seq(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    await run(hub_store, message(1))
    await run(hub_store, message(2))
    assert await run(hub_store, message(1)) == (1, False)
    assert await run(hub_store, message(3)) == (3, True)  # no seq was burnt by the duplicate
    mailbox = await run(hub_store, LoadMailbox("bob", 0, 100))
    assert isinstance(mailbox, list)
    assert [d.id for d in mailbox] == [mid(1), mid(2), mid(3)]


async def test_same_id_from_another_sender_is_another_message(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    await run(hub_store, message(1, sender="alice"))
    assert await run(hub_store, message(1, sender="mallory")) == (2, True)


async def test_load_mailbox_pages_in_seq_order(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    for n in range(1, 8):
        await run(hub_store, message(n))
    await run(hub_store, message(100, to="carol"))
    page = await run(hub_store, LoadMailbox("bob", 2, 3))
    assert page == [
        Delivery(seq, mid(seq), "alice", "bob", f"body {seq}", 1_700_000_000_000 + seq)
        for seq in (3, 4, 5)
    ]
    rest = await run(hub_store, LoadMailbox("bob", 5, 100))
    assert isinstance(rest, list)
    assert [d.seq for d in rest] == [6, 7]
    assert await run(hub_store, LoadMailbox("bob", 7, 100)) == []
    assert await run(hub_store, LoadMailbox("nobody", 0, 100)) == []
    assert await run(hub_store, LoadMailbox("bob", 0, 0)) == []


async def test_load_mailbox_refuses_a_negative_limit(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    await run(hub_store, message(1))
    with pytest.raises(StoreError, match="limit"):
        await run(hub_store, LoadMailbox("bob", 0, -1))


async def test_new_device_cursor_starts_at_the_mailbox_head(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    assert await run(hub_store, TouchDevice("bob", "b1")) == 0
    for n in range(1, 4):
        await run(hub_store, message(n))
    assert await run(hub_store, TouchDevice("bob", "b2")) == 3
    assert await run(hub_store, TouchDevice("bob", "b1")) == 0  # existing: unchanged
    await run(hub_store, AckMailbox("bob", "b1", 2, 5000))
    assert await run(hub_store, TouchDevice("bob", "b1")) == 2


async def test_ack_moves_the_cursor_forward_only_and_not_past_the_head(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    await run(hub_store, TouchDevice("bob", "b1"))
    for n in range(1, 6):
        await run(hub_store, message(n))
    await run(hub_store, AckMailbox("bob", "b1", 4, 5000))
    assert await run(hub_store, AckMailbox("bob", "b1", 2, 6000)) == []
    assert await run(hub_store, TouchDevice("bob", "b1")) == 4
    await run(hub_store, AckMailbox("bob", "b1", 99, 7000))
    assert await run(hub_store, TouchDevice("bob", "b1")) == 5
    await run(hub_store, message(6))
    acked = await run(hub_store, AckMailbox("bob", "b1", 6, 8000))
    assert acked == [ReceiptDue("alice", "a1", mid(6), "bob", 8000)]


async def test_ack_from_an_unknown_device_fails_alone(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    await run(hub_store, message(1))
    with pytest.raises(StoreError, match="unknown device"):
        await run(hub_store, AckMailbox("bob", "b9", 1, 5000))
    assert await run(hub_store, TouchDevice("bob", "b9")) == 1


async def test_receipts_only_for_the_first_device_to_ack(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    await run(hub_store, TouchDevice("bob", "b1"))
    await run(hub_store, TouchDevice("bob", "b2"))
    await run(hub_store, message(1, device="a1"))
    await run(hub_store, message(2, device="a2"))
    await run(hub_store, message(3, sender="carol", device="c1"))
    first = await run(hub_store, AckMailbox("bob", "b1", 2, 5000))
    assert first == [
        ReceiptDue("alice", "a1", mid(1), "bob", 5000),
        ReceiptDue("alice", "a2", mid(2), "bob", 5000),
    ]
    later = await run(hub_store, AckMailbox("bob", "b2", 3, 6000))
    assert later == [ReceiptDue("carol", "c1", mid(3), "bob", 6000)]
    assert await run(hub_store, AckMailbox("bob", "b1", 3, 7000)) == []


async def test_receipts_are_loaded_per_sending_device_and_deleted(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    await run(hub_store, TouchDevice("bob", "b1"))
    await run(hub_store, TouchDevice("carol", "c1"))
    await run(hub_store, message(1, device="a1"))
    await run(hub_store, message(2, device="a2"))
    await run(hub_store, message(3, device="a1", to="carol"))
    await run(hub_store, message(4, device="a1"))
    await run(hub_store, AckMailbox("carol", "c1", 1, 4000))
    await run(hub_store, AckMailbox("bob", "b1", 3, 5000))
    owed = await run(hub_store, LoadReceipts("alice", "a1"))
    assert owed == [
        ReceiptDue("alice", "a1", mid(3), "carol", 4000),
        ReceiptDue("alice", "a1", mid(1), "bob", 5000),
        ReceiptDue("alice", "a1", mid(4), "bob", 5000),
    ]
    assert await run(hub_store, DeleteReceipt("alice", "a1", mid(1))) is None
    await run(hub_store, DeleteReceipt("alice", "a1", mid(1)))  # already gone: no-op
    await run(hub_store, DeleteReceipt("alice", "a2", mid(3)))  # not a2's receipt: no-op
    remaining = await run(hub_store, LoadReceipts("alice", "a1"))
    assert isinstance(remaining, list)
    assert [r.id for r in remaining] == [mid(3), mid(4)]
    assert await run(hub_store, LoadReceipts("alice", "a2")) == [
        ReceiptDue("alice", "a2", mid(2), "bob", 5000)
    ]
    assert await run(hub_store, LoadReceipts("bob", "b1")) == []


async def test_a_peer_op_fails_on_a_hub_store(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    with pytest.raises(StoreError, match="hub store cannot execute LoadPeerState"):
        await run(hub_store, LoadPeerState("0123456789abcdef"))
    with pytest.raises(StoreError, match="cannot execute str"):
        await run(hub_store, "LoadAccounts")
