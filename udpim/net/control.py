"""The control socket: a Unix stream socket in the data directory, JSON lines both ways.

What it owns: the server (``open_control_listener`` + ``serve_control``), the blocking
client the CLI uses (``control_request``), and the peer-credential check.

Protocol (docs/IM.md; the daemon's commands are in ``udpim.net.peercontrol``):

* One request per connection: the client writes ONE JSON object and a newline, e.g.
  ``{"cmd": "status"}``. The server answers with one or more JSON objects, one per line,
  and closes the connection after the last one. A streaming request such as
  ``inbox --follow`` ends when the client closes its end (after the first answer).
  Errors are ``{"ok": false, "error": "one line"}`` and end the answer.
* Requests are at most ``MAX_REQUEST_BYTES``; at most ``MAX_CLIENTS`` connections are
  served at once (more get an error line and are closed).

Security rules:

* The socket lives in the data directory, which is 0700; the socket itself is 0600.
* Every accepted connection's ``SO_PEERCRED`` uid must equal the daemon's own uid
  (``check_peer_credentials``); anyone else gets an error line and is closed. This is
  defence in depth behind the file permissions (root, for one, ignores those).
* The caller holds the data-dir lock (``udpim.net.datadir``), so a socket file found at
  start is stale (left by a crashed daemon) and is replaced. Anything there that is not
  a socket is left alone and reported.
* Paths longer than a Unix socket address allows (about 107 bytes) are reached through
  ``/proc/self/fd/N/``, a short alias of the directory (Linux).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

from udpim.core.errors import UdpimError
from udpim.net.errors import ControlError, DaemonNotRunning

__all__ = [
    "CONTROL_SOCKET",
    "MAX_CLIENTS",
    "MAX_REQUEST_BYTES",
    "ControlHandler",
    "ControlListener",
    "Reply",
    "check_peer_credentials",
    "control_request",
    "open_control_listener",
    "serve_control",
]

log = logging.getLogger("udpim.net.control")

CONTROL_SOCKET: Final = "control.sock"
"""The control socket's file name inside the data directory."""
MAX_REQUEST_BYTES: Final = 1 << 20
MAX_CLIENTS: Final = 32
_MAX_SUN_PATH: Final = 107
_UCRED: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid

Reply = Callable[[dict[str, object]], Awaitable[None]]
"""Writes one answer object as a JSON line."""
ControlHandler = Callable[[dict[str, object], Reply], Awaitable[None]]
"""Answers one request through ``reply``; raising ``UdpimError`` sends it as an error line."""


# --------------------------------------------------------------------------- credentials


def check_peer_credentials(ucred: bytes, *, own_uid: int) -> int:
    """Check a connection's ``SO_PEERCRED`` value (``struct ucred``).

    Args:
        ucred: the raw option value (pid, uid, gid as three C ints).
        own_uid: the only uid allowed (the daemon's).

    Returns:
        The peer's uid (== ``own_uid``).

    Raises:
        ControlError: the value is malformed, or the peer is another user.
    """
    if len(ucred) != _UCRED.size:
        raise ControlError("cannot read the peer's credentials")
    _, uid, _ = _UCRED.unpack(ucred)
    if uid != own_uid:
        raise ControlError(f"permission denied: uid {uid} may not use this daemon")
    return int(uid)


# --------------------------------------------------------------------------- server


@contextlib.contextmanager
def _short_path(path: Path) -> Iterator[str]:
    """``path`` as a string short enough for ``sockaddr_un`` (see module docstring)."""
    text = str(path)
    if len(text.encode()) <= _MAX_SUN_PATH:
        yield text
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class ControlListener:
    """A listening control socket and its file (removed when ``serve_control`` ends)."""

    sock: trio.socket.SocketType
    path: Path


