"""The ``netsim`` command line: happy paths, one-line errors and exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from netsim.cli import main
from netsim.mahimahi import bundled_traces
from netsim.progress import ProgressDisplay
from netsim.scenario import bundled_scenarios

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "run", "lossy-ping", "--duration", "30s", "--no-progress")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "scenario lossy-ping (seed 1, app netsim.examples.ping:PingApp)"
    assert lines[1].startswith("trace hash ")
    assert any(line.strip().startswith("client -> server") for line in lines)
    assert lines[-1].startswith("simulated 30s in ")


def test_run_json_record_replay_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = str(tmp_path / "run.trace.gz")
    code, out, _ = run_cli(
        capsys,
        "run",
        "outage-handover",
        "--seed",
        "8",
        "--duration",
        "70s",
        "--record",
        trace,
        "--json",
        "--no-progress",
    )
    assert code == 0
    document = json.loads(out)
    assert (document["scenario"], document["seed"], document["record"]) == (
        "outage-handover",
        8,
        trace,
    )
    assert document["app"] == "netsim.examples.ping:PingApp"
    assert document["messages"]["sent"] == 70
    assert document["virtual_s"] == 70.0
    assert document["flows"][0]["drops"]["outage"] == 15

    code, out, _ = run_cli(capsys, "replay", trace)
    assert code == 0
    assert out.strip() == (
        "replay OK: scenario outage-handover, seed 8, app netsim.examples.ping:PingApp, "
        f"trace hash {document['trace_hash']}"
    )

    code, out, _ = run_cli(capsys, "replay", trace, "--json")
    assert json.loads(out)["ok"] is True

    code, out, _ = run_cli(capsys, "report", trace)
    assert code == 0
    assert out.splitlines()[0] == (
        f"trace {trace}: scenario outage-handover, seed 8, app netsim.examples.ping:PingApp"
    )
    assert f"trace hash {document['trace_hash']}" in out

    png = tmp_path / "run.png"
    code, out, _ = run_cli(capsys, "report", trace, "--json", "--plot", str(png))
    assert code == 0
    report = json.loads(out)
    assert report["trace_hash"] == document["trace_hash"]
    assert report["flows"] == document["flows"]
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_replay_of_an_edited_trace_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "run.trace"
    assert (
        main(["run", "lossy-ping", "--duration", "5s", "--record", str(trace), "--no-progress"])
        == 0
    )
    lines = trace.read_text().splitlines()
    assert lines[2].startswith('{"t":0.0,"kind":"op"')  # the second event: add_host client
    lines[2] = lines[2].replace('"t":0.0', '"t":0.5')
    trace.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    code, out, _ = run_cli(capsys, "replay", str(trace))
    assert code == 1
    assert out.startswith("replay FAILED: scenario lossy-ping, seed 1")
    assert "traces diverge at event 1:" in out
    assert '    expected: {"t":0.5,' in out


def test_listings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "traces")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == bundled_traces()
    code, out, _ = run_cli(capsys, "scenarios")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == bundled_scenarios()


BAD_SCENARIO = '[hosts.a]\naddress = "127.0.0.1"\nup = { loss = "lots" }\n'


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["run", "no-such-scenario"], 2, "netsim run: error: no-such-scenario: no such file"),
        (["run", "BAD"], 2, "BAD: hosts.a.up.loss: bad ratio 'lots'"),
        (["run", "lossy-ping", "--app", "nowhere:App"], 2, "bad app 'nowhere:App': cannot import"),
        (["run", "lossy-ping", "--app", "nocolon"], 2, "expected MODULE:FACTORY"),
        (["run", "lossy-ping", "--seed", "-3"], 2, "bad --seed '-3': expected a non-negative"),
        (["run", "lossy-ping", "--seed", "x"], 2, "bad --seed 'x'"),
        (["run", "lossy-ping", "--duration", "0s"], 2, "bad --duration '0s': must be more than"),
        (["run", "lossy-ping", "--duration", "soon"], 2, "bad --duration: bad duration 'soon'"),
        (
            ["run", "lossy-ping", "--app", "netsim.examples.stopwait:StopWaitApp"],
            2,
            "workload.server: unknown key",
        ),
        (["run"], 2, "netsim run: error: the following arguments are required: SCENARIO"),
        (["launch"], 2, "netsim: error: argument COMMAND: invalid choice: 'launch'"),
        (["replay", "MISSING"], 2, "netsim replay: error: MISSING: No such file or directory"),
        (["report", "NOT_A_TRACE"], 2, "NOT_A_TRACE: not a netsim trace"),
        (["proxy", "--listen", "127.0.0.1:0"], 2, "--to HOST:PORT is required"),
    ],
)
def test_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    (tmp_path / "bad.toml").write_text(BAD_SCENARIO)
    (tmp_path / "not.trace").write_text('{"hello": 1}\n')
    swaps = {
        "BAD": str(tmp_path / "bad.toml"),
        "MISSING": str(tmp_path / "missing.trace"),
        "NOT_A_TRACE": str(tmp_path / "not.trace"),
    }
    argv = [swaps.get(arg, arg) for arg in argv]
    message = message.replace("BAD", swaps["BAD"]).replace("MISSING", swaps["MISSING"])
    message = message.replace("NOT_A_TRACE", swaps["NOT_A_TRACE"])
    actual, out, err = run_cli(capsys, *argv)
    assert actual == code
    assert out == ""
    assert err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err


def test_app_failure_exits_1_and_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["run", "lossy-ping", "--app", "tests.netsim.test_runner:FailingApp", "--no-progress"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 1
    assert err == (
        "netsim run: error: run failed at t=1s (app tests.netsim.test_runner:FailingApp): "
        "ZeroDivisionError: boom\n"
    )
    code, _, err = run_cli(capsys, *argv, "--debug")
    assert code == 1
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith("netsim run: error: run failed at t=1s")


def test_plain_progress_lines() -> None:
    stream = io.StringIO()
    with ProgressDisplay("demo", 120.0, stream=stream, use_rich=False, quiet_s=0.0) as display:
        for t in (6.0, 12.0, 42.0, 119.0, 120.0):
            display.update(t)
    percents = [line.split()[2] for line in stream.getvalue().splitlines()]
    assert percents == ["10%", "30%", "90%", "100%"]
    assert stream.getvalue().startswith("netsim: demo 10% (12s of 2min virtual, ")


class _Terminal(io.StringIO):
    """A StringIO that claims to be a TTY, so rich draws into it."""

    def isatty(self) -> bool:
        return True


def test_rich_progress_draws_and_clears() -> None:
    stream = _Terminal()
    with ProgressDisplay("demo", 10.0, stream=stream) as display:
        assert display.use_rich  # a TTY with rich installed gets the bar
        display.update(5.0)
    drawn = stream.getvalue()
    assert "demo" in drawn
    assert "5s of 10s" in drawn
    assert drawn.endswith("\x1b[2K")  # transient: the bar is erased at the end


def test_python_dash_m_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "netsim", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    assert "netsim run lossy-ping" in result.stdout
    for command in ("run", "replay", "report", "proxy", "traces"):
        assert command in result.stdout


def test_subprocess_run_error_is_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "netsim", "run", "lossy-ping", "--seed", "-1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "netsim run: error: bad --seed '-1': expected a non-negative integer\n"
    )
