"""Regenerate the generated sections of docs/PROTOCOL.md from the code they describe.

What this module owns: every part of the specification that is a fact of the code and
would otherwise drift. Each lives between ``<!-- generated:NAME -->`` and
``<!-- /generated -->`` and is rebuilt from its source:

=====================  ===========================================================
``constants``          protocol constants, read from the core modules
``varint-examples``    ``tools.protocol_vectors`` (RFC 9000 A.1 by ``encode_varint``)
``packet-numbers``     ``tools.protocol_vectors`` (RFC 9000 A.2/A.3 by ``wire.py``)
``frame-examples``     ``tools.protocol_vectors`` (one encoding per ``FrameType``)
``handshake-vector``   ``tools.protocol_vectors`` (keys -> packets, checked)
``handshake-schedule`` a ``Session`` driven through a lost handshake with defaults
``state-diagram``      ``state.state_diagram_mermaid()``
``state-table``        ``state.TRANSITIONS`` plus the trigger of each row (below)
``tunables``           ``SessionConfig``/``EndpointConfig`` fields, defaults, docstrings
``drop-reasons``       ``DropReason`` plus when each happens (below)
``close-reasons``      ``CloseReason`` plus who sends it and when (below)
=====================  ===========================================================

Rules it keeps: the hand-written descriptions below are keyed by enum member or table
row, and a member or row without one is an error, so a new state transition, drop
reason, close code or tunable cannot reach the document undocumented. A marker in the
document without a generator, or a generator without a marker, is an error too.

Run ``python -m tools.protocol_doc`` to rewrite the document, ``--check`` to exit 1 if
it is stale (tests/core/test_protocol_doc.py does the same).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

from tools import protocol_vectors
from udpim.core import config as config_module
from udpim.core.config import EndpointConfig, SessionConfig
from udpim.core.crypto import StaticKey
from udpim.core.errors import DropReason
from udpim.core.frames import CloseReason
from udpim.core.session import Session
from udpim.core.state import TRANSITIONS, SessionInput, SessionState, state_diagram_mermaid

__all__ = ["DOC_PATH", "generated_sections", "main", "regenerate"]

_K = TypeVar("_K")
_V = TypeVar("_V")

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md"

_SECTION = re.compile(
    r"(?P<open><!-- generated:(?P<name>[a-z0-9-]+) -->\n)"
    r"(?P<body>.*?)(?P<close><!-- /generated -->)",
    re.DOTALL,
)

_CONSTANT_MODULES = (
    "udpim.core.config",
    "udpim.core.wire",
    "udpim.core.framecodec",
    "udpim.core.varint",
    "udpim.core.handshake",
    "udpim.core.crypto",
    "udpim.core.cookies",
    "udpim.core.ackranges",
    "udpim.core.recvbuffer",
    "udpim.core.recovery",
    "udpim.core.congestion",
    "udpim.core.dialer",
    "udpim.core.transmit",
    "udpim.core.packing",
)

_CONSTANTS: dict[str, str] = {
    "VERSION": "version in bits 7-6 of every first byte",
    "CID_BYTES": "connection ID length",
    "AEAD_TAG_BYTES": "Poly1305 tag length",
    "INITIATION_BYTES": "exact INITIATION size",
    "RESPONSE_BYTES": "exact RESPONSE size",
    "COOKIE_REPLY_BYTES": "exact COOKIE_REPLY size",
    "INITIATION_MAC1_OFFSET": "mac1 covers INITIATION[0:this]",
    "INITIATION_MAC2_OFFSET": "mac2 covers INITIATION[0:this]",
    "RESPONSE_MAC1_OFFSET": "mac1 covers RESPONSE[0:this]",
    "RESPONSE_MAC2_OFFSET": "offset of RESPONSE mac2 (always zero)",
    "MIN_DATA_CIPHERTEXT_BYTES": "a DATA packet carries at least tag + 1 frame byte",
    "MAX_DATAGRAM_BYTES": "larger received datagrams are dropped `oversized`",
    "MIN_DATAGRAM_BYTES": "smallest allowed `max_datagram_bytes`",
    "MAX_MESSAGE_BYTES": "largest message any receiver accepts (a sender may use less)",
    "INITIAL_MAX_DATA_BYTES": "flow-control credit assumed before the receiver's first "
    "WINDOW; every receiver grants at least this and advertises more in its first packet",
    "MAX_PACKET_NUMBER": "largest packet number (2^62 - 1)",
    "MAX_VARINT": "largest varint (2^62 - 1)",
    "MAX_CLOSE_TEXT_BYTES": "longest CLOSE text (UTF-8 bytes)",
    "PATH_DATA_BYTES": "PATH_CHALLENGE/PATH_RESPONSE data length",
    "PROTOCOL_NAME": "Noise protocol name, hashed into the first h",
    "TIMESTAMP_BYTES": "initiation timestamp length (u64be nanoseconds)",
    "KEY_UPDATE_LABEL": "HKDF-Expand info of the key-update ratchet",
    "PACKET_KEY_LABEL": "HKDF-Expand info of a packet key",
    "MIN_REPLAY_WINDOW_PACKETS": "smallest allowed replay window",
    "MAC1_LABEL": "mac1 key = SHA-256(this \\|\\| receiver static public key)",
    "COOKIE_LABEL": "cookie AEAD key = SHA-256(this \\|\\| responder static public key)",
    "MAC_BYTES": "mac1/mac2 length (truncated HMAC-SHA256)",
    "COOKIE_BYTES": "cookie length",
    "MAX_ACK_RANGES": "ranges in one ACK frame at most (the newest)",
    "ACK_SPAN_PACKETS": "ranges ending further below the largest are left out of ACKs",
    "MAX_TRACKED_RANGES": "received ranges a receiver remembers",
    "MAX_MESSAGES_AHEAD": "message numbers allowed past the first incomplete message",
    "MAX_PROBES": "probe datagrams per PTO expiry",
    "INITIAL_WINDOW_CAP_BYTES": "initial congestion window cap (RFC 9002 7.2)",
    "LOSS_REDUCTION_FACTOR": "window multiplier on a new loss (RFC 9002 7.3.2)",
    "PERSISTENT_CONGESTION_THRESHOLD": "PTOs of total loss that collapse the window",
    "KEPT_ATTEMPTS": "recent initiations a RESPONSE/COOKIE_REPLY may answer",
    "MAX_PENDING_PATH_RESPONSES": "PATH_CHALLENGEs answered per flush at most",
    "MAX_DATAGRAMS_PER_FLUSH": "datagrams one session emits per `datagrams_to_send` call",
}

_TUNABLE_ORIGINS: dict[str, str] = {
    "max_datagram_bytes": "RFC 9000 §14: 1200-byte datagrams always work",
    "max_message_bytes": "udpim",
    "receive_window_bytes": "udpim (not negotiated: both ends must agree)",
    "handshake_retry_s": "WireGuard REKEY_TIMEOUT is 5 s; udpim starts faster and doubles",
    "handshake_retry_max_s": "udpim",
    "handshake_timeout_s": "WireGuard REKEY_ATTEMPT_TIME is 90 s",
    "initial_rtt_s": "RFC 9002 §6.2.2 kInitialRtt",
    "max_ack_delay_s": "RFC 9000 §18.2 max_ack_delay default (not negotiated)",
    "ack_eliciting_threshold": "RFC 9000 §13.2.2",
    "packet_threshold": "RFC 9002 §6.1.1 kPacketThreshold",
    "time_threshold": "RFC 9002 §6.1.2 kTimeThreshold",
    "timer_granularity_s": "RFC 9002 §6.1.2 kGranularity",
    "max_pto_backoff": "udpim cap (RFC 9002 §6.2.1 leaves backoff uncapped)",
    "congestion_control": "udpim: NewReno gated by queueing delay; RFC 9002 NewReno selectable",
    "fec": "udpim: sliding-window random linear FEC, switched on by the loss the peer reports",
    "heartbeat_interval_s": "WireGuard PersistentKeepalive (usual 25 s)",
    "dead_peer_timeout_s": "udpim (over two heartbeat intervals)",
    "idle_timeout_s": "RFC 9000 §10.1 idle timeout (not negotiated)",
    "rekey_after_s": "WireGuard REKEY_AFTER_TIME",
    "rekey_after_packets": "udpim (WireGuard REKEY_AFTER_MESSAGES is 2^60)",
    "replay_window_packets": "RFC 4303 §3.4.3 / RFC 6479 sliding window",
    "path_validation_timeout_s": "RFC 9000 §8.2.4: 3 x PTO at kInitialRtt",
    "session": "the sessions' `SessionConfig`",
    "cookie_mode": "WireGuard: cookies only under load",
    "load_threshold_handshakes": "udpim",
    "cookie_secret_lifetime_s": "WireGuard COOKIE_SECRET_MAX_AGE",
    "max_sessions": "udpim",
}

_S, _I = SessionState, SessionInput
_TRIGGERS: dict[tuple[SessionState, SessionInput], str] = {
    (_S.INITIATING, _I.COOKIE_RECEIVED): "a COOKIE_REPLY opens under one of the last "
    "`KEPT_ATTEMPTS` initiations: keep the cookie, send a fresh initiation with mac2 now",
    (_S.INITIATING, _I.RESPONSE_RECEIVED): "a RESPONSE authenticates against one of the last "
    "`KEPT_ATTEMPTS` initiations: install keys, `SessionEstablished`, owe one ack-eliciting "
    "packet (confirmation); the initiator may send at once",
    (_S.INITIATING, _I.HANDSHAKE_TIMEOUT): "`handshake_timeout_s` after connect: "
    "`SessionClosed(HANDSHAKE_TIMEOUT)`, nothing sent",
    (_S.INITIATING, _I.APP_CLOSE): "`close()` before any keys exist: nothing sent",
    (_S.CONFIRMING, _I.PACKET_AUTHENTICATED): "the peer's first DATA packet authenticates. "
    "Responder: the initiator's address is validated (if the packet came from it), "
    "`SessionEstablished`, it may send. Initiator: proof the responder kept the session",
    (_S.CONFIRMING, _I.IDLE_TIMEOUT): "no DATA from the peer for `idle_timeout_s`. "
    "Responder: forgotten silently (never announced). Initiator: "
    "`SessionClosed(IDLE_TIMEOUT)`",
    (_S.CONFIRMING, _I.VIOLATION): "the first packet authenticates but its frames do not "
    "decode: CLOSE(PROTOCOL_VIOLATION)",
    (_S.CONFIRMING, _I.APP_CLOSE): "`close()` before confirmation: a CLOSE is sent",
    (_S.ESTABLISHED, _I.PACKET_AUTHENTICATED): "any DATA packet authenticates",
    (_S.ESTABLISHED, _I.DEAD_PEER_TIMEOUT): "nothing authenticated for "
    "`dead_peer_timeout_s`: `PeerUnreachable`; sending goes on",
    (_S.ESTABLISHED, _I.IDLE_TIMEOUT): "nothing authenticated for `idle_timeout_s` (only "
    "reached directly if it is not above `dead_peer_timeout_s`): silent close",
    (_S.ESTABLISHED, _I.PEER_CLOSED): "an authenticated CLOSE: complete messages are "
    "delivered, `SessionClosed(by_peer=True)`, nothing sent",
    (_S.ESTABLISHED, _I.VIOLATION): "authenticated input no honest peer sends: CLOSE(code, detail)",
    (_S.ESTABLISHED, _I.APP_CLOSE): "`close()`: CLOSE(code, text)",
    (_S.UNREACHABLE, _I.PACKET_AUTHENTICATED): "any DATA packet authenticates: `PeerReachable`",
    (_S.UNREACHABLE, _I.IDLE_TIMEOUT): "silent for `idle_timeout_s`: "
    "`SessionClosed(IDLE_TIMEOUT)`, nothing sent",
    (_S.UNREACHABLE, _I.VIOLATION): "a packet authenticates but its frames do not decode",
    (_S.UNREACHABLE, _I.APP_CLOSE): "`close()`: CLOSE(code, text)",
    (_S.CLOSING, _I.PACKET_AUTHENTICATED): "the peer is still sending: repeat our CLOSE "
    "(once per flush); its frames are ignored",
    (_S.CLOSING, _I.PEER_CLOSED): "the peer's CLOSE arrives",
    (_S.CLOSING, _I.CLOSING_DONE): "3 x PTO after the close",
}
del _S, _I

_DROPS: dict[DropReason, str] = {
    DropReason.TRUNCATED: "empty datagram; handshake packet shorter than its fixed size; "
    "DATA shorter than header + 17 bytes",
    DropReason.MALFORMED: "handshake packet with bits 3-0 set or longer than its size; DATA "
    "with reserved bit 2 set; an X25519 key giving an all-zero secret; RESPONSE mac2 not zero",
    DropReason.UNKNOWN_VERSION: "version bits are not `01`; never answered",
    DropReason.OVERSIZED: "(endpoint) datagram over `MAX_DATAGRAM_BYTES`, dropped unread",
    DropReason.UNKNOWN_CONNECTION: "(endpoint) no session owns the DATA dcid / RESPONSE or "
    "COOKIE_REPLY receiver_cid; (initiator) a RESPONSE or COOKIE_REPLY for another cid",
    DropReason.BAD_MAC: "mac1 of an INITIATION (responder) or RESPONSE (initiator) is wrong",
    DropReason.DECRYPT_FAILED: "an AEAD tag fails: DATA under every eligible key (or its "
    "previous key was discarded), `enc_static`, `enc_timestamp`, `enc_empty`, a "
    "COOKIE_REPLY that answers none of the recent initiations",
    DropReason.REPLAYED: "DATA packet number already authenticated, or at least "
    "`replay_window_packets` below the largest (network duplicates land here)",
    DropReason.STALE_INITIATION: "initiation timestamp not greater than the last one "
    "accepted from the same static key",
    DropReason.UNKNOWN_PEER: "(endpoint) the owner's `accept_peer` refused the initiator's "
    "static key; no answer",
    DropReason.COOKIE_REQUIRED: "(endpoint) a cookie is required and mac2 is missing or "
    "wrong; a COOKIE_REPLY was sent instead",
    DropReason.UNEXPECTED: "well-formed but not acceptable now: DATA before keys or after "
    "close, RESPONSE/COOKIE_REPLY to a responder or after the handshake, a duplicate "
    "RESPONSE, a packet type the receiver does not take",
    DropReason.RATE_LIMITED: "(endpoint) initiation while `max_sessions` sessions exist",
}

_CLOSES: dict[CloseReason, tuple[str, str]] = {
    CloseReason.NORMAL: ("yes", "the application called `close()` (the default code)"),
    CloseReason.IDLE_TIMEOUT: ("no", "nothing authenticated for `idle_timeout_s`"),
    CloseReason.PROTOCOL_VIOLATION: (
        "yes",
        "undecodable frames after authentication, an ACK of a never-sent packet number, "
        "inconsistent DATA (message over `max_message_bytes`, fragment past its end, "
        "disagreeing or overlapping message positions)",
    ),
    CloseReason.FLOW_CONTROL: (
        "yes",
        "DATA at or beyond `max_data`, more buffered than the window, or a message number "
        "`MAX_MESSAGES_AHEAD` past the first incomplete one",
    ),
    CloseReason.HANDSHAKE_TIMEOUT: ("no", "no RESPONSE within `handshake_timeout_s`"),
    CloseReason.SHUTDOWN: ("yes", "the owner shuts the endpoint down (`udpim.net` default)"),
    CloseReason.REPLACED: (
        "yes",
        "the owner replaced this session by a newer one from the same peer",
    ),
}


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _require(table: dict[_K, _V], key: _K, what: str) -> _V:
    if key not in table:
        raise ValueError(f"{what} {key!r} is not described in tools/protocol_doc.py")
    return table[key]


def _show(value: object) -> str:
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if isinstance(value, bytes):
        return f'`"{value.decode()}"`'
    if dataclasses.is_dataclass(value):
        return f"`{type(value).__name__}()`"
    if isinstance(value, float) and not value.is_integer():
        fraction = Fraction(value)
        small = f" ({fraction})" if fraction.denominator <= 16 else ""
        return f"{value!r}{small}"
    if isinstance(value, int) and value >= 1024 and value & (value - 1) == 0:
        return f"{value} (2^{value.bit_length() - 1})"
    return repr(value)


def _defines(module_name: str, name: str) -> bool:
    """Whether the module's own source assigns ``name`` at top level (not an import)."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    for statement in tree.body:
        targets = (
            statement.targets
            if isinstance(statement, ast.Assign)
            else [statement.target]
            if isinstance(statement, ast.AnnAssign)
            else []
        )
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return True
    return False


