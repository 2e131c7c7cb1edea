"""NAT-probe datagrams and the hub's echo scheduler (docs/IM.md section 16).

Why: a daemon learns how long its NAT keeps an idle UDP mapping with a *sacrificial*
mapping (``udpim.im.natlearn``): its probe socket sends an *observe* datagram to the
hub, and later, over its authenticated session, asks the hub (``nat_probe``) to send an
*echo* to the address that observe came from after a delay. If the echo arrives, the
mapping survived that long idle.

Wire format (outside the udpim protocol, like the hub-key query of ``keyquery``: the
first byte's version bits are 00, so an endpoint that does not know it drops it):

    observe = 0x00 "udpim-nat-probe" token[8] 0x00 ...      exactly 48 bytes
    seen    = 0x00 "udpim-nat-seen"  token[8] family[1] ip[4|16] port[2]   30 or 42 bytes
    echo    = 0x00 "udpim-nat-echo"  token[8]               23 bytes

``seen`` names the public address the hub saw, so the daemon notices when its public
address changes (another network) between two tests; ``family`` is 4 or 6 (0: no
address follows, for a source that is not an IP literal).

Rules (amplification < 1, no spoofed reflection, bounded memory):

* Every reply is smaller than the datagram that caused it: ``seen`` (at most 42 bytes)
  answers an observe (48); the echoes (3 x 23 = 69 bytes) answer a ``nat_probe``
  session message (a frame of at least 57 bytes, sealed in a DATA packet that adds at
  least 23 more).
* An echo goes only to an address the hub saw the token come from within
  ``OBSERVED_TTL_S``, and only because an authenticated session asked. An unknown token
  is ignored. Each session has at most ONE echo scheduled: a newer request replaces it,
  a closed session cancels it.
* The observed table holds at most ``MAX_OBSERVED`` tokens (oldest evicted) for at most
  ``OBSERVED_TTL_S``; the schedule holds one entry per live session. One task serves
  every echo (``EchoService``): no task per probe.
* An echo is sent ``ECHO_COPIES`` times, ``ECHO_SPACING_S`` apart, so a lossy link
  rarely fakes an expiry.
* ``parse_*_untrusted`` accept any bytes and return None for anything else.
"""

from __future__ import annotations

import heapq
import ipaddress
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, final

import trio

from udpim.im.natlearn import TOKEN_BYTES

__all__ = [
    "ECHO_COPIES",
    "ECHO_SPACING_S",
    "MAX_OBSERVED",
    "OBSERVED_TTL_S",
    "OBSERVE_BYTES",
    "EchoScheduler",
    "EchoService",
    "EchoStatistics",
    "encode_echo",
    "encode_observe",
    "encode_seen",
    "parse_echo_untrusted",
    "parse_observe_untrusted",
    "parse_seen_untrusted",
]

log = logging.getLogger("udpim.net.natprobe")

Address = tuple[str, int]

_OBSERVE_MAGIC: Final = b"\x00udpim-nat-probe"
_SEEN_MAGIC: Final = b"\x00udpim-nat-seen"
_ECHO_MAGIC: Final = b"\x00udpim-nat-echo"
OBSERVE_BYTES: Final = 48
OBSERVED_TTL_S: Final = 60.0
"""How long the hub remembers where a token was seen."""
MAX_OBSERVED: Final = 4096
"""Most tokens remembered at once (oldest evicted first)."""
ECHO_COPIES: Final = 3
ECHO_SPACING_S: Final = 0.05


# --------------------------------------------------------------------------- wire


def encode_observe(token: bytes) -> bytes:
    """The observe datagram for ``token`` (8 bytes)."""
    return (_OBSERVE_MAGIC + token).ljust(OBSERVE_BYTES, b"\x00")


def parse_observe_untrusted(data: bytes) -> bytes | None:
    """The token of an observe datagram, or None for any other bytes."""
    head = len(_OBSERVE_MAGIC) + TOKEN_BYTES
    if len(data) != OBSERVE_BYTES or not data.startswith(_OBSERVE_MAGIC):
        return None
    if data[head:].strip(b"\x00"):
        return None
    return bytes(data[len(_OBSERVE_MAGIC) : head])


