"""A toy stop-and-wait reliable sender: one message in flight, resent until acknowledged.

The sender sends message ``seq`` and waits up to ``timeout`` for ``ACK seq``; on timeout it
records ``retransmit`` and sends again, without limit, so every message is delivered as long as
the scenario lasts (delivery ratio 100 %). The receiver acknowledges every copy (an ack can be
lost too) and records ``msg_received`` only for the first, so duplicates are never delivered.
Events: ``msg_sent`` (id, size) once per message, ``retransmit`` (id) per resend,
``msg_received`` (id, size) per delivered message; ids are the sequence numbers.

The protocol code (`StopWaitSender`, `StopWaitReceiver`) takes a socket factory and uses only
the shared socket subset, so it runs on netsim's virtual sockets and on trio's real ones.

Workload keys (all optional): ``sender`` (host, default "sender"), ``receiver`` (host, default
"receiver"), ``port`` (default 9000), ``count`` (messages, default 100), ``size`` (payload bytes,
default 200), ``timeout`` (retransmission timeout, default "250ms"), ``gap`` (pause after each
acknowledged message, default "0s").

Wire format: ``b"D"`` + sequence (u32, big-endian) + payload; ``b"A"`` + sequence.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import trio

from netsim.app import MSG_RECEIVED, MSG_SENT, RETRANSMIT, SimContext, Workload
from netsim.examples import Address, DatagramSocket, EventSink, SocketFactory

HEADER = struct.Struct("!cI")


def decode_untrusted(data: bytes) -> tuple[bytes, int] | None:
    """``(kind, seq)`` of a data (``b"D"``) or ack (``b"A"``) datagram, None if neither."""
    if len(data) < HEADER.size:
        return None
    kind, seq = HEADER.unpack_from(data)
    return (kind, seq) if kind in (b"D", b"A") else None


class StopWaitReceiver:
    """Acknowledges every data datagram; delivers each sequence number once."""

    def __init__(self, socket_factory: SocketFactory, bind_address: Address, sink: EventSink):
        self.socket_factory, self.bind_address, self.sink = socket_factory, bind_address, sink
        self.delivered: set[int] = set()

    async def serve(
        self, *, task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, report the bound address through ``task_status``, receive until cancelled."""
        sock = self.socket_factory()
        try:
            await sock.bind(self.bind_address)
            task_status.started(sock.getsockname())
            while True:
                data, src = await sock.recvfrom(65536)
                decoded = decode_untrusted(data)
                if decoded is None or decoded[0] != b"D":
                    continue
                seq = decoded[1]
                await sock.sendto(HEADER.pack(b"A", seq), src)
                if seq not in self.delivered:
                    self.delivered.add(seq)
                    self.sink(MSG_RECEIVED, id=seq, size=len(data) - HEADER.size)
        finally:
            sock.close()


class StopWaitSender:
    """Sends ``count`` messages one at a time, each resent every ``timeout_s`` until acked."""

    def __init__(
        self,
        socket_factory: SocketFactory,
        receiver: Address,
        *,
        count: int,
        size_bytes: int,
        timeout_s: float,
        gap_s: float,
        sink: EventSink,
    ) -> None:
        self.socket_factory, self.receiver, self.count = socket_factory, receiver, count
        self.size_bytes, self.timeout_s, self.gap_s, self.sink = size_bytes, timeout_s, gap_s, sink
        self.retransmissions = 0

    async def run(self) -> None:
        """Send every message; returns once the last one is acknowledged."""
        sock = self.socket_factory()
        try:
            for seq in range(self.count):
                data = HEADER.pack(b"D", seq) + bytes(self.size_bytes)
                self.sink(MSG_SENT, id=seq, size=self.size_bytes)
                await sock.sendto(data, self.receiver)
                while not await self._wait_for_ack(sock, seq):
                    self.retransmissions += 1
                    self.sink(RETRANSMIT, id=seq)
                    await sock.sendto(data, self.receiver)
                await trio.sleep(self.gap_s)
        finally:
            sock.close()

    async def _wait_for_ack(self, sock: DatagramSocket, seq: int) -> bool:
        """True when ``ACK seq`` arrives within the timeout (stale acks are skipped)."""
        with trio.move_on_after(self.timeout_s):
            while True:
                data, _src = await sock.recvfrom(65536)
                if decode_untrusted(data) == (b"A", seq):
                    return True
        return False


class StopWaitApp:
    """The stop-and-wait workload as a netsim app (``netsim.examples.stopwait:StopWaitApp``)."""

    def __init__(self, workload: Mapping[str, object]) -> None:
        reader = Workload(workload)
        reader.check_keys(["sender", "receiver", "port", "count", "size", "timeout", "gap"])
        self.sender = reader.text("sender", "sender")
        self.receiver = reader.text("receiver", "receiver")
        self.port = reader.integer("port", 9000, minimum=1) or 9000
        if self.port > 65535:
            raise reader.fail("port", f"expected 1..65535, got {self.port}")
        self.count = reader.integer("count", 100, minimum=1) or 100
        self.size_bytes = reader.size_bytes("size", 200)
        self.timeout_s = reader.duration_s("timeout", "250ms")
        self.gap_s = reader.duration_s("gap", "0s", allow_zero=True)

    async def run(self, sim: SimContext) -> None:
        """Receive on the receiver host, send from the sender host; return when all are acked."""
        receiver_host, sender_host = sim.host(self.receiver), sim.host(self.sender)

        def sink_for(host: str) -> EventSink:
            def sink(event: str, **fields: object) -> None:
                sim.record(host, event, **fields)

            return sink

        async with trio.open_nursery() as nursery:
            receiver = StopWaitReceiver(
                receiver_host.socket, (receiver_host.address, self.port), sink_for(self.receiver)
            )
            address = await nursery.start(receiver.serve)
            sender = StopWaitSender(
                sender_host.socket,
                address,
                count=self.count,
                size_bytes=self.size_bytes,
                timeout_s=self.timeout_s,
                gap_s=self.gap_s,
                sink=sink_for(self.sender),
            )
            await sender.run()
            nursery.cancel_scope.cancel()
