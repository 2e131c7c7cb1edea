"""Trace files: canonical lines, round trips (plain and gzip), the trace hash,
divergence reports and malformed files."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from netsim.models import DropReason
from netsim.trace import (
    Divergence,
    Recorder,
    TraceError,
    TraceEvent,
    TraceHeader,
    TraceReader,
    canonical_line,
    first_divergence,
    hash_lines,
    read_events,
    read_header,
    trace_hash,
)

META = {"scenario": "unit", "app": {"name": "ping", "interval": 1.0}}


def record_sample(recorder: Recorder) -> None:
    recorder.record(0.0, "op", op="add_host", host="a", address="127.1.0.2", nat=None)
    recorder.record(0.1 + 0.2, "send", id=1, src="127.1.0.2:4000", dst="127.1.0.1:9", size=3)
    recorder.record(0.35, "drop", id=1, reason=DropReason.LOSS, where="up:a")
    recorder.record(1 / 3, "app", host="a", event="ping", payload=b"\x01\xff", rtt=2 / 3)


def test_canonical_line_format() -> None:
    line = canonical_line(0.1 + 0.2, "app", {"host": "a", "x": 1 / 3, "tags": ("p", 2)})
    assert line == '{"t":0.3,"kind":"app","host":"a","x":0.333333333,"tags":["p",2]}'
    assert canonical_line(5, "op", {}) == '{"t":5.0,"kind":"op"}'
    with pytest.raises(TypeError, match="object"):
        canonical_line(0.0, "app", {"bad": object()})


def test_memory_recorder_hash_and_events() -> None:
    recorder = Recorder()
    record_sample(recorder)
    assert recorder.event_count == 4
    assert recorder.hexdigest() == hash_lines(recorder.lines())
    expected = hashlib.sha256("".join(f"{line}\n" for line in recorder.lines()).encode())
    assert recorder.hexdigest() == expected.hexdigest()
    (drop,) = recorder.events("drop")
    assert drop == TraceEvent(0.35, "drop", {"id": 1, "reason": "loss", "where": "up:a"})
    (app,) = recorder.events("app")
    assert app.fields == {"host": "a", "event": "ping", "payload": "01ff", "rtt": 0.666666667}


def test_recorder_without_kept_events_still_hashes() -> None:
    kept, lean = Recorder(), Recorder(keep_events=False)
    record_sample(kept)
    record_sample(lean)
    assert lean.hexdigest() == kept.hexdigest()
    with pytest.raises(ValueError, match="keep_events"):
        lean.events()


@pytest.mark.parametrize("name", ["trace.jsonl", "trace.jsonl.gz"])
def test_file_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with Recorder(path, seed=42, metadata=META) as recorder:
        record_sample(recorder)
    assert read_header(path) == TraceHeader(1, 42, META)
    events = list(read_events(path))
    assert events == recorder.events()
    assert trace_hash(path) == recorder.hexdigest()
    with TraceReader(path) as reader:
        assert list(reader.lines()) == recorder.lines()
    with pytest.raises(ValueError, match="closed"):
        recorder.record(9.0, "op", op="heal")


def test_plain_file_layout(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    with Recorder(path, seed=7, metadata={"scenario": "s"}) as recorder:
        recorder.record(1.5, "op", op="heal")
    assert path.read_text() == (
        '{"format":"netsim-trace","version":1,"seed":7,"meta":{"scenario":"s"}}\n'
        '{"t":1.5,"kind":"op","op":"heal"}\n'
    )


def test_gzip_files_are_byte_identical(tmp_path: Path) -> None:
    paths = [tmp_path / "one.gz", tmp_path / "two.gz"]
    for path in paths:
        with Recorder(path, seed=1) as recorder:
            record_sample(recorder)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert gzip.decompress(paths[0].read_bytes()).startswith(b'{"format":"netsim-trace"')


def test_first_divergence_points_at_first_difference() -> None:
    expected, actual = Recorder(), Recorder()
    record_sample(expected)
    record_sample(actual)
    assert first_divergence(expected.events(), actual.lines()) is None
    actual_lines = actual.lines()
    actual_lines[2] = canonical_line(0.35, "drop", {"id": 1, "reason": "queue", "where": "up:a"})
    divergence = first_divergence(expected.lines(), actual_lines)
    assert divergence == Divergence(2, expected.lines()[2], actual_lines[2])
    report = divergence.describe()
    assert "event 2" in report
    assert '"reason":"loss"' in report
    assert '"reason":"queue"' in report


def test_first_divergence_when_one_stream_is_shorter() -> None:
    lines = [canonical_line(float(i), "op", {"op": "heal"}) for i in range(3)]
    assert first_divergence(lines, lines[:2]) == Divergence(2, lines[2], None)
    assert first_divergence(lines[:1], lines) == Divergence(1, None, lines[1])
    assert "<end of trace>" in Divergence(1, None, lines[1]).describe()


def test_hash_differs_when_an_event_differs() -> None:
    a, b = Recorder(), Recorder()
    record_sample(a)
    record_sample(b)
    b.record(2.0, "op", op="heal")
    assert a.hexdigest() != b.hexdigest()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("not json\n", "bad trace header"),
        ('{"format":"other","version":1}\n', "not a netsim trace"),
        ('{"format":"netsim-trace","version":99}\n', "unsupported trace version"),
        ('{"format":"netsim-trace","version":1,"seed":"x"}\n', "seed"),
    ],
)
def test_bad_headers(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(TraceError, match=message):
        read_header(path)


@pytest.mark.parametrize("line", ["[1, 2]", '{"t":"x","kind":"op"}', '{"t":1}', "{oops"])
def test_bad_event_lines(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(TraceHeader().to_line() + "\n" + canonical_line(0.0, "op", {}) + "\n" + line)
    with pytest.raises(TraceError, match="event 1"):
        list(read_events(path))


def test_corrupt_gzip_raises_trace_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(TraceError):
        read_header(path)


def test_binary_garbage_is_not_a_trace(tmp_path: Path) -> None:
    path = tmp_path / "bad.trace"
    path.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(TraceError, match="not a netsim trace"):
        read_header(path)
    later = tmp_path / "later.trace"
    later.write_bytes(TraceHeader().to_line().encode() + b"\n\xff\xfe\n")
    with pytest.raises(TraceError, match="not a netsim trace"):
        list(read_events(later))
