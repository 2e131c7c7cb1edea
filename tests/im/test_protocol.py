"""IM frames: one golden table drives both the encoder and the decoder (docs/IM.md)."""

from __future__ import annotations

import pytest

from udpim.im.protocol import (
    MAX_BODY_BYTES,
    MAX_FRAME_BYTES,
    MAX_WATCH_USERS,
    AcceptedFrame,
    AckFrame,
    BadFrame,
    DeliverFrame,
    Frame,
    HelloFrame,
    PresenceFrame,
    ReceiptAckFrame,
    ReceiptFrame,
    RefusedFrame,
    RejectedFrame,
    SendFrame,
    WatchFrame,
    WelcomeFrame,
    decode_frame_untrusted,
    encode_frame,
    valid_body,
    valid_device,
    valid_message_id,
    valid_user_name,
)

MID = "0123456789abcdef01234567"
DEV = "00112233aabbccdd"

GOLDEN: list[tuple[Frame, bytes]] = [
    (HelloFrame("alice", DEV), b'{"t":"hello","user":"alice","device":"00112233aabbccdd","v":1}'),
    (
        SendFrame(MID, "bob", "hi", 1700000000000),
        b'{"t":"send","id":"0123456789abcdef01234567","to":"bob","body":"hi",'
        b'"sent_at":1700000000000}',
    ),
    (AckFrame(42), b'{"t":"ack","seq":42}'),
    (ReceiptAckFrame(MID), b'{"t":"receipt_ack","id":"0123456789abcdef01234567"}'),
    (WatchFrame(("bob", "carol")), b'{"t":"watch","users":["bob","carol"]}'),
    (WatchFrame(()), b'{"t":"watch","users":[]}'),
    (
        WelcomeFrame("alice", DEV, 1700000000123),
        b'{"t":"welcome","user":"alice","device":"00112233aabbccdd","hub_time":1700000000123}',
    ),
    (
        RefusedFrame("user name belongs to another key"),
        b'{"t":"refused","reason":"user name belongs to another key"}',
    ),
    (AcceptedFrame(MID), b'{"t":"accepted","id":"0123456789abcdef01234567"}'),
    (
        RejectedFrame(MID, "unknown user"),
        b'{"t":"rejected","id":"0123456789abcdef01234567","reason":"unknown user"}',
    ),
    (
        DeliverFrame(7, MID, "alice", "bob", 'h\u00e9\n"x"', 5),
        b'{"t":"deliver","seq":7,"id":"0123456789abcdef01234567","from":"alice","to":"bob",'
        b'"body":"h\xc3\xa9\\n\\"x\\"","sent_at":5}',
    ),
    (
        ReceiptFrame(MID, "bob", 99),
        b'{"t":"receipt","id":"0123456789abcdef01234567","to":"bob","state":"delivered","at":99}',
    ),
    (PresenceFrame("bob", True), b'{"t":"presence","user":"bob","online":true}'),
    (PresenceFrame("b.o_b-2", False), b'{"t":"presence","user":"b.o_b-2","online":false}'),
]


@pytest.mark.parametrize(("frame", "wire"), GOLDEN)
def test_encode_matches_golden(frame: Frame, wire: bytes) -> None:
    assert encode_frame(frame) == wire


@pytest.mark.parametrize(("frame", "wire"), GOLDEN)
def test_decode_matches_golden(frame: Frame, wire: bytes) -> None:
    assert decode_frame_untrusted(wire) == frame


@pytest.mark.parametrize(("frame", "wire"), GOLDEN)
def test_every_truncation_is_bad_frame(frame: Frame, wire: bytes) -> None:
    for cut in range(len(wire)):
        with pytest.raises(BadFrame):
            decode_frame_untrusted(wire[:cut])


@pytest.mark.parametrize(("frame", "wire"), GOLDEN)
def test_every_bit_flip_decodes_or_is_bad_frame(frame: Frame, wire: bytes) -> None:
    for index in range(len(wire)):
        for bit in range(8):
            mutated = bytearray(wire)
            mutated[index] ^= 1 << bit
            try:
                decoded = decode_frame_untrusted(bytes(mutated))
            except BadFrame:
                continue
            assert encode_frame(decoded) != wire


def test_unknown_members_are_ignored_and_order_is_free() -> None:
    wire = b'{"seq":3,"future":{"x":[1,2]},"t":"ack"}'
    assert decode_frame_untrusted(wire) == AckFrame(3)


