"""Simulation traces: the recorder, the trace file format, its reader and hash.

What this module owns: turning simulation events into canonical text lines,
hashing them, writing/reading trace files and comparing two event streams.
It knows nothing about networks; :mod:`netsim.network` and applications call
:meth:`Recorder.record`.

Trace file format (version 1)
=============================

A trace is a `JSON Lines <https://jsonlines.org>`_ text file in UTF-8, one JSON
object per line, ``\\n`` line ends. When the file name ends in ``.gz`` it is
gzip-compressed (written with mtime 0 and no file name, so equal traces are
byte-identical files).

Line 1 is the **header**::

    {"format":"netsim-trace","version":1,"seed":42,"meta":{...}}

``seed`` is the simulation seed (or ``null``); ``meta`` is a free JSON object
the runner fills (scenario name and text, application spec, netsim version...).
The header is *not* part of the trace hash.

Every further line is one **event**, with ``t`` (virtual time in seconds) and
``kind`` first, then the event's fields in a fixed order::

    {"t":0.025,"kind":"send","id":7,"src":"127.16.1.2:40000","dst":"127.1.0.1:9000","size":64}

Canonical form (what makes hashes equal across processes): compact separators
(``,`` and ``:``, no spaces), ASCII-only (``ensure_ascii``), keys in the order
the recorder was given them, and every *top-level* float (``t`` included)
rounded to 9 decimals (1 ns) and written with Python's shortest round-trip
``repr``. Tuples become arrays, ``bytes`` become lowercase hex, enums their
value. Each process produces exactly the same line for the same event.

The **trace hash** is the SHA-256 over the canonical event lines, each followed
by ``\\n`` (for an uncompressed file, the hash of everything after the header
line). It is computed incrementally while recording, also when recording only
to memory.

Event kinds written by netsim (addresses are ``"ip:port"`` strings):

``send``
    ``id, src, dst, size``: a socket handed a datagram to the network. ``src``
    is the sender's own (private) address, ``id`` numbers datagrams from 1.
``deliver``
    ``id, src, dst, size, delay`` and optionally ``dup: true`` (an extra copy
    made by a link) and ``corrupt: true`` (a bit was flipped on the way): the
    datagram was queued on the receiving socket. ``src`` is the source the
    receiver sees (after NAT), ``dst`` the receiver's address, ``delay`` the
    delivery time minus the send time.
``drop``
    ``id, reason, where`` (+ ``dup``/``corrupt`` flags as above): the datagram
    (or one copy of it) died. ``reason`` is a :class:`netsim.models.DropReason`
    value (``loss``, ``nat-filtered``, ``rcvbuf``...); ``where`` is
    ``up:<host>`` or ``down:<host>`` (a link), ``nat:<name>``, ``net`` (routing,
    partition, filters) or ``host:<host>`` (socket layer).
``nat``
    ``nat, event`` and details. ``event`` is ``mapping`` (``private``,
    ``public``: the NAT created an external mapping), ``expired`` (``public``:
    an inbound packet hit a mapping that had timed out; or ``count``: an
    outbound packet found that many dead mappings and replaced them) or
    ``rebind`` (``public_ip``: ``Network.rebind_nat`` moved every mapping).
``op``
    ``op`` and its arguments: a topology or timeline operation: ``add_nat``
    (``name, public_ip, config``), ``add_host`` (``host, address, nat, up,
    down``; profiles as ``LinkProfile.to_mapping()``), ``set_link`` (``host, up,
    down``; null = unchanged), ``move_host`` (``host, address, nat``),
    ``partition`` (``groups``), ``heal``, ``add_filter`` (``name``: the
    filter's ``__qualname__``).
``app``
    ``host, event`` plus free fields: application events, recorded with
    ``recorder.record(t, "app", host=..., event=..., **fields)``.

Rules kept here: recording is on the per-packet path, so :meth:`Recorder.record`
does one dict build, one C-accelerated JSON encode and one hash update, and
keeps only the line (events are parsed back lazily). Malformed trace files
raise only :class:`TraceError`.
"""

