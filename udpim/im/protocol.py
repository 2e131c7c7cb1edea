"""IM frames on the wire: the codec, and (re-exported) the frame dataclasses.

Rules (docs/IM.md, "Frames"):

* A frame is one UTF-8 JSON object with compact separators. Its ``"t"`` member names the
  type; the other members are the fields of the matching dataclass (``udpim.im.frames``,
  re-exported here), all required.
* Decoding is strict about what it reads: exact JSON types (an int is never a bool or a
  float), names ``[a-z0-9_.-]{1,32}``, device ids 16 and message ids 24 lowercase hex
  chars, ints in ``0 .. 2**63-1``, bodies of at most 64 KiB of UTF-8 (no lone
  surrogates), no duplicate keys, no NaN/Infinity, the whole payload at most
  ``MAX_FRAME_BYTES``.
* Unknown members are IGNORED (a later version may add optional members). So are frames
  of an unknown type: a JSON object whose ``"t"`` is a string naming no type here raises
  ``UnknownFrame`` (a ``BadFrame``), which the cores count and ignore, never closing the
  session for it (docs/IM.md section 3). A missing or non-string ``"t"`` is a bad frame.
  A frame that a direction does not allow (a hub frame sent to the hub) decodes fine
  here; the cores reject it.
* ``decode_frame_untrusted`` raises only ``BadFrame`` (or its ``UnknownFrame``), for any
  input bytes.

Theory of operation: one table (``_SPECS``) lists every frame type with its fields and
each field's kind; the encoder and decoder both walk it, so they cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, final

from udpim.core.errors import UdpimError
from udpim.im.formats import (
    MAX_BODY_BYTES,
    MAX_INT,
    MAX_PROBE_DELAY_MS,
    MAX_REASON_CHARS,
    MAX_WATCH_USERS,
    valid_body,
    valid_device,
    valid_message_id,
    valid_token,
    valid_user_name,
)
from udpim.im.frames import (
    DELIVERED,
    PROTOCOL_VERSION,
    AcceptedFrame,
    AckFrame,
    ClientFrame,
    DeliverFrame,
    Frame,
    HelloFrame,
    HubFrame,
    KeepaliveFrame,
    NatProbeFrame,
    PresenceFrame,
    ReceiptAckFrame,
    ReceiptFrame,
    RefusedFrame,
    RejectedFrame,
    SendFrame,
    WatchFrame,
    WelcomeFrame,
)

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_INT",
    "MAX_REASON_CHARS",
    "MAX_WATCH_USERS",
    "PROTOCOL_VERSION",
    "AckFrame",
    "AcceptedFrame",
    "BadFrame",
    "ClientFrame",
    "DeliverFrame",
    "Frame",
    "HelloFrame",
    "HubFrame",
    "KeepaliveFrame",
    "MAX_PROBE_DELAY_MS",
    "NatProbeFrame",
    "PresenceFrame",
    "ReceiptAckFrame",
    "ReceiptFrame",
    "RefusedFrame",
    "RejectedFrame",
    "SendFrame",
    "UnknownFrame",
    "WatchFrame",
    "WelcomeFrame",
    "decode_frame_untrusted",
    "encode_frame",
    "valid_body",
    "valid_device",
    "valid_message_id",
    "valid_user_name",
]

MAX_FRAME_BYTES: Final = 512 * 1024
"""Largest encoded frame (a 64 KiB body of control characters escapes to 384 KiB)."""


class BadFrame(UdpimError):
    """A session message is not an acceptable IM frame (the text says why, for logs)."""


@final
class UnknownFrame(BadFrame):
    """A well-formed frame whose type this version does not know (a later version's):
    receivers ignore it and count it (docs/IM.md section 3)."""


# --------------------------------------------------------------------------- field kinds


def _int(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise BadFrame("expected an int in 0..2**63-1")
    return value


def _bool(value: object) -> bool:
    if type(value) is not bool:
        raise BadFrame("expected a bool")
    return value


def _name(value: object) -> str:
    if not valid_user_name(value):
        raise BadFrame("bad user name")
    assert isinstance(value, str)
    return value


def _device(value: object) -> str:
    if not valid_device(value):
        raise BadFrame("bad device id")
    assert isinstance(value, str)
    return value


def _message_id(value: object) -> str:
    if not valid_message_id(value):
        raise BadFrame("bad message id")
    assert isinstance(value, str)
    return value


def _token(value: object) -> str:
    if not valid_token(value):
        raise BadFrame("bad probe token (16 lowercase hex chars)")
    assert isinstance(value, str)
    return value


def _delay_ms(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_PROBE_DELAY_MS:
        raise BadFrame(f"expected a delay in 0..{MAX_PROBE_DELAY_MS} ms")
    return value


def _body(value: object) -> str:
    if not valid_body(value):
        raise BadFrame("bad body (a string of at most 64 KiB UTF-8)")
    assert isinstance(value, str)
    return value


def _reason(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_REASON_CHARS:
        raise BadFrame("bad reason text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadFrame("bad reason text") from None
    return value


def _state(value: object) -> str:
    if value != DELIVERED:
        raise BadFrame("bad receipt state")
    return DELIVERED


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_WATCH_USERS:
        raise BadFrame(f"expected a list of at most {MAX_WATCH_USERS} user names")
    return tuple(_name(item) for item in value)


_Check = Callable[[object], Any]
_Emit = Callable[[Any], str]
_emit_text: Final[_Emit] = json.encoder.encode_basestring  # C escaper, quotes included


def _emit_int(value: int) -> str:
    return str(int(value))


def _emit_bool(value: bool) -> str:
    return "true" if value else "false"


def _emit_names(value: tuple[str, ...]) -> str:
    return "[" + ",".join(map(_emit_text, value)) + "]"


_EMITTERS: Final[dict[_Check, _Emit]] = {
    _int: _emit_int,
    _delay_ms: _emit_int,
    _bool: _emit_bool,
    _names: _emit_names,
}


@dataclass(frozen=True, slots=True)
class _Spec:
    tag: str
    cls: type[Any]
    fields: tuple[tuple[str, str, _Check], ...]  # (attribute, JSON member, check)
    template: str  # '{"t":"tag","member":%s,...}'
    emitters: tuple[tuple[str, _Emit], ...]  # (attribute, JSON text of its value)


def _spec(tag: str, cls: type[Any], *fields: tuple[str, _Check]) -> _Spec:
    # JSON member "from" is the attribute ``sender`` (``from`` is a Python keyword).
    members = tuple((attr, "from" if attr == "sender" else attr, check) for attr, check in fields)
    head = '{"t":' + _emit_text(tag)
    template = head + "".join("," + _emit_text(member) + ":%s" for _, member, _ in members) + "}"
    emitters = tuple((attr, _EMITTERS.get(check, _emit_text)) for attr, _, check in members)
    return _Spec(tag, cls, members, template, emitters)


_SPECS: Final = (
    _spec("hello", HelloFrame, ("user", _name), ("device", _device), ("v", _int)),
    _spec(
        "send",
        SendFrame,
        ("id", _message_id),
        ("to", _name),
        ("body", _body),
        ("sent_at", _int),
    ),
    _spec("ack", AckFrame, ("seq", _int)),
    _spec("receipt_ack", ReceiptAckFrame, ("id", _message_id)),
    _spec("watch", WatchFrame, ("users", _names)),
    _spec("keepalive", KeepaliveFrame, ("interval_ms", _int), ("nat_timeout_ms", _int)),
    _spec("nat_probe", NatProbeFrame, ("token", _token), ("delay_ms", _delay_ms)),
    _spec("welcome", WelcomeFrame, ("user", _name), ("device", _device), ("hub_time", _int)),
    _spec("refused", RefusedFrame, ("reason", _reason)),
    _spec("accepted", AcceptedFrame, ("id", _message_id)),
    _spec("rejected", RejectedFrame, ("id", _message_id), ("reason", _reason)),
    _spec(
        "deliver",
        DeliverFrame,
        ("seq", _int),
        ("id", _message_id),
        ("sender", _name),
        ("to", _name),
        ("body", _body),
        ("sent_at", _int),
    ),
    _spec(
        "receipt",
        ReceiptFrame,
        ("id", _message_id),
        ("to", _name),
        ("state", _state),
        ("at", _int),
    ),
    _spec("presence", PresenceFrame, ("user", _name), ("online", _bool)),
)
_BY_TAG: Final = {spec.tag: spec for spec in _SPECS}
_BY_CLASS: Final = {spec.cls: spec for spec in _SPECS}


def encode_frame(frame: Frame) -> bytes:
    """Encode ``frame`` as compact UTF-8 JSON, ``"t"`` first, members in table order.

    The output is what ``json.dumps(obj, ensure_ascii=False, separators=(",", ":"))``
    gives for the same members. The cores build frames only from validated values; this
    does not re-check them.

    Raises:
        KeyError: ``frame`` is not one of the frame classes of this module.
    """
    spec = _BY_CLASS[type(frame)]
    values = tuple([emit(getattr(frame, attr)) for attr, emit in spec.emitters])
    return (spec.template % values).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise BadFrame("duplicate member")
    return obj


def _no_constant(text: str) -> object:
    raise BadFrame(f"{text} is not allowed")


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constant, strict=True
)


def decode_frame_untrusted(payload: bytes) -> Frame:
    """Decode one IM frame from a session message.

    Args:
        payload: the message bytes, from the network.

    Returns:
        The frame dataclass.

    Raises:
        UnknownFrame: a JSON object whose ``"t"`` names no frame type of this version
            (a ``BadFrame``; to be ignored, not treated as an error).
        BadFrame: for anything else that is not exactly an acceptable frame (see the
            module rules); never any other exception.
    """
    if len(payload) > MAX_FRAME_BYTES:
        raise BadFrame(f"frame larger than {MAX_FRAME_BYTES} bytes")
    try:
        text = payload.decode("utf-8")
        obj = _DECODER.decode(text)
    except BadFrame:
        raise
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError too
        raise BadFrame("not UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise BadFrame("not a JSON object")
    tag = obj.get("t")
    if not isinstance(tag, str):
        raise BadFrame("missing or non-string frame type")
    spec = _BY_TAG.get(tag)
    if spec is None:
        raise UnknownFrame("unknown frame type")
    values: dict[str, object] = {}
    for attr, member, check in spec.fields:
        if member not in obj:
            raise BadFrame(f"{spec.tag}: missing {member!r}")
        values[attr] = check(obj[member])
    frame: Frame = spec.cls(**values)
    return frame
