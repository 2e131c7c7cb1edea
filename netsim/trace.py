"""Simulation traces: the recorder, the events netsim records, trace hashes and comparison.

What this module owns: producing and checking event streams. :class:`Recorder` turns each
simulation event into its canonical line, keeps the running trace hash and optionally writes
the file; :func:`hash_lines` and :func:`trace_hash` compute the hash of lines or of a file;
:func:`first_divergence` finds where two event streams first differ. It knows nothing about
networks; :mod:`netsim.network`, the runner and applications call :meth:`Recorder.record`.

The file format (JSON Lines, the header line, the canonical form of an event line and the
definition of the trace hash) is specified and implemented in :mod:`netsim.trace_format`;
everything public there is re-exported here, so ``netsim.trace`` is the one import for traces.

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
``end``
    ``reason``: why the run stopped, ``app-done`` (the application returned) or
    ``duration`` (the scenario's duration was reached and the application was
    cancelled). Written once by :mod:`netsim.runner`, as the last event of a run.

Rules kept here: recording is on the per-packet path, so :meth:`Recorder.record`
does one dict build, one C-accelerated JSON encode and one hash update, and
keeps only the line (events are parsed back lazily). Malformed trace files
raise only :class:`TraceError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from netsim.closing import Closing
from netsim.trace_format import (
    TIME_DECIMALS,
    TRACE_FORMAT,
    TRACE_VERSION,
    StrPath,
    TraceError,
    TraceEvent,
    TraceHeader,
    TraceReader,
    canonical_line,
    open_trace_writer,
    read_events,
    read_header,
)

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


class Recorder(Closing):
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
            self._file = open_trace_writer(self.path)
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
