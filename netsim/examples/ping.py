"""Naive UDP ping: clients send a numbered ping every interval, the server echoes it back.

Nothing is retransmitted, so the report's delivery ratio is the round-trip success rate and its
latency is the round-trip time. The client records ``msg_sent`` (id, size) per ping and
``msg_received`` (id, size, rtt) per first echo; the server records ``echo`` (seq, src) per ping
it answers, so a trace shows the source address the server saw (it changes when a host moves).

The protocol code (`PingServer`, `PingClient`) only uses the socket subset shared by netsim's
virtual socket and trio's real one (``bind``, ``sendto``, ``recvfrom``, ``getsockname``,
``close``), taking a socket factory, so the same code runs on loopback.

Workload keys (all optional): ``server`` (host name, default "server"), ``clients`` (host
names, default every other host), ``port`` (default 7), ``interval`` (default "1s"), ``count``
(pings per client, default: until the scenario ends), ``size`` (bytes, default 64, at least 12),
``linger`` (wait for late echoes after the last ping, default "2s"), ``echo_delay`` (the
server answers this long after a ping, default "0s": models a reply or push that comes later,
e.g. after a NAT mapping went idle).

Wire format: ``b"PING"`` or ``b"PONG"``, then the sequence number (u64, big-endian), padding.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import trio

from netsim.app import MSG_RECEIVED, MSG_SENT, SimContext, Workload
from netsim.examples import Address, DatagramSocket, EventSink, SocketFactory

HEADER = struct.Struct("!4sQ")
MIN_SIZE_BYTES = HEADER.size


def encode_ping(kind: bytes, seq: int, size_bytes: int) -> bytes:
    """A ping (``b"PING"``) or echo (``b"PONG"``) datagram of ``size_bytes`` bytes."""
    return HEADER.pack(kind, seq).ljust(max(size_bytes, MIN_SIZE_BYTES), b"\0")


def decode_ping_untrusted(data: bytes) -> tuple[bytes, int] | None:
    """``(kind, seq)`` of a datagram, or None if it is not a ping or an echo."""
    if len(data) < HEADER.size:
        return None
    kind, seq = HEADER.unpack_from(data)
    return (kind, seq) if kind in (b"PING", b"PONG") else None


class PingServer:
    """Echoes every ping to its sender, after ``echo_delay_s`` (0: at once)."""

    def __init__(
        self,
        socket_factory: SocketFactory,
        bind_address: Address,
        sink: EventSink,
        echo_delay_s: float = 0.0,
    ) -> None:
        self.socket_factory, self.bind_address, self.sink = socket_factory, bind_address, sink
        self.echo_delay_s = echo_delay_s

    async def serve(
        self, *, task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, report the bound address through ``task_status``, echo until cancelled."""
        sock = self.socket_factory()
        try:
            await sock.bind(self.bind_address)
            task_status.started(sock.getsockname())
            async with trio.open_nursery() as nursery:
                while True:
                    data, src = await sock.recvfrom(65536)
                    decoded = decode_ping_untrusted(data)
                    if decoded is None or decoded[0] != b"PING":
                        continue
                    self.sink("echo", seq=decoded[1], src=f"{src[0]}:{src[1]}")
                    if self.echo_delay_s > 0:
                        nursery.start_soon(self._echo_later, sock, b"PONG" + data[4:], src)
                    else:
                        await sock.sendto(b"PONG" + data[4:], src)
        finally:
            sock.close()

    async def _echo_later(self, sock: DatagramSocket, data: bytes, dst: Address) -> None:
        await trio.sleep(self.echo_delay_s)
        await sock.sendto(data, dst)