def test_whitespace_is_accepted() -> None:
    assert decode_frame_untrusted(b' { "t" : "ack" , "seq" : 3 } ') == AckFrame(3)


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (b'{"t":"ack"}', "missing member"),
        (b'{"t":"nope","seq":1}', "unknown type"),
        (b'{"seq":1}', "no type"),
        (b'{"t":5,"seq":1}', "type not a string"),
        (b'{"t":["ack"],"seq":1}', "type unhashable"),
        (b'[{"t":"ack","seq":1}]', "not an object"),
        (b'"ack"', "not an object"),
        (b'{"t":"ack","seq":1,"seq":2}', "duplicate member"),
        (b'{"t":"ack","seq":-1}', "negative int"),
        (b'{"t":"ack","seq":9223372036854775808}', "int too large"),
        (b'{"t":"ack","seq":1.0}', "float"),
        (b'{"t":"ack","seq":true}', "bool as int"),
        (b'{"t":"ack","seq":"1"}', "string as int"),
        (b'{"t":"ack","seq":NaN}', "NaN"),
        (b'{"t":"ack","seq":Infinity}', "Infinity"),
        (b'{"t":"presence","user":"bob","online":1}', "int as bool"),
        (b'{"t":"presence","user":"Bob","online":true}', "upper-case name"),
        (b'{"t":"presence","user":"","online":true}', "empty name"),
        (b'{"t":"presence","user":"' + b"a" * 33 + b'","online":true}', "long name"),
        (b'{"t":"presence","user":"a b","online":true}', "space in name"),
        (b'{"t":"accepted","id":"0123456789ABCDEF01234567"}', "upper-case id"),
        (b'{"t":"accepted","id":"0123456789abcdef0123456"}', "short id"),
        (b'{"t":"hello","user":"a","device":"00112233aabbccd","v":1}', "short device"),
        (
            b'{"t":"receipt","id":"0123456789abcdef01234567","to":"b","state":"read","at":1}',
            "state",
        ),
        (b'{"t":"refused","reason":"' + b"x" * 257 + b'"}', "long reason"),
        (b'{"t":"refused","reason":"\\ud800"}', "lone surrogate"),
        (
            b'{"t":"send","id":"0123456789abcdef01234567","to":"b","body":"\\udc00","sent_at":1}',
            "lone surrogate body",
        ),
        (b'{"t":"watch","users":"bob"}', "users not a list"),
        (b'{"t":"watch","users":["bob",3]}', "user not a string"),
        (b"\xff\xfe", "not UTF-8"),
        (b"", "empty"),
        (b"[" * 100_000, "deep nesting"),
        (b'{"t":"ack","seq":' + b"9" * 5000 + b"}", "huge int literal"),
    ],
)
def test_bad_frames_are_refused(wire: bytes, why: str) -> None:
    with pytest.raises(BadFrame):
        decode_frame_untrusted(wire)


def test_body_limit_is_64_kib_of_utf8() -> None:
    at_limit = "\u00e9" * (MAX_BODY_BYTES // 2)
    frame = SendFrame(MID, "bob", at_limit, 1)
    assert decode_frame_untrusted(encode_frame(frame)) == frame
    over = SendFrame(MID, "bob", at_limit + "x", 1)
    with pytest.raises(BadFrame):
        decode_frame_untrusted(encode_frame(over))


def test_worst_case_escaped_body_fits_the_frame_limit() -> None:
    body = "\x00" * MAX_BODY_BYTES
    wire = encode_frame(DeliverFrame(1, MID, "a" * 32, "b" * 32, body, 2**63 - 1))
    assert len(wire) <= MAX_FRAME_BYTES
    assert decode_frame_untrusted(wire).body == body  # type: ignore[union-attr]


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(BadFrame):
        decode_frame_untrusted(b" " * (MAX_FRAME_BYTES + 1))


def test_watch_list_limit() -> None:
    users = tuple(f"u{i}" for i in range(MAX_WATCH_USERS))
    assert decode_frame_untrusted(encode_frame(WatchFrame(users))) == WatchFrame(users)
    with pytest.raises(BadFrame):
        decode_frame_untrusted(encode_frame(WatchFrame((*users, "one.more"))))


def test_validators() -> None:
    assert valid_user_name("a")
    assert valid_user_name("a" * 32)
    assert valid_user_name("x.y_z-0")
    assert not valid_user_name("A")
    assert not valid_user_name(3)
    assert not valid_user_name("a/b")
    assert valid_device(DEV)
    assert not valid_device(DEV.upper())
    assert not valid_device(DEV + "0")
    assert valid_message_id(MID)
    assert not valid_message_id(MID[:-1])
    assert valid_body("")
    assert not valid_body(b"x")
    assert not valid_body("\ud800")
    assert not valid_body("x" * (MAX_BODY_BYTES + 1))
