"""docs/PROTOCOL.md stays true to the code.

The generated sections must equal what ``tools.protocol_doc`` builds now (so a changed
``TRANSITIONS`` row, default, constant or drop reason fails here until the document is
regenerated), every enum member and tunable must be named in the document, and the
handshake test vector printed there must be accepted by the code when read back from
the document: the initiation rebuilt from the listed keys, answered, and every DATA
packet and the cookie reply opened.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tools import protocol_doc
from udpim.core.config import EndpointConfig, SessionConfig
from udpim.core.cookies import compute_mac2, open_cookie_reply_untrusted
from udpim.core.crypto import PacketOpener, StaticKey, next_secret, packet_key
from udpim.core.errors import DropReason
from udpim.core.framecodec import FrameType, decode_frames_untrusted
from udpim.core.frames import AckFrame, CloseReason, DataFrame, PingFrame
from udpim.core.handshake import InitiatorHandshake, respond_untrusted
from udpim.core.state import TRANSITIONS, state_diagram_mermaid
from udpim.core.wire import decode_data_header_untrusted, decode_packet_number

DOC = protocol_doc.DOC_PATH.read_text(encoding="utf-8")


def _section(name: str, text: str = DOC) -> str:
    match = re.search(
        rf"<!-- generated:{re.escape(name)} -->\n(.*?)<!-- /generated -->", text, re.DOTALL
    )
    assert match is not None, f"section {name} missing"
    return match.group(1)


def _vector() -> dict[str, bytes]:
    """The ``name = hex`` lines of the handshake vector, continuation lines joined."""
    body = _section("handshake-vector").removeprefix("```text\n").removesuffix("```\n")
    values: dict[str, str] = {}
    name = ""
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        if line.startswith(" "):
            values[name] += line.strip()
            continue
        name, _, value = line.partition("=")
        name = name.strip()
        values[name] = value.strip()
    return {key: bytes.fromhex(value) for key, value in values.items()}


def _packet(vector: dict[str, bytes], prefix: str) -> bytes:
    return b"".join(value for key, value in vector.items() if key.startswith(prefix + "."))


def _scripted(*values: bytes) -> Callable[[int], bytes]:
    queue = list(values)

    def rng(size: int) -> bytes:
        value = queue.pop(0)
        assert len(value) == size
        return value

    return rng


# --- the generated sections are current ------------------------------------------------


def test_generated_sections_equal_what_the_tool_builds_now() -> None:
    assert protocol_doc.regenerate(DOC) == DOC


def test_check_mode_fails_on_a_stale_copy_and_the_rewrite_repairs_it(tmp_path: Path) -> None:
    stale = DOC.replace("initiating --> confirming: response received", "initiating --> x: y")
    assert stale != DOC
    path = tmp_path / "PROTOCOL.md"
    path.write_text(stale, encoding="utf-8")
    assert protocol_doc.main(["--check", "--doc", str(path)]) == 1
    assert protocol_doc.main(["--doc", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == DOC
    assert protocol_doc.main(["--check", "--doc", str(path)]) == 0


def test_a_marker_without_generator_or_a_missing_marker_is_an_error() -> None:
    sections = protocol_doc.generated_sections()
    with pytest.raises(ValueError, match="unknown generated section"):
        protocol_doc.regenerate(DOC + "<!-- generated:nonsense -->\n<!-- /generated -->", sections)
    without = DOC.replace("<!-- generated:constants -->", "<!-- constants -->")
    with pytest.raises(ValueError, match="constants"):
        protocol_doc.regenerate(without, sections)


def test_state_diagram_is_the_mermaid_rendering_of_transitions() -> None:
    assert _section("state-diagram") == "```mermaid\n" + state_diagram_mermaid() + "```\n"


def test_every_transition_row_is_in_the_state_table() -> None:
    table = _section("state-table")
    for (state, event), target in TRANSITIONS.items():
        assert f"| `{state.value}` | {event.value} | `{target.value}` |" in table


# --- everything is named --------------------------------------------------------------


@pytest.mark.parametrize("reason", list(DropReason))
def test_every_drop_reason_value_is_documented(reason: DropReason) -> None:
    assert f"| `{reason.value}` | {reason.name} |" in _section("drop-reasons")


@pytest.mark.parametrize("reason", list(CloseReason))
def test_every_close_reason_is_documented(reason: CloseReason) -> None:
    assert f"| {int(reason)} | {reason.name} |" in _section("close-reasons")


@pytest.mark.parametrize("kind", list(FrameType))
def test_every_frame_type_byte_is_in_the_frame_table_and_examples(kind: FrameType) -> None:
    assert f"| `{kind:#04x}` |" in DOC
    assert f"| `{kind:#04x}` {kind.name} |" in _section("frame-examples")


@pytest.mark.parametrize(
    "name",
    [f.name for f in dataclasses.fields(SessionConfig)]
    + [f.name for f in dataclasses.fields(EndpointConfig)],
)
def test_every_config_field_is_documented(name: str) -> None:
    assert f"| `{name}` |" in _section("tunables")


# --- the test vector, read back from the document ---------------------------------------


def test_vector_initiation_and_response_are_what_the_code_sends() -> None:
    vector = _vector()
    s_i, s_r = StaticKey.from_bytes(vector["s_i"]), StaticKey.from_bytes(vector["s_r"])
    assert (s_i.public, s_r.public) == (vector["S_i"], vector["S_r"])
    timestamp = int.from_bytes(vector["timestamp"], "big")
    initiation = _packet(vector, "initiation")
    response = _packet(vector, "response")
    assert (len(initiation), len(response)) == (141, 89)

    attempt = InitiatorHandshake(
        s_i, s_r.public, vector["initiator_cid"], _scripted(vector["e_i"]), timestamp
    )
    assert attempt.initiation(None) == initiation
    info, answer, responder = respond_untrusted(
        s_r, initiation, vector["responder_cid"], _scripted(vector["e_r"])
    )
    assert answer == response
    assert (info.initiator_public, info.timestamp_ns) == (s_i.public, timestamp)
    result = attempt.consume_response_untrusted(response)
    assert (result.send_secret, result.recv_secret) == (vector["T_ir"], vector["T_ri"])
    assert (responder.send_secret, responder.recv_secret) == (vector["T_ri"], vector["T_ir"])


def test_vector_macs_and_keys_follow_the_documented_recipes() -> None:
    vector = _vector()
    initiation, response = _packet(vector, "initiation"), _packet(vector, "response")
    mac1_key_r = hashlib.sha256(b"mac1----" + vector["S_r"]).digest()
    mac1_key_i = hashlib.sha256(b"mac1----" + vector["S_i"]).digest()
    assert (mac1_key_r, mac1_key_i) == (vector["mac1_key(S_r)"], vector["mac1_key(S_i)"])
    assert hmac.new(mac1_key_r, initiation[:109], "sha256").digest()[:16] == initiation[109:125]
    assert hmac.new(mac1_key_i, response[:57], "sha256").digest()[:16] == response[57:73]
    assert packet_key(vector["T_ir"]) == vector["key0_ir"]
    assert packet_key(vector["T_ri"]) == vector["key0_ri"]
    assert next_secret(vector["T_ir"]) == vector["secret1_ir"]
    assert packet_key(vector["secret1_ir"]) == vector["key1_ir"]


def _open(opener: PacketOpener, datagram: bytes, largest: int | None) -> tuple[bytes, bytes]:
    header = decode_data_header_untrusted(datagram)
    number = decode_packet_number(header.truncated_pn, header.pn_length, largest)
    ciphertext = datagram[len(header.header) :]
    return header.header, opener.open_untrusted(number, header.key_phase, header.header, ciphertext)


def test_vector_data_packets_open_under_the_split_secrets() -> None:
    vector = _vector()
    to_responder, to_initiator = PacketOpener(vector["T_ir"]), PacketOpener(vector["T_ri"])

    header, plaintext = _open(to_responder, vector["data_a.datagram"], None)
    assert (header, plaintext) == (vector["data_a.header"], vector["data_a.plaintext"])
    assert decode_frames_untrusted(plaintext) == [DataFrame(0, 0, 5, 0, b"hello")]

    header, plaintext = _open(to_initiator, vector["data_b.datagram"], None)
    assert (header, plaintext) == (vector["data_b.header"], vector["data_b.plaintext"])
    assert decode_frames_untrusted(plaintext) == [
        AckFrame(((0, 0),), 0),
        DataFrame(0, 0, 2, 0, b"hi"),
    ]

    header, plaintext = _open(to_responder, vector["data_c.datagram"], 0)
    assert (header, plaintext) == (vector["data_c.header"], vector["data_c.plaintext"])
    assert header[0] & 0x08  # key phase 1
    assert to_responder.epoch == 1
    assert decode_frames_untrusted(plaintext) == [AckFrame(((0, 0),), 0), PingFrame()]


def test_vector_cookie_reply_opens_and_gives_the_listed_mac2() -> None:
    vector = _vector()
    initiation = _packet(vector, "initiation")
    reply = _packet(vector, "cookie_reply")
    assert len(reply) == 49
    cookie = hmac.new(vector["cookie_secret"], vector["address_bytes"], "sha256").digest()[:16]
    assert cookie == vector["cookie"]
    receiver_cid, opened = open_cookie_reply_untrusted(reply, vector["S_r"], initiation[109:125])
    assert (receiver_cid, opened) == (vector["initiator_cid"], cookie)
    assert compute_mac2(cookie, initiation[:125]) == vector["mac2"]