from __future__ import annotations

import enum
import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = [
    "TIME_DECIMALS",
    "TRACE_FORMAT",
    "TRACE_VERSION",
    "Divergence",
    "Recorder",
    "TraceError",
    "TraceEvent",
    "TraceHeader",
    "TraceReader",
    "canonical_line",
    "first_divergence",
    "hash_lines",
    "read_events",
    "read_header",
    "trace_hash",
]

TRACE_FORMAT = "netsim-trace"
TRACE_VERSION = 1
TIME_DECIMALS = 9

StrPath = str | os.PathLike[str]


class TraceError(ValueError):
    """A trace file is malformed or of an unsupported format/version."""


def _encode_default(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, frozenset | set):
        return sorted(value, key=repr)
    raise TypeError(f"trace field of type {type(value).__name__} is not JSON-serializable")


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_encode_default)


def canonical_line(t: float, kind: str, fields: Mapping[str, object]) -> str:
    """Return the canonical trace line (without newline) for one event.

    Args:
        t: virtual time in seconds (rounded to :data:`TIME_DECIMALS`).
        kind: the event kind.
        fields: further fields, in output order; top-level floats are rounded.

    Returns:
        The compact JSON object text.

    Raises:
        TypeError: if a field value cannot be represented in JSON.
    """
    obj: dict[str, object] = {"t": round(float(t), TIME_DECIMALS), "kind": kind}
    for key, value in fields.items():
        obj[key] = round(value, TIME_DECIMALS) if type(value) is float else value
    return _ENCODER.encode(obj)


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One recorded event.

    Attributes:
        t: virtual time in seconds.
        kind: event kind (``send``, ``deliver``, ``drop``, ``nat``, ``op``, ``app``...).
        fields: the remaining fields, in canonical order.
    """

    t: float
    kind: str
    fields: Mapping[str, object] = field(default_factory=dict)

    def to_line(self) -> str:
        """Return the canonical line of this event (see module docstring)."""
        return canonical_line(self.t, self.kind, self.fields)

    @classmethod
    def from_line_untrusted(cls, line: str) -> TraceEvent:
        """Parse one event line.

        Args:
            line: a JSON object text with numeric ``t`` and string ``kind``.

        Returns:
            The event.

        Raises:
            TraceError: if the line is not a valid event.
        """
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise TraceError(f"bad trace event line: {exc}") from None
        if not isinstance(obj, dict):
            raise TraceError("bad trace event line: not a JSON object")
        t = obj.pop("t", None)
        kind = obj.pop("kind", None)
        if isinstance(t, bool) or not isinstance(t, int | float) or not isinstance(kind, str):
            raise TraceError("bad trace event line: needs numeric 't' and string 'kind'")
        return cls(float(t), kind, obj)


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """The first line of a trace file.

    Attributes:
        version: format version (:data:`TRACE_VERSION`).
        seed: the simulation seed, if the writer gave one.
        metadata: free JSON object (scenario, app spec...).
    """

    version: int = TRACE_VERSION
    seed: int | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)

    def to_line(self) -> str:
        """Return the header line (without newline)."""
        obj = {
            "format": TRACE_FORMAT,
            "version": self.version,
            "seed": self.seed,
            "meta": dict(self.metadata),
        }
        return _ENCODER.encode(obj)

    @classmethod
    def from_line_untrusted(cls, line: str) -> TraceHeader:
        """Parse a header line.

        Raises:
            TraceError: if it is not a netsim trace header of a supported version.
        """
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise TraceError(f"bad trace header: {exc}") from None
        if not isinstance(obj, dict) or obj.get("format") != TRACE_FORMAT:
            raise TraceError("not a netsim trace (header lacks format 'netsim-trace')")
        if obj.get("version") != TRACE_VERSION:
            raise TraceError(f"unsupported trace version {obj.get('version')!r}")
        seed, meta = obj.get("seed"), obj.get("meta", {})
        if (seed is not None and (isinstance(seed, bool) or not isinstance(seed, int))) or (
            not isinstance(meta, dict)
        ):
            raise TraceError("bad trace header: 'seed' must be an integer, 'meta' an object")
        return cls(TRACE_VERSION, seed, meta)


def _open_write(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        raw = open(path, "wb")  # noqa: SIM115 - closed through the wrapper
        zipped = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
        return _GzipText(zipped, raw)
    return open(path, "w", encoding="utf-8", newline="\n")


class _GzipText(io.TextIOWrapper):
    """Text wrapper over a GzipFile that also closes the underlying file."""

    def __init__(self, zipped: gzip.GzipFile, raw: IO[bytes]) -> None:
        super().__init__(zipped, encoding="utf-8", newline="\n")
        self._raw_file = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw_file.close()


def _open_read(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")


class Recorder:
    """Records simulation events, keeps a running trace hash, optionally writes a file.

    Args:
        path: trace file to write (gzip when the name ends in ``.gz``), or None
            to record in memory only.
        seed: simulation seed for the header.
        metadata: free JSON-serializable mapping for the header.
        keep_events: keep every line in memory for :meth:`events`/:meth:`lines`
            (turn off for very long runs that only need the file and hash).

    Use as a context manager, or call :meth:`close`, to flush the file.
    """

    def __init__(
        self,
        path: StrPath | None = None,
        *,
        seed: int | None = None,
        metadata: Mapping[str, object] | None = None,
        keep_events: bool = True,
    ) -> None:
        self.path: Path | None = Path(path) if path is not None else None
        self.header = TraceHeader(TRACE_VERSION, seed, dict(metadata or {}))
        self._hash = hashlib.sha256()
        self._lines: list[str] | None = [] if keep_events else None
        self._count = 0
        self._file: IO[str] | None = None
        if self.path is not None:
            self._file = _open_write(self.path)
            self._file.write(self.header.to_line() + "\n")

    def record(self, t: float, kind: str, **fields: object) -> None:
        """Append one event and update the trace hash.

        Args:
            t: virtual time in seconds (normally ``trio.current_time()``).
            kind: event kind; applications use ``"app"`` with ``host=`` and ``event=``.
            **fields: JSON-serializable values, written in the order given.

        Raises:
            TypeError: if a field value cannot be represented in JSON.
            ValueError: if the recorder was closed.
        """
        if self._file is None and self.path is not None:
            raise ValueError("record() on a closed Recorder")
        line = canonical_line(t, kind, fields)
        self._hash.update(line.encode() + b"\n")
        self._count += 1
        if self._lines is not None:
            self._lines.append(line)
        if self._file is not None:
            self._file.write(line + "\n")

    @property
    def event_count(self) -> int:
        """Number of events recorded so far."""
        return self._count

    def hexdigest(self) -> str:
        """Return the trace hash so far (SHA-256 hex over canonical event lines)."""
        return self._hash.hexdigest()

    def lines(self) -> list[str]:
        """Return the canonical event lines recorded so far.

        Raises:
            ValueError: if the recorder was created with ``keep_events=False``.
        """
        if self._lines is None:
            raise ValueError("this Recorder does not keep events (keep_events=False)")
        return list(self._lines)

    def events(self, kind: str | None = None) -> list[TraceEvent]:
        """Return the recorded events, optionally only those of one kind.

        Args:
            kind: if given, keep only events of this kind.

        Raises:
            ValueError: if the recorder was created with ``keep_events=False``.
        """
        parsed = [TraceEvent.from_line_untrusted(line) for line in self.lines()]
        return parsed if kind is None else [e for e in parsed if e.kind == kind]

    def flush(self) -> None:
        """Flush buffered lines to the file (no-op in memory-only mode)."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close the file; the hash and kept events stay readable."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class TraceReader:
    """Reads a trace file: :attr:`header` at open, then events by iteration.

    Args:
        path: the trace file (gzip when the name ends in ``.gz``).

    Raises:
        TraceError: if the file is empty or its header is invalid.
        OSError: if the file cannot be opened.
    """

    def __init__(self, path: StrPath) -> None:
        self.path = Path(path)
        self._file = _open_read(self.path)
        try:
            first = self._file.readline()
        except (OSError, EOFError) as exc:
            self._file.close()
            raise TraceError(f"{self.path}: unreadable trace: {exc}") from None
        if not first:
            self._file.close()
            raise TraceError(f"{self.path}: empty trace file")
        try:
            self.header = TraceHeader.from_line_untrusted(first.rstrip("\n"))
        except TraceError:
            self._file.close()
            raise

    def lines(self) -> Iterator[str]:
        """Yield the remaining event lines as stored (without newline).

        Raises:
            TraceError: if the (compressed) file is corrupt.
        """
        try:
            for line in self._file:
                stripped = line.rstrip("\n")
                if stripped:
                    yield stripped
        except (OSError, EOFError) as exc:
            raise TraceError(f"{self.path}: unreadable trace: {exc}") from None

    def __iter__(self) -> Iterator[TraceEvent]:
        for index, line in enumerate(self.lines()):
            try:
                yield TraceEvent.from_line_untrusted(line)
            except TraceError as exc:
                raise TraceError(f"{self.path}: event {index}: {exc}") from None

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_header(path: StrPath) -> TraceHeader:
    """Return the header of a trace file.

    Raises:
        TraceError: if the file is not a valid trace.
    """
    with TraceReader(path) as reader:
        return reader.header