def encode_seen(token: bytes, address: Address) -> bytes:
    """The ``seen`` reply for ``token`` observed from ``address``."""
    try:
        ip = ipaddress.ip_address(address[0])
    except ValueError:
        return _SEEN_MAGIC + token + b"\x00"
    family = b"\x04" if ip.version == 4 else b"\x06"
    return _SEEN_MAGIC + token + family + ip.packed + address[1].to_bytes(2, "big")


def parse_seen_untrusted(data: bytes) -> tuple[bytes, Address | None] | None:
    """``(token, observed address or None)`` of a ``seen`` reply, or None."""
    head = len(_SEEN_MAGIC) + TOKEN_BYTES
    if len(data) <= head or not data.startswith(_SEEN_MAGIC):
        return None
    token, family, rest = bytes(data[len(_SEEN_MAGIC) : head]), data[head], data[head + 1 :]
    if family == 0 and not rest:
        return token, None
    size = {4: 4, 6: 16}.get(family)
    if size is None or len(rest) != size + 2:
        return None
    ip = ipaddress.ip_address(bytes(rest[:size]))
    return token, (str(ip), int.from_bytes(rest[size:], "big"))


def encode_echo(token: bytes) -> bytes:
    """The echo datagram for ``token``."""
    return _ECHO_MAGIC + token


def parse_echo_untrusted(data: bytes) -> bytes | None:
    """The token of an echo datagram, or None."""
    if len(data) != len(_ECHO_MAGIC) + TOKEN_BYTES or not data.startswith(_ECHO_MAGIC):
        return None
    return bytes(data[len(_ECHO_MAGIC) :])


# --------------------------------------------------------------------------- scheduler


@final
@dataclass(frozen=True, slots=True)
class EchoStatistics:
    """Counters and gauges of an ``EchoScheduler``."""

    observes: int
    observed_tokens: int
    requests: int
    unknown_tokens: int
    replaced: int
    cancelled: int
    scheduled: int
    echoes_sent: int


@final
@dataclass(slots=True)
class _Echo:
    token: bytes
    address: Address
    due: float
    copies_left: int
    sequence: int