def _constants() -> str:
    modules = [name for name in _CONSTANT_MODULES if importlib.util.find_spec(name) is not None]
    rows = []
    for name, meaning in _CONSTANTS.items():
        owner = next((module for module in modules if _defines(module, name)), None)
        if owner is None:
            raise ValueError(f"constant {name} is not defined in any of {_CONSTANT_MODULES}")
        value = getattr(importlib.import_module(owner), name)
        rows.append((f"`{name}`", _show(value), meaning, f"`{owner.rsplit('.', 1)[1]}.py`"))
    return _table(("constant", "value", "meaning", "module"), rows)


def _field_docs(cls: type) -> list[tuple[str, str, str]]:
    """``(group, field, docstring)`` in declaration order, read from config.py's source."""
    source = inspect.getsource(config_module)
    groups = [
        (number, match.group(1))
        for number, line in enumerate(source.splitlines(), start=1)
        if (match := re.match(r"\s*# --- (.+?) -+$", line))
    ]
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    found = []
    for index, statement in enumerate(node.body):
        if not isinstance(statement, ast.AnnAssign) or not isinstance(statement.target, ast.Name):
            continue
        following = node.body[index + 1] if index + 1 < len(node.body) else None
        doc = ""
        if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            doc = str(following.value.value)
        in_class = [g for line, g in groups if node.lineno < line < statement.lineno]
        found.append((in_class[-1] if in_class else "", statement.target.id, doc))
    return found