class PingClient:
    """Sends ``count`` pings (None: forever) every ``interval_s`` and matches the echoes."""

    def __init__(
        self,
        socket_factory: SocketFactory,
        server: Address,
        *,
        name: str,
        interval_s: float,
        count: int | None,
        size_bytes: int,
        linger_s: float,
        sink: EventSink,
    ) -> None:
        self.socket_factory, self.server, self.name = socket_factory, server, name
        self.interval_s, self.count, self.size_bytes = interval_s, count, size_bytes
        self.linger_s, self.sink = linger_s, sink
        self.sent_at: dict[int, float] = {}
        self.answered: set[int] = set()

    async def run(self, start_delay_s: float = 0.0) -> None:
        """Ping, then wait ``linger_s`` for late echoes. Returns when done."""
        await trio.sleep(start_delay_s)
        sock = self.socket_factory()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive, sock)
                seq = 0
                while self.count is None or seq < self.count:
                    self.sent_at[seq] = trio.current_time()
                    self.sink(MSG_SENT, id=f"{self.name}:{seq}", size=self.size_bytes)
                    await sock.sendto(encode_ping(b"PING", seq, self.size_bytes), self.server)
                    seq += 1
                    await trio.sleep(self.interval_s)
                await trio.sleep(max(self.linger_s - self.interval_s, 0.0))
                nursery.cancel_scope.cancel()
        finally:
            sock.close()

    async def _receive(self, sock: DatagramSocket) -> None:
        while True:
            data, _src = await sock.recvfrom(65536)
            decoded = decode_ping_untrusted(data)
            if decoded is None or decoded[0] != b"PONG" or decoded[1] not in self.sent_at:
                continue
            seq = decoded[1]
            if seq in self.answered:
                continue  # a duplicated echo
            self.answered.add(seq)
            rtt_s = trio.current_time() - self.sent_at[seq]
            self.sink(MSG_RECEIVED, id=f"{self.name}:{seq}", size=len(data), rtt=round(rtt_s, 9))


class PingApp:
    """The ping workload as a netsim app (factory: ``netsim.examples.ping:PingApp``)."""

    def __init__(self, workload: Mapping[str, object]) -> None:
        reader = Workload(workload)
        reader.check_keys(
            ["server", "clients", "port", "interval", "count", "size", "linger", "echo_delay"]
        )
        self.server = reader.text("server", "server")
        self.clients = reader.names("clients", []) or None
        self.port = reader.integer("port", 7, minimum=1) or 7
        if self.port > 65535:
            raise reader.fail("port", f"expected 1..65535, got {self.port}")
        self.interval_s = reader.duration_s("interval", "1s")
        self.count = reader.integer("count", None, minimum=1)
        self.size_bytes = reader.size_bytes("size", 64)
        if self.size_bytes < MIN_SIZE_BYTES:
            raise reader.fail("size", f"a ping needs at least {MIN_SIZE_BYTES} bytes")
        self.linger_s = reader.duration_s("linger", "2s")
        self.echo_delay_s = reader.duration_s("echo_delay", "0s", allow_zero=True)

    async def run(self, sim: SimContext) -> None:
        """Serve on the server host; ping from each client; return when every client is done."""
        server = sim.host(self.server)
        clients = self.clients or [name for name in sim.hosts if name != self.server]
        for name in clients:
            sim.host(name)  # validates the name
        async with trio.open_nursery() as nursery:
            echo = PingServer(
                server.socket,
                (server.address, self.port),
                _sink(sim, self.server),
                self.echo_delay_s,
            )
            server_address = await nursery.start(echo.serve)
            async with trio.open_nursery() as client_nursery:
                for name in clients:
                    client = PingClient(
                        sim.host(name).socket,
                        server_address,
                        name=name,
                        interval_s=self.interval_s,
                        count=self.count,
                        size_bytes=self.size_bytes,
                        linger_s=self.linger_s,
                        sink=_sink(sim, name),
                    )
                    start_delay_s = sim.rng("ping", name).uniform(0.0, self.interval_s)
                    client_nursery.start_soon(client.run, start_delay_s)
            nursery.cancel_scope.cancel()


def _sink(sim: SimContext, host: str) -> EventSink:
    def sink(event: str, **fields: object) -> None:
        sim.record(host, event, **fields)

    return sink
