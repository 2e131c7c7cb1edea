"""The README's main job, for now: udpim sessions relaying chat through a hub over a bad network.

What runs: a *toy relay hub* and two users, alice and bob, each behind a NAT on an impaired
link, all inside a netsim virtual network under virtual time. Every participant is a real
udpim ``Endpoint`` driven by the real Trio driver (``udpim.net.udp``), so the handshake,
encryption, acknowledgements, retransmission, congestion control and heartbeats are the
real thing. What is *not* here yet is the IM system of issue 4 (accounts, durable store,
receipts, peer daemons, the CLI): the hub below is a dozen lines that forward messages by
name, kept only until ``udpim demo`` replaces this script.

This module is also a netsim app (``tools.demo:RelayDemo``), so the same run can be
recorded, replayed and plotted with the ``netsim`` command:

    netsim run tools/demo_scenario.toml --app tools.demo:RelayDemo --record demo.trace.gz

Usage: python -m tools.demo [--seed N] [--messages N] [--quiet] [--record TRACE] [--plot PNG]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

import trio

from netsim.app import SimContext, Workload
from netsim.report import render_text, summarize
from netsim.runner import run_scenario
from netsim.scenario import load_scenario
from udpim.core.config import EndpointConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import Event, MessageDelivered, MessageReceived, SessionEstablished
from udpim.core.session import Session
from udpim.net.udp import EndpointDriver

SCENARIO = Path(__file__).with_name("demo_scenario.toml")
HUB_PORT = 7000
EPOCH_NS = 1_800_000_000 * 10**9  # virtual wall clock for handshake timestamps


class RelayDemo:
    """A netsim app: a relay hub plus users chatting through it (see the module docstring)."""

    def __init__(self, workload: Mapping[str, object]) -> None:
        reader = Workload(workload)
        reader.check_keys(["hub", "users", "messages", "interval", "verbose"])
        self.hub_name = reader.text("hub", "hub")
        self.users = reader.names("users", ["alice", "bob"])
        self.messages = reader.integer("messages", 20, minimum=1) or 20
        self.interval_s = reader.duration_s("interval", "500ms")
        self.verbose = bool(workload.get("verbose", True))
        self.received: dict[str, int] = {}

    async def run(self, sim: SimContext) -> None:
        hub_host = sim.host(self.hub_name)
        hub_key = StaticKey.generate(sim.rng("key", self.hub_name).randbytes)
        hub_sock = hub_host.socket()
        await hub_sock.bind((hub_host.address, HUB_PORT))
        names: dict[bytes, str] = {}  # session cid -> user name
        sessions: dict[str, Session] = {}
        waiting: dict[str, list[bytes]] = {}  # messages for users not connected yet

        def on_hub_event(session: Session, event: Event) -> None:
            if not isinstance(event, MessageReceived):
                return
            if event.payload.startswith(b"hello "):
                name = event.payload[6:].decode()
                names[session.local_cid] = name
                sessions[name] = session
                for held in waiting.pop(name, []):
                    hub.send_message(session, held)
                return
            target, _, rest = event.payload.partition(b"\n")
            relayed = names.get(session.local_cid, "?").encode() + b"\n" + rest
            destination = sessions.get(target.decode())
            if destination is None:
                waiting.setdefault(target.decode(), []).append(relayed)
            else:
                hub.send_message(destination, relayed)

        hub = EndpointDriver(
            Endpoint(EndpointConfig(), hub_key, sim.rng("core", self.hub_name).randbytes),
            hub_sock,
            on_hub_event,
            wall_clock_ns=lambda: EPOCH_NS + round(trio.current_time() * 1e9),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.serve)
            async with trio.open_nursery() as users:
                for index, name in enumerate(self.users):
                    peer = self.users[(index + 1) % len(self.users)]
                    users.start_soon(self._user, sim, name, peer, hub_key.public, hub_host.address)
            nursery.cancel_scope.cancel()

    async def _user(
        self, sim: SimContext, name: str, peer: str, hub_public: bytes, hub_ip: str
    ) -> None:
        sock = sim.host(name).socket()
        await sock.bind(("0.0.0.0", 0))
        all_in, all_out = trio.Event(), trio.Event()
        self.received[name] = 0
        delivered = 0

        def on_event(session: Session, event: Event) -> None:
            nonlocal delivered
            if isinstance(event, MessageDelivered):
                delivered += 1  # the hub's session acknowledged it (hello included)
                if delivered == self.messages + 1:
                    all_out.set()
            if isinstance(event, SessionEstablished) and self.verbose:
                print(f"  t={sim.now():7.3f}s  {name}: session to the hub established")
            if isinstance(event, MessageReceived):
                sender, _, rest = event.payload.partition(b"\n")
                message_id, _, text = rest.partition(b"\n")
                sim.record(name, "msg_received", id=message_id.decode(), size=len(text))
                self.received[name] += 1
                if self.verbose:
                    print(f"  t={sim.now():7.3f}s  {name} <- {sender.decode()}: {text.decode()}")
                if self.received[name] == self.messages:
                    all_in.set()

        driver = EndpointDriver(
            Endpoint(
                EndpointConfig(),
                StaticKey.generate(sim.rng("key", name).randbytes),
                sim.rng("core", name).randbytes,
            ),
            sock,
            on_event,
            wall_clock_ns=lambda: EPOCH_NS + round(trio.current_time() * 1e9),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.serve)
            session = driver.connect(hub_public, (hub_ip, HUB_PORT))
            driver.send_message(session, b"hello " + name.encode())
            for number in range(1, self.messages + 1):
                await trio.sleep(self.interval_s)
                message_id = f"{name}:{number}"
                text = f"message {number} from {name}"
                sim.record(name, "msg_sent", id=message_id, size=len(text))
                driver.send_message(session, f"{peer}\n{message_id}\n{text}".encode())
            await all_in.wait()
            await all_out.wait()
            stats = session.statistics()
            sim.record(
                name,
                "session_stats",
                packets_sent=stats.packets_sent,
                packets_lost=stats.packets_lost,
                frames_retransmitted=stats.frames_retransmitted,
                srtt_ms=round(stats.smoothed_rtt_s * 1000, 1),
            )
            if self.verbose:
                print(
                    f"  t={sim.now():7.3f}s  {name}: all {self.messages} messages in and out; "
                    f"{stats.packets_sent} packets sent, {stats.packets_lost} declared lost, "
                    f"{stats.frames_retransmitted} frames retransmitted, "
                    f"smoothed RTT {stats.smoothed_rtt_s * 1000:.1f} ms"
                )
            await driver.aclose()
            nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    """Run the demo scenario and print what happened, then the netsim report."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seed", type=int, default=None, help="override the scenario seed")
    parser.add_argument("--record", metavar="TRACE", help="write the netsim trace there")
    parser.add_argument("--plot", metavar="PNG", help="draw time-sequence and latency plots")
    args = parser.parse_args(argv)
    scenario = load_scenario(str(SCENARIO))
    print(f"udpim demo: {scenario.description}")
    print("(udpim core sessions + toy relay hub on a netsim virtual network, virtual time)\n")
    result = run_scenario(scenario, "tools.demo:RelayDemo", seed=args.seed, record_path=args.record)
    summary = summarize(result.events())
    print()
    print(render_text(summary))
    print(f"trace hash {result.trace_hash}")
    if args.plot:
        from netsim.plot import plot_trace

        plot_trace(result.events(), args.plot, title="udpim demo")
        print(f"plots written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
