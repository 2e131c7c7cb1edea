"""The daemon's control-socket commands: ``send``, ``inbox``, ``status``, ``watch``.

Each request is one JSON object (``udpim.net.control`` carries it); the answers are
JSON objects, one per line:

``{"cmd": "send", "to": NAME, "text": TEXT, "wait": null|"accepted"|"delivered", "timeout": S}``
    ``{"ok": true, "id": ID, "state": "queued"}`` once the message is on disk, then one
    line per later state while waiting (``accepted``, ``delivered``). A rejected message
    ends with ``{"ok": false, "error": "unknown user NAME", "id": ID, "state":
    "rejected"}``; a wait that runs out with ``{"ok": false, "error": ..., "id": ID,
    "state": LAST}`` (the message stays queued and is delivered later).
``{"cmd": "inbox", "follow": BOOL, "after": N}``
    ``{"ok": true, "messages": [MESSAGE, ...]}`` (oldest first; ``after`` skips the first
    N inbox positions, default 0), then with ``follow`` one ``{"message": MESSAGE}`` per
    new arrival until the client disconnects. MESSAGE is ``{"id", "from", "to", "text",
    "sent_at", "received_at"}`` (times in unix ms).
``{"cmd": "status"}``
    ``{"ok": true, "status": {...}}`` (``PeerHandle.status``).
``{"cmd": "watch", "users": [NAME, ...]}``
    ``{"ok": true}``; presence of those users then shows in ``status``.

Bad requests get ``{"ok": false, "error": "one line"}``.
"""

from __future__ import annotations

import math
from typing import Final

from udpim.im.events import MessageArrived, OutboxChanged
from udpim.im.ops import InboxEntry
from udpim.net.control import Reply
from udpim.net.errors import ControlError, SendTimeout, UnknownUser
from udpim.net.peerhandle import PeerHandle, WaitFor

__all__ = ["PeerCommands", "message_object"]

_WAITS: Final[dict[object, WaitFor | None]] = {
    None: None,
    "accepted": "accepted",
    "delivered": "delivered",
}


def message_object(message: InboxEntry | MessageArrived) -> dict[str, object]:
    """An inbox message as the control protocol shows it."""
    return {
        "id": message.id,
        "from": message.sender,
        "to": message.to,
        "text": message.body,
        "sent_at": message.sent_at,
        "received_at": message.received_at,
    }


class PeerCommands:
    """Answers control requests with a ``PeerHandle`` (a ``ControlHandler``)."""

    def __init__(self, handle: PeerHandle) -> None:
        self._handle = handle

    async def __call__(self, request: dict[str, object], reply: Reply) -> None:
        """Answer one request (see the module docstring).

        Raises:
            UdpimError: a bad request or a failed command (sent as an error line).
        """
        command = request["cmd"]
        if command == "send":
            await self._send(request, reply)
        elif command == "inbox":
            await self._inbox(request, reply)
        elif command == "status":
            await reply({"ok": True, "status": await self._handle.status()})
        elif command == "watch":
            users = request.get("users")
            if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
                raise ControlError('watch needs "users": a list of names')
            self._handle.watch(users)
            await reply({"ok": True})
        else:
            raise ControlError(
                f"unknown command {command!r} (expected send, inbox, status or watch)"
            )

    async def _send(self, request: dict[str, object], reply: Reply) -> None:
        to, text = request.get("to"), request.get("text")
        if not isinstance(to, str) or not isinstance(text, str):
            raise ControlError('send needs "to" and "text" strings')
        wait_value = request.get("wait")
        if wait_value not in _WAITS:
            raise ControlError('"wait" must be null, "accepted" or "delivered"')
        timeout = request.get("timeout")
        if timeout is not None and (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not 0 < timeout < math.inf
        ):
            raise ControlError('"timeout" must be a positive number of seconds')
        last: dict[str, str] = {}

        async def on_state(change: OutboxChanged) -> None:
            last.update(id=change.id, state=change.state.value)
            if change.state.value != "rejected":
                await reply({"ok": True, "id": change.id, "state": change.state.value})

        try:
            await self._handle.send(
                to,
                text,
                wait=_WAITS[wait_value],
                timeout_s=None if timeout is None else float(timeout),
                on_state=on_state,
            )
        except (UnknownUser, SendTimeout) as exc:
            await reply({"ok": False, "error": str(exc), **last})

    async def _inbox(self, request: dict[str, object], reply: Reply) -> None:
        after = request.get("after", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise ControlError('"after" must be an inbox position >= 0')
        follow = request.get("follow", False)
        with self._handle.subscribe() as events:
            entries = await self._handle.inbox(after)
            await reply({"ok": True, "messages": [message_object(e) for e in entries]})
            if not follow:
                return
            seen = {(e.sender, e.id) for e in entries}
            async for event in events:
                if isinstance(event, MessageArrived) and (event.sender, event.id) not in seen:
                    await reply({"message": message_object(event)})
        raise ControlError("inbox stream ended (the daemon is stopping or this reader fell behind)")