def _tunables() -> str:
    parts = []
    for cls in (SessionConfig, EndpointConfig):
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        rows: dict[str, list[tuple[str, ...]]] = {}
        for group, name, doc in _field_docs(cls):
            text = " ".join(doc.split()).replace("``", "`").replace("|", "\\|") or "—"
            origin = _require(_TUNABLE_ORIGINS, name, "tunable")
            row = (f"`{name}`", _show(defaults[name]), text, origin)
            rows.setdefault(group, []).append(row)
        for group, group_rows in rows.items():
            title = f"`{cls.__name__}`" + (f": {group}" if group else "")
            parts.append(
                f"**{title}**\n\n" + _table(("field", "default", "meaning", "follows"), group_rows)
            )
    return "\n".join(parts)


def _handshake_schedule() -> str:
    """Drive an initiator whose initiations all vanish, with the default config."""
    config = SessionConfig()
    counter = iter(range(1 << 30))

    def rng(size: int) -> bytes:
        return next(counter).to_bytes(4, "big").rjust(size, b"\x01")

    peer = StaticKey.from_bytes(bytes(range(1, 33))).public
    session = Session.initiate(
        config=config,
        local_key=StaticKey.from_bytes(bytes(range(33, 65))),
        peer_public=peer,
        peer_address=("127.0.0.1", 1),
        local_cid=b"\x00\x00\x00\x01",
        rng=rng,
        now=0.0,
        timestamp_ns=0,
    )
    sent: list[float] = []
    now = 0.0
    for _ in range(10_000):  # a handshake that never gives up would be a bug: stop
        if session.datagrams_to_send(now):
            sent.append(now)
        deadline = session.get_timer()
        if deadline is None:
            break
        now = deadline
        session.handle_timer(now)
    else:
        raise RuntimeError("the handshake never timed out")
    times = ", ".join(f"{t:g}" for t in sent)
    return (
        f"With the defaults, initiations go out at t = {times} s and the session closes "
        f"with `HANDSHAKE_TIMEOUT` at t = {now:g} s ({len(sent)} initiations).\n"
    )