async def open_control_listener(data_dir: Path) -> ControlListener:
    """Bind and listen on ``<data_dir>/control.sock`` (0600), replacing a stale one.

    The caller must hold the data directory (``hold_data_dir``).

    Raises:
        ControlError: the socket cannot be created (one line naming the path).
    """
    path = data_dir / CONTROL_SOCKET
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise ControlError(f"cannot use {path}: {exc.strerror or exc}") from None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise ControlError(f"cannot create the control socket: {path} exists")
        path.unlink()
        log.info("replaced the stale control socket %s", path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        with _short_path(path) as address:
            await sock.bind(address)
        os.chmod(path, 0o600)
        sock.listen(MAX_CLIENTS)
    except OSError as exc:
        sock.close()
        raise ControlError(f"cannot create {path}: {exc.strerror or exc}") from None
    return ControlListener(sock, path)


async def serve_control(
    listener: ControlListener,
    handler: ControlHandler,
    *,
    own_uid: int | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections on ``listener`` and answer their requests until cancelled.

    Args:
        listener: from ``open_control_listener``; closed and its file removed on exit.
        handler: answers one request (see ``ControlHandler``).
        own_uid: the uid allowed to connect (default ``os.getuid()``).
    """
    uid = os.getuid() if own_uid is None else own_uid
    limiter = trio.CapacityLimiter(MAX_CLIENTS)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                conn, _ = await listener.sock.accept()
                stream = trio.SocketStream(conn)
                try:
                    limiter.acquire_on_behalf_of_nowait(stream)
                except trio.WouldBlock:
                    nursery.start_soon(_refuse, stream, "too many control connections")
                    continue
                nursery.start_soon(_serve_connection, stream, handler, uid, limiter)
    finally:
        listener.sock.close()
        with contextlib.suppress(OSError):
            listener.path.unlink()


async def _refuse(stream: trio.SocketStream, error: str) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await _write(stream, {"ok": False, "error": error})
    await stream.aclose()


async def _serve_connection(
    stream: trio.SocketStream, handler: ControlHandler, uid: int, limiter: trio.CapacityLimiter
) -> None:
    try:
        try:
            raw = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
            check_peer_credentials(raw, own_uid=uid)
            request = await _read_request(stream)
        except ControlError as exc:
            log.warning("control connection refused: %s", exc)
            await _refuse(stream, str(exc))
            return
        await _answer(stream, handler, request)
    finally:
        limiter.release_on_behalf_of(stream)
        await stream.aclose()


async def _answer(
    stream: trio.SocketStream, handler: ControlHandler, request: dict[str, object]
) -> None:
    replied = trio.Event()

    async def reply(obj: dict[str, object]) -> None:
        await _write(stream, obj)
        replied.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_eof, stream, replied, nursery.cancel_scope)
            try:
                await handler(request, reply)
            except UdpimError as exc:
                await reply({"ok": False, "error": str(exc)})
            nursery.cancel_scope.cancel()
    except* (trio.BrokenResourceError, trio.ClosedResourceError):
        log.debug("control client went away")


async def _cancel_on_eof(
    stream: trio.SocketStream, replied: trio.Event, scope: trio.CancelScope
) -> None:
    """The client closed its end: stop answering it (a stream such as ``inbox --follow``
    ends here). A client that only half-closed after its request still gets a first
    answer."""
    await stream.receive_some(1)
    await replied.wait()
    scope.cancel()


async def _read_request(stream: trio.SocketStream) -> dict[str, object]:
    buffer = bytearray()
    while b"\n" not in buffer:
        if len(buffer) > MAX_REQUEST_BYTES:
            raise ControlError(f"request longer than {MAX_REQUEST_BYTES} bytes")
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ControlError("no request (connection closed)")
        buffer += chunk
    line, _, _ = bytes(buffer).partition(b"\n")
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):
        raise ControlError("request is not a JSON object") from None
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise ControlError('request must be a JSON object with a "cmd" string')
    return request


async def _write(stream: trio.SocketStream, obj: dict[str, object]) -> None:
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
    await stream.send_all(line.encode("utf-8", "replace"))


# --------------------------------------------------------------------------- client


def control_request(
    data_dir: Path, request: Mapping[str, object], *, timeout_s: float | None
) -> Generator[dict[str, object], None, None]:
    """Send ``request`` to the daemon of ``data_dir`` and yield its answers (blocking).

    Args:
        data_dir: the daemon's data directory.
        request: the request object (``{"cmd": ...}``).
        timeout_s: the longest wait to connect and for each next answer line (None:
            forever, e.g. ``inbox --follow``).

    Yields:
        Each answer object, in order, until the daemon closes the connection. Closing
        the generator early (``close()``, or leaving a ``for`` loop and dropping it)
        closes the connection, which ends a streaming answer on the daemon's side.

    Raises:
        DaemonNotRunning: no daemon listens there.
        ControlError: permission problems, a timeout, a malformed answer, or an error
            answer (``{"ok": false, "error": ...}``: the error text is the message).
    """
    path = Path(data_dir) / CONTROL_SOCKET
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        _connect(sock, path)
        line = json.dumps(dict(request), ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            # A daemon that refuses us closes before reading: its error line is still
            # there to read, so a broken pipe here is not the end of the story.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(line.encode("utf-8", "replace"))
            with sock.makefile("rb") as answers:
                yield from _answers(answers, path)
        except TimeoutError:
            raise ControlError(f"no answer from the daemon within {timeout_s:g} s") from None
        except OSError as exc:
            raise ControlError(
                f"lost the connection to the daemon: {exc.strerror or exc}"
            ) from None


def _connect(sock: socket.socket, path: Path) -> None:
    try:
        with _short_path(path) as address:
            sock.connect(address)
    except (FileNotFoundError, ConnectionRefusedError):
        raise DaemonNotRunning(f"daemon not running (no control socket at {path})") from None
    except PermissionError:
        raise ControlError(f"permission denied: {path}") from None
    except TimeoutError:
        raise ControlError(f"the daemon does not accept connections at {path}") from None
    except OSError as exc:
        raise ControlError(f"cannot connect to {path}: {exc.strerror or exc}") from None


def _answers(answers: Iterator[bytes], path: Path) -> Iterator[dict[str, object]]:
    got_one = False
    for raw in answers:
        try:
            answer = json.loads(raw)
        except ValueError:
            raise ControlError(f"malformed answer from the daemon at {path}") from None
        if not isinstance(answer, dict):
            raise ControlError(f"malformed answer from the daemon at {path}")
        got_one = True
        if answer.get("ok") is False:
            raise ControlError(str(answer.get("error") or "the daemon refused"), answer)
        yield answer
    if not got_one:
        raise ControlError("the daemon closed the connection without answering")
