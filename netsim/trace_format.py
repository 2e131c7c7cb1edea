"""The netsim trace file format: canonical event lines, the header, reading and writing files.

What this module owns: the bytes of a trace. :func:`canonical_line` turns one event into its
one canonical line, :class:`TraceEvent` and :class:`TraceHeader` parse lines back,
:func:`open_trace_writer` and :class:`TraceReader` (with :func:`read_header` and
:func:`read_events`) write and read files, plain or gzip. What the events *mean*, the
:class:`~netsim.trace.Recorder` that produces them and the trace hash of a file live in
:mod:`netsim.trace`, which re-exports everything public here.

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
line). :class:`~netsim.trace.Recorder` computes it incrementally while
recording, also when recording only to memory.

Rules kept here: the same event gives the same line in every process, so equal runs give equal
hashes and byte-identical files. Malformed trace files raise only :class:`TraceError`.
"""

from __future__ import annotations

import enum
import gzip
import io
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from netsim.closing import Closing

__all__ = [
    "TIME_DECIMALS",
    "TRACE_FORMAT",
    "TRACE_VERSION",
    "StrPath",
    "TraceError",
    "TraceEvent",
    "TraceHeader",
    "TraceReader",
    "canonical_line",
    "open_trace_writer",
    "read_events",
    "read_header",
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


def open_trace_writer(path: Path) -> IO[str]:
    """Open ``path`` to write trace lines: gzip when the name ends in ``.gz``, else plain text.

    The gzip stream is written with mtime 0 and no file name, so equal traces are
    byte-identical files.

    Raises:
        OSError: if the file cannot be created.
    """
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


class TraceReader(Closing):
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
        except UnicodeDecodeError:
            self._file.close()
            raise TraceError(f"{self.path}: not a netsim trace (not UTF-8 text)") from None
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
        except UnicodeDecodeError:
            raise TraceError(f"{self.path}: not a netsim trace (not UTF-8 text)") from None
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