@final
class EchoScheduler:
    """The hub's observe table and echo schedule, sans-IO (see the module rules).

    Args:
        max_observed: most tokens remembered.
        observed_ttl_s: how long a token is remembered.
        copies: echoes per request.
        spacing_s: time between the copies.
    """

    def __init__(
        self,
        *,
        max_observed: int = MAX_OBSERVED,
        observed_ttl_s: float = OBSERVED_TTL_S,
        copies: int = ECHO_COPIES,
        spacing_s: float = ECHO_SPACING_S,
    ) -> None:
        self._max_observed = max_observed
        self._ttl_s = observed_ttl_s
        self._copies = copies
        self._spacing_s = spacing_s
        self._observed: OrderedDict[bytes, tuple[Address, float]] = OrderedDict()
        self._echoes: dict[bytes, _Echo] = {}  # sid -> its one scheduled echo
        self._heap: list[tuple[float, int, bytes]] = []
        self._sequence = 0
        self._counts = dict.fromkeys(
            ("observes", "requests", "unknown_tokens", "replaced", "cancelled", "echoes_sent"), 0
        )

    def on_datagram_untrusted(self, data: bytes, source: Address, now: float) -> bytes | None:
        """Any datagram outside udpim: if it is an observe, remember where its token came
        from and return the ``seen`` reply; else None."""
        token = parse_observe_untrusted(data)
        if token is None:
            return None
        self._counts["observes"] += 1
        self._observed.pop(token, None)
        self._observed[token] = (source, now)
        while len(self._observed) > self._max_observed:
            self._observed.popitem(last=False)
        return encode_seen(token, source)

    def request(self, sid: bytes, token: bytes, delay_s: float, now: float) -> bool:
        """Session ``sid`` asks for an echo of ``token`` in ``delay_s``.

        Returns:
            True if scheduled (replacing the session's previous one, if any); False if
            the token was not seen within ``observed_ttl_s`` (nothing happens).
        """
        self._counts["requests"] += 1
        self._prune(now)
        seen = self._observed.get(token)
        if seen is None:
            self._counts["unknown_tokens"] += 1
            return False
        if sid in self._echoes:
            self._counts["replaced"] += 1
        self._sequence += 1
        echo = _Echo(token, seen[0], now + max(0.0, delay_s), self._copies, self._sequence)
        self._echoes[sid] = echo
        self._push(sid, echo)
        return True

    def cancel(self, sid: bytes) -> None:
        """Forget session ``sid``'s scheduled echo (the session closed)."""
        if self._echoes.pop(sid, None) is not None:
            self._counts["cancelled"] += 1

    def get_timer(self) -> float | None:
        """When the next echo is due, or None."""
        heap = self._heap
        while heap:
            due, sequence, sid = heap[0]
            echo = self._echoes.get(sid)
            if echo is not None and echo.sequence == sequence and echo.due == due:
                return due
            heapq.heappop(heap)  # stale: replaced, cancelled or sent
        return None

    def take_due(self, now: float) -> list[tuple[bytes, Address]]:
        """Every echo datagram due by ``now``, with its destination."""
        out: list[tuple[bytes, Address]] = []
        while (due := self.get_timer()) is not None and due <= now:
            _, _, sid = heapq.heappop(self._heap)
            echo = self._echoes[sid]
            out.append((encode_echo(echo.token), echo.address))
            self._counts["echoes_sent"] += 1
            echo.copies_left -= 1
            if echo.copies_left > 0:
                echo.due += self._spacing_s
                self._push(sid, echo)
            else:
                del self._echoes[sid]
        return out

    def statistics(self) -> EchoStatistics:
        """A snapshot of the counters."""
        return EchoStatistics(
            observed_tokens=len(self._observed), scheduled=len(self._echoes), **self._counts
        )

    def _push(self, sid: bytes, echo: _Echo) -> None:
        heapq.heappush(self._heap, (echo.due, echo.sequence, sid))
        if len(self._heap) > 2 * len(self._echoes) + 64:
            self._heap = [
                entry
                for entry in self._heap
                if (e := self._echoes.get(entry[2])) is not None
                and e.sequence == entry[1]
                and e.due == entry[0]
            ]
            heapq.heapify(self._heap)

    def _prune(self, now: float) -> None:
        while self._observed:
            token, (_, seen_at) = next(iter(self._observed.items()))
            if now - seen_at < self._ttl_s:
                return
            del self._observed[token]


# --------------------------------------------------------------------------- service


@final
class EchoService:
    """The hub's one echo task around an ``EchoScheduler`` (see the module rules).

    Args:
        scheduler: the sans-IO schedule.
        send: sends one datagram from the hub's socket (errors are its business).
    """

    def __init__(
        self, scheduler: EchoScheduler, send: Callable[[bytes, Address], Awaitable[None]]
    ) -> None:
        self.scheduler = scheduler
        self._send = send
        self._wake = trio.Event()

    def on_datagram_untrusted(self, data: bytes, source: Address) -> bytes | None:
        """A foreign datagram: the ``seen`` reply if it is an observe."""
        return self.scheduler.on_datagram_untrusted(data, source, trio.current_time())

    def request(self, sid: bytes, token: bytes, delay_s: float) -> None:
        """Schedule session ``sid``'s echo (see ``EchoScheduler.request``)."""
        if self.scheduler.request(sid, token, delay_s, trio.current_time()):
            self._wake.set()
        else:
            log.debug("echo request for an unknown token ignored")

    def cancel(self, sid: bytes) -> None:
        """Session ``sid`` closed."""
        self.scheduler.cancel(sid)

    async def run(self) -> None:
        """Send echoes as they fall due, until cancelled."""
        while True:
            deadline = self.scheduler.get_timer()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            for data, address in self.scheduler.take_due(trio.current_time()):
                await self._send(data, address)
