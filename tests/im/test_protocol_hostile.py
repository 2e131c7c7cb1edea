"""Hostile input: decode_frame_untrusted raises only BadFrame, whatever it is given."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from udpim.im.protocol import (
    BadFrame,
    DeliverFrame,
    Frame,
    PresenceFrame,
    RefusedFrame,
    WatchFrame,
    decode_frame_untrusted,
    encode_frame,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)
TAGS = ["hello", "send", "ack", "receipt_ack", "watch", "welcome", "refused", "accepted"]
TAGS += ["rejected", "deliver", "receipt", "presence"]
MEMBERS = ["user", "device", "v", "id", "to", "body", "sent_at", "seq", "users", "hub_time"]
MEMBERS += ["reason", "from", "state", "at", "online"]


def _decode_only_bad_frame(payload: bytes) -> None:
    try:
        frame = decode_frame_untrusted(payload)
    except BadFrame:
        return
    assert decode_frame_untrusted(encode_frame(frame)) == frame


@given(st.binary(max_size=300))
def test_random_bytes(payload: bytes) -> None:
    _decode_only_bad_frame(payload)


@given(json_values)
def test_random_json_values(value: object) -> None:
    _decode_only_bad_frame(json.dumps(value).encode())


@given(
    st.sampled_from(TAGS),
    st.dictionaries(
        st.sampled_from(MEMBERS),
        json_values
        | st.sampled_from(
            ["alice", "0123456789abcdef01234567", "00112233aabbccdd", "delivered", 0, 1, True]
        ),
    ),
)
def test_random_members_of_known_types(tag: str, members: dict[str, object]) -> None:
    _decode_only_bad_frame(json.dumps({"t": tag, **members}).encode())


names = st.from_regex(r"[a-z0-9_.-]{1,32}", fullmatch=True)
ids = st.from_regex(r"[0-9a-f]{24}", fullmatch=True)
ints = st.integers(min_value=0, max_value=2**63 - 1)
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)


@given(ints, ids, names, names, texts, ints)
def test_encoder_matches_json_dumps_and_round_trips(
    seq: int, message_id: str, sender: str, to: str, body: str, sent_at: int
) -> None:
    frame = DeliverFrame(seq, message_id, sender, to, body, sent_at)
    members = {"t": "deliver", "seq": seq, "id": message_id, "from": sender, "to": to}
    members |= {"body": body, "sent_at": sent_at}
    expected = json.dumps(members, ensure_ascii=False, separators=(",", ":")).encode()
    assert encode_frame(frame) == expected
    assert decode_frame_untrusted(expected) == frame


@given(st.lists(names, max_size=20), st.booleans(), texts)
def test_other_encoders_round_trip(users: list[str], online: bool, reason: str) -> None:
    frames: list[Frame] = [WatchFrame(tuple(users)), PresenceFrame("bob", online)]
    if len(reason) <= 256:
        frames.append(RefusedFrame(reason))
    for frame in frames:
        assert decode_frame_untrusted(encode_frame(frame)) == frame