def _state_table() -> str:
    rows = []
    for (state, event), target in TRANSITIONS.items():
        trigger = _require(_TRIGGERS, (state, event), "transition")
        rows.append((f"`{state.value}`", f"{event.value}", f"`{target.value}`", trigger))
    return _table(("from", "input", "to", "trigger and effect"), rows)


def _drop_reasons() -> str:
    rows = [
        (f"`{reason.value}`", reason.name, _require(_DROPS, reason, "drop reason"))
        for reason in DropReason
    ]
    return _table(("value", "name", "when"), rows)


def _close_reasons() -> str:
    rows = []
    for reason in CloseReason:
        on_wire, when = _require(_CLOSES, reason, "close reason")
        rows.append((str(int(reason)), reason.name, on_wire, when))
    return _table(("code", "name", "sent in CLOSE", "when"), rows)


def generated_sections() -> dict[str, str]:
    """The body of every generated section, by marker name.

    Raises:
        ValueError: an enum member, transition or tunable is not described here.
        RuntimeError: a vector does not behave as specified (see ``protocol_vectors``).
    """
    builders: dict[str, Callable[[], str]] = {
        "constants": _constants,
        "varint-examples": protocol_vectors.varint_examples,
        "packet-numbers": protocol_vectors.packet_number_examples,
        "frame-examples": protocol_vectors.frame_examples,
        "handshake-vector": lambda: "```text\n" + protocol_vectors.handshake_vector() + "```\n",
        "handshake-schedule": _handshake_schedule,
        "state-diagram": lambda: "```mermaid\n" + state_diagram_mermaid() + "```\n",
        "state-table": _state_table,
        "tunables": _tunables,
        "drop-reasons": _drop_reasons,
        "close-reasons": _close_reasons,
    }
    return {name: build() for name, build in builders.items()}


def regenerate(text: str, sections: dict[str, str] | None = None) -> str:
    """Return ``text`` with every generated section rebuilt.

    Raises:
        ValueError: a marker names no generator, or a generator has no marker.
    """
    bodies = generated_sections() if sections is None else sections
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in bodies:
            raise ValueError(f"unknown generated section {name!r}")
        seen.add(name)
        return match.group("open") + bodies[name] + match.group("close")

    result = _SECTION.sub(replace, text)
    missing = sorted(bodies.keys() - seen)
    if missing:
        raise ValueError(f"docs/PROTOCOL.md lacks generated sections {missing}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite (or ``--check``) the generated sections. Returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.protocol_doc",
        description="Regenerate docs/PROTOCOL.md's generated sections.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is stale")
    parser.add_argument("--doc", type=Path, default=DOC_PATH, help="path of PROTOCOL.md")
    args = parser.parse_args(argv)
    path: Path = args.doc
    text = path.read_text(encoding="utf-8")
    fresh = regenerate(text)
    if args.check:
        if fresh != text:
            print(f"{path} is stale: run python -m tools.protocol_doc", file=sys.stderr)
            return 1
        return 0
    if fresh != text:
        path.write_text(fresh, encoding="utf-8")
        print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
