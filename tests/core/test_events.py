"""events.py: the queue a session's events wait in."""

from __future__ import annotations

import pytest

from udpim.core.events import EventQueue, MessageDelivered, PeerReachable


def test_event_queue_is_first_in_first_out_across_refills() -> None:
    queue = EventQueue()
    assert not queue
    queue.append(MessageDelivered(1))
    queue.append(MessageDelivered(2))
    assert queue
    assert queue.popleft() == MessageDelivered(1)
    queue.append(PeerReachable())  # appended while partly read
    assert queue.popleft() == MessageDelivered(2)
    assert queue.popleft() == PeerReachable()
    assert not queue
    queue.append(MessageDelivered(3))  # reused once read to the end
    assert queue.popleft() == MessageDelivered(3)
    assert not queue


def test_event_queue_pop_when_empty_raises() -> None:
    with pytest.raises(IndexError):
        EventQueue().popleft()