def read_events(path: StrPath) -> Iterator[TraceEvent]:
    """Yield the events of a trace file (the file stays open while iterating).

    Raises:
        TraceError: if the file or one of its lines is invalid.
    """
    with TraceReader(path) as reader:
        yield from reader


def hash_lines(lines: Iterable[str]) -> str:
    """Return the trace hash of canonical event lines (no newlines in them)."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def trace_hash(path: StrPath) -> str:
    """Return the trace hash of a trace file's events (recanonicalized).

    Raises:
        TraceError: if the file is not a valid trace.
    """
    with TraceReader(path) as reader:
        return hash_lines(event.to_line() for event in reader)


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where two event streams first differ.

    Attributes:
        index: 0-based event index of the first difference.
        expected: canonical line of the expected stream there (None: it ended).
        actual: canonical line of the actual stream there (None: it ended).
    """

    index: int
    expected: str | None
    actual: str | None

    def describe(self) -> str:
        """Return a human-readable multi-line report."""
        return (
            f"traces diverge at event {self.index}:\n"
            f"  expected: {self.expected if self.expected is not None else '<end of trace>'}\n"
            f"  actual:   {self.actual if self.actual is not None else '<end of trace>'}"
        )


def _as_line(item: TraceEvent | str) -> str:
    return item.to_line() if isinstance(item, TraceEvent) else item


def first_divergence(
    expected: Iterable[TraceEvent | str], actual: Iterable[TraceEvent | str]
) -> Divergence | None:
    """Compare two event streams and report the first difference.

    Items may be :class:`TraceEvent` objects or canonical lines; events are
    compared by their canonical lines. Stops at the first difference, so it
    works on large streams (e.g. two :func:`read_events` iterators).

    Args:
        expected: the reference stream (e.g. a recorded trace).
        actual: the stream to check (e.g. a replay's events).

    Returns:
        None if the streams are identical, else the first :class:`Divergence`
        (one side's line is None when that stream is shorter).
    """
    exp_iter, act_iter = iter(expected), iter(actual)
    index = 0
    while True:
        exp = next(exp_iter, None)
        act = next(act_iter, None)
        if exp is None and act is None:
            return None
        exp_line = None if exp is None else _as_line(exp)
        act_line = None if act is None else _as_line(act)
        if exp_line != act_line:
            return Divergence(index, exp_line, act_line)
        index += 1
