"""Output a session owes its peer but has not packed yet, and which of it fits a packet.

``OwedFrames`` holds the flags and frames ``Transmitter`` still has to send: a handshake
confirmation, a heartbeat, PTO probes, a lost WINDOW to re-advertise, PATH_RESPONSEs, and
the CLOSE of a closing session. ``control_frames`` picks the control frames that fit the
room left in a packet; the rest stay owed (an unvalidated path's amplification budget can
be smaller than they are), so nothing owed is ever dropped for lack of room. While nothing
is owed (``settled``), ``Transmitter`` keeps no ``OwedFrames`` at all.
"""

from __future__ import annotations

from typing import final

from udpim.core.framecodec import frame_size
from udpim.core.frames import CloseFrame, Frame, PathResponseFrame
from udpim.core.path import PathManager
from udpim.core.recvbuffer import ReceiveBuffer

__all__ = ["OwedFrames"]


@final
class OwedFrames:
    """Output that is owed but not yet packed."""

    __slots__ = ("_responses", "close", "close_resend", "heartbeat", "ping", "probes", "window")

    def __init__(self) -> None:
        self.ping = False  # one ack-eliciting packet is owed (handshake confirmation)
        self.heartbeat = False  # the keepalive deadline passed
        self.probes = 0  # PTO probes owed (ack-eliciting, may exceed cwnd)
        self.window = False  # a WINDOW frame was lost (or the window is above the initial)
        self._responses: list[PathResponseFrame] | None = None  # no list while none is owed
        self.close: CloseFrame | None = None
        self.close_resend = False

    @property
    def settled(self) -> bool:
        """Nothing is owed (the owner may drop this record until something is)."""
        return not (
            self.ping
            or self.heartbeat
            or self.probes
            or self.window
            or self._responses
            or self.close is not None
            or self.close_resend
        )

    @property
    def path_responses(self) -> list[PathResponseFrame]:
        """The PATH_RESPONSEs owed, oldest first (append to owe one more)."""
        if self._responses is None:
            self._responses = []
        return self._responses

    def control_frames(self, room: int, path: PathManager, recv: ReceiveBuffer) -> list[Frame]:
        """The owed control frames that fit in ``room`` bytes: PATH_RESPONSEs, the path's
        PATH_CHALLENGE, a WINDOW update. Those that do not fit stay owed."""
        frames: list[Frame] = []
        owed: list[PathResponseFrame] = []
        for response in self._responses or ():
            if frame_size(response) <= room:
                frames.append(response)
                room -= frame_size(response)
            else:
                owed.append(response)
        self._responses = owed or None
        challenge = path.take_challenge()
        if challenge is not None:
            if frame_size(challenge) <= room:
                frames.append(challenge)
                room -= frame_size(challenge)
            else:
                path.on_challenge_lost(challenge)  # not sent: still owed
        window = recv.window_frame(force=self.window)
        self.window = window is not None and frame_size(window) > room
        if window is not None and not self.window:
            frames.append(window)
        return frames
