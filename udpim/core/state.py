"""The session state machine: the only place where legality of a transition is decided.

Rules (h11 ``_state.py``):

* A session is always in exactly one ``SessionState``. Anything that changes behaviour is
  a state here, never a loose boolean beside it (reachability is ``ESTABLISHED`` versus
  ``UNREACHABLE``, not an ``is_reachable`` flag).
* ``TRANSITIONS`` maps ``(state, input)`` to the next state. ``next_state`` raises
  ``LocalProtocolError`` for a pair that is not in the table, and the caller's state is
  left unchanged. Inputs that do not change the state but are legal appear explicitly,
  mapping a state to itself, so the table lists everything a session can go through.
* docs/PROTOCOL.md's state diagram is generated from ``TRANSITIONS`` by
  ``state_diagram_mermaid()``; a test walks every row.

Theory of operation. Both sides pass through ``CONFIRMING``: keys exist, but nothing
has yet authenticated over the data channel from the peer. An initiator enters it when
the handshake response authenticates and may send at once; it leaves it on the
responder's first authenticated DATA packet (an ACK at least), which proves the responder
kept the session. A responder enters it on accepting an initiation; the initiator has
not yet proved it received the response, so the responder's address budget is bounded
(anti-amplification) and it holds its own data back until the initiator's first
authenticated DATA packet. A half-open session is kept as long as any other silent
session (``idle_timeout_s``): if the responder forgot it sooner, an initiator whose first
packets were all lost (an uplink outage right after the handshake) would be left talking
to nobody, and if the initiator gave up sooner it could abandon a session the responder
had already confirmed and delivered from. When nothing authenticated arrives for the
dead-peer timeout, an established session becomes ``UNREACHABLE`` and returns to
``ESTABLISHED`` on the next authenticated packet. A local close goes through ``CLOSING``
(a CLOSE frame is repeated in answer to the peer's packets for a short while); every
other end is immediate. A CLOSE frame always arrives in an authenticated packet, which
first moves ``CONFIRMING`` and ``UNREACHABLE`` sessions to ``ESTABLISHED``, so only
``ESTABLISHED`` and ``CLOSING`` see ``PEER_CLOSED``.
"""

from __future__ import annotations

from enum import Enum
from typing import final

from udpim.core.errors import LocalProtocolError

__all__ = [
    "TRANSITIONS",
    "Role",
    "SessionInput",
    "SessionState",
    "next_state",
    "state_diagram_mermaid",
]


@final
class SessionState(Enum):
    """Where a session is in its life. See the module docstring."""

    INITIATING = "initiating"
    CONFIRMING = "confirming"
    ESTABLISHED = "established"
    UNREACHABLE = "unreachable"
    CLOSING = "closing"
    CLOSED = "closed"


@final
class Role(Enum):
    """Which side of the handshake a session was; it shapes ``CONFIRMING`` (see above)."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


@final
class SessionInput(Enum):
    """What can happen to a session. Each is fed to ``next_state`` exactly once."""

    COOKIE_RECEIVED = "cookie received"  # the responder asked for a cookie round trip
    RESPONSE_RECEIVED = "response received"  # handshake response authenticated
    HANDSHAKE_TIMEOUT = "handshake timeout"  # no answer for handshake_timeout_s
    PACKET_AUTHENTICATED = "packet authenticated"  # any DATA packet that decrypted
    DEAD_PEER_TIMEOUT = "dead-peer timeout"
    IDLE_TIMEOUT = "idle timeout"
    PEER_CLOSED = "peer closed"  # authenticated CLOSE frame
    VIOLATION = "violation"  # authenticated input no honest peer sends
    APP_CLOSE = "app close"  # the application called close()
    CLOSING_DONE = "closing done"  # the closing period ended


S = SessionState
I = SessionInput  # noqa: E741 - the table reads better with a one-letter alias

TRANSITIONS: dict[tuple[SessionState, SessionInput], SessionState] = {
    (S.INITIATING, I.COOKIE_RECEIVED): S.INITIATING,
    (S.INITIATING, I.RESPONSE_RECEIVED): S.CONFIRMING,
    (S.INITIATING, I.HANDSHAKE_TIMEOUT): S.CLOSED,
    (S.INITIATING, I.APP_CLOSE): S.CLOSED,
    (S.CONFIRMING, I.PACKET_AUTHENTICATED): S.ESTABLISHED,
    (S.CONFIRMING, I.IDLE_TIMEOUT): S.CLOSED,
    (S.CONFIRMING, I.VIOLATION): S.CLOSING,
    (S.CONFIRMING, I.APP_CLOSE): S.CLOSING,
    (S.ESTABLISHED, I.PACKET_AUTHENTICATED): S.ESTABLISHED,
    (S.ESTABLISHED, I.DEAD_PEER_TIMEOUT): S.UNREACHABLE,
    (S.ESTABLISHED, I.IDLE_TIMEOUT): S.CLOSED,
    (S.ESTABLISHED, I.PEER_CLOSED): S.CLOSED,
    (S.ESTABLISHED, I.VIOLATION): S.CLOSING,
    (S.ESTABLISHED, I.APP_CLOSE): S.CLOSING,
    (S.UNREACHABLE, I.PACKET_AUTHENTICATED): S.ESTABLISHED,
    (S.UNREACHABLE, I.IDLE_TIMEOUT): S.CLOSED,
    (S.UNREACHABLE, I.VIOLATION): S.CLOSING,
    (S.UNREACHABLE, I.APP_CLOSE): S.CLOSING,
    (S.CLOSING, I.PACKET_AUTHENTICATED): S.CLOSING,
    (S.CLOSING, I.PEER_CLOSED): S.CLOSED,
    (S.CLOSING, I.CLOSING_DONE): S.CLOSED,
}

del S, I


def next_state(state: SessionState, event: SessionInput) -> SessionState:
    """Return the state that ``event`` leads to from ``state``.

    Raises:
        LocalProtocolError: if the table has no such transition (the caller keeps its
            state).
    """
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise LocalProtocolError(
            f"{event.value!r} is not allowed in state {state.value!r}"
        ) from None


def state_diagram_mermaid() -> str:
    """Render ``TRANSITIONS`` as a Mermaid state diagram (embedded in docs/PROTOCOL.md)."""
    lines = [
        "stateDiagram-v2",
        "    [*] --> initiating: connect()",
        "    [*] --> confirming: accept()",
    ]
    for (state, event), target in TRANSITIONS.items():
        lines.append(f"    {state.value} --> {target.value}: {event.value}")
    lines.append("    closed --> [*]")
    return "\n".join(lines) + "\n"
