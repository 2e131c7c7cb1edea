"""The udpim scenario app: a real hub and real user daemons inside netsim, with a workload.

``netsim run scenarios/home-wifi.toml`` (the scenario's ``app = "tools.udpim_app:UdpimApp"``)
runs the services of ``udpim.net`` (``serve_hub``, ``serve_peer``: sessions, encryption,
retransmission, heartbeats, reconnection, durable stores) on netsim's virtual sockets, under
virtual time, on the hosts the scenario declares, and drives them with the workload of
``tools.udpim_workload`` (who sends what and when, polling users, hub crashes, NAT rebinding).

App events it records (``netsim report`` understands the first four; docs/SCENARIOS.md):

* ``msg_sent`` (``id``, ``size``, ``to``) on the sender when it hands a message to its daemon;
  ``msg_received`` (``id``, ``size``, ``sender``) on the recipient when its daemon stores it
  (``MessageArrived``): latency is the time between, through the hub and any outage.
* ``retransmit`` (``count``) per daemon at the end: frames its sessions retransmitted.
* ``status`` per daemon at the end (one second before the scenario's duration): sessions
  (welcomes), session figures summed over every session (packets sent/lost, retransmitted
  frames, probes, heartbeats, path migrations), the heartbeat interval in force and, when
  the daemon's status reports them, its learned NAT timeout and learning phase; polls for a
  polling daemon. The hub's ``status`` counts its crashes.
* ``probe_socket`` (``port``) whenever a learning daemon starts: its NAT-timeout probe socket,
  whose mapping is meant to expire (the report keeps it out of reachability gaps).
* ``ready`` (hub) once every daemon was welcomed once (messages start then: a recipient needs
  an account); ``welcomed`` per daemon login; ``hub_crash``/``hub_restart``;
  ``send_failed``/``daemon_error`` when something the workload needs is not there.

Session figures come from each daemon's status, sampled every ``SAMPLE_EVERY_S`` and at the
end of every poll; a session that ends between two samples loses its last seconds of counts.

Determinism: virtual wall clock, service rngs from ``sim.rng``, inline sqlite stores in a
fresh temporary directory (its path never reaches the trace), Trio's scheduling pinned by
netsim. So ``netsim replay`` reproduces the trace hash.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import trio

from netsim.app import MSG_RECEIVED, MSG_SENT, RETRANSMIT, STATUS, SimContext, WorkloadError
from tools.simworld import DaemonNode, SimWorld, wait_until
from tools.udpim_workload import POLL_QUIET_S, PlannedMessage, UdpimWorkload, plan_messages
from udpim.core.config import SessionConfig
from udpim.core.errors import UdpimError
from udpim.im.events import Event, MessageArrived, Welcomed

__all__ = ["FINAL_MARGIN_S", "SAMPLE_EVERY_S", "SessionTally", "UdpimApp", "keepalive_fields"]

SAMPLE_EVERY_S = 30.0
"""How often a connected daemon's session figures are sampled."""
FINAL_MARGIN_S = 1.0
"""The final ``status`` events are recorded this long before the scenario's end."""
READY_TIMEOUT_S = 600.0
"""Messages start after every daemon logged in once, or after this long regardless."""
POLL_TIMEOUT_S = 60.0
"""A poll that is not welcomed within this long gives up until the next one."""
DRAIN_LIMIT_S = 120.0
"""The longest a poll stays connected."""
TALLIED = (
    "packets_sent",
    "packets_lost",
    "frames_retransmitted",
    "probes_sent",
    "heartbeats_sent",
    "path_migrations",
)
LEARNED_KEYS = ("learned_nat_timeout_s", "learned_timeout_s")
EXTRA_KEEPALIVE_KEYS = ("tests_run", "path_changes")


class SessionTally:
    """Session figures summed over a daemon's sessions, from status samples."""

    def __init__(self) -> None:
        self._closed: Counter[str] = Counter()
        self._current: dict[str, int] = {}
        self._marker: object = None

    def observe(self, session: object, marker: object) -> None:
        """A sample of ``status()["session"]``; a new ``marker`` (the welcome count) or
        fewer packets sent than the last sample starts a new session."""
        if not isinstance(session, Mapping):
            return
        values = {key: _int(session.get(key)) for key in TALLIED}
        if self._current and (
            marker != self._marker or values["packets_sent"] < self._current["packets_sent"]
        ):
            self.end_session()
        self._current, self._marker = values, marker

    def end_session(self) -> None:
        """The current session is over (counted, not sampled again)."""
        self._closed.update(self._current)
        self._current = {}

    def totals(self) -> dict[str, int]:
        """Every tallied figure summed over all sessions."""
        return {key: self._closed[key] + self._current.get(key, 0) for key in TALLIED}


def keepalive_fields(status: Mapping[str, object]) -> dict[str, object]:
    """The heartbeat interval in force, and the learned NAT timeout and learning phase when
    the daemon's status reports them (the section holding a learned timeout wins)."""
    section = _section_with(status, LEARNED_KEYS)
    if section is not None:
        learned = next(section[key] for key in LEARNED_KEYS if key in section)
        fields = {
            "heartbeat_interval_s": section.get("heartbeat_interval_s"),
            "learned_nat_timeout_s": learned,
            "keepalive_phase": section.get("phase"),
        }
        fields |= {key: section[key] for key in EXTRA_KEEPALIVE_KEYS if key in section}
        return fields
    session = status.get("session")
    if isinstance(session, Mapping) and "heartbeat_interval_s" in session:
        return {"heartbeat_interval_s": session["heartbeat_interval_s"]}
    return {}


class UdpimApp:
    """The netsim app (factory: ``tools.udpim_app:UdpimApp``); see the module docstring."""

    def __init__(self, workload: Mapping[str, object]) -> None:
        self.workload = UdpimWorkload.parse(workload)

    async def run(self, sim: SimContext) -> None:
        """Run hub, daemons and workload until the scenario ends."""
        users = self.workload.resolve_users(list(sim.hosts))
        for name in self.workload.rebind_nats:
            try:
                sim.network.nat(name)
            except KeyError:
                raise WorkloadError(f"workload.rebind_nats: no NAT named {name!r}") from None
        with tempfile.TemporaryDirectory(prefix="udpim-scenario-") as tmp:
            async with trio.open_nursery() as nursery:
                world = SimWorld(sim.network, nursery, Path(tmp), sim.rng)
                await _Run(sim, world, self.workload, users).main()


class _Run:
    """One run of the app: the tasks and what they tally."""

    def __init__(
        self, sim: SimContext, world: SimWorld, workload: UdpimWorkload, users: tuple[str, ...]
    ) -> None:
        self.sim, self.world, self.workload, self.users = sim, world, workload, users
        self.nodes: dict[str, DaemonNode] = {}
        self.tallies = {user: SessionTally() for user in users}
        self.welcomes: Counter[str] = Counter()
        self.polls: Counter[str] = Counter()
        self.crashes = 0

    async def main(self) -> None:
        w = self.workload
        await self.world.start_hub(w.hub, w.port)
        for user in self.users:
            heartbeat_s = w.heartbeat_for(user)
            session = SessionConfig()
            if heartbeat_s is not None:
                session = SessionConfig(heartbeat_interval_s=heartbeat_s)
            learn = heartbeat_s is None and user not in w.poll_s  # a poller keeps no mapping
            node = self.world.add_daemon(user, user, session=session, learn_keepalive=learn)
            node.on_event = partial(self._on_event, user)
            self.nodes[user] = node
        async with trio.open_nursery() as nursery:
            for user in self.users:
                nursery.start_soon(self._daemon_life, user)
            ready = await wait_until(
                lambda: all(self.welcomes[user] for user in self.users),
                timeout_s=READY_TIMEOUT_S,
                poll_s=0.5,
            )
            self.sim.record(w.hub, "ready", all_welcomed=ready)
            start_s = self.sim.now()
            stop_s = self.sim.duration_s - w.settle_for(self.sim.duration_s)
            rngs = {user: self.sim.rng("messages", user) for user in self.users}
            plan = plan_messages(w, self.users, rngs, start_s=start_s, stop_s=stop_s)
            nursery.start_soon(self._send_all, plan)
            nursery.start_soon(self._crash_hub)
            if w.rebind_every_s is not None and w.rebind_nats:
                nursery.start_soon(self._rebind, w.rebind_every_s)
            await trio.sleep_until(self.sim.duration_s - FINAL_MARGIN_S)
            await self._final_status()

    # ------------------------------------------------------------------ daemons

    def _on_event(self, user: str, event: Event) -> None:
        if isinstance(event, MessageArrived):
            message_id = event.body.partition("|")[0]
            size = len(event.body.encode())
            self.sim.record(user, MSG_RECEIVED, id=message_id, size=size, sender=event.sender)
        elif isinstance(event, Welcomed):
            self.welcomes[user] += 1
            self.sim.record(user, "welcomed", count=self.welcomes[user])

    async def _daemon_life(self, user: str) -> None:
        rng = self.sim.rng("start", user)
        await trio.sleep(rng.uniform(0.0, self.workload.start_spread_s))
        if user in self.workload.poll_s:
            await self._poll_forever(user, self.workload.poll_s[user])
            return
        node = self.nodes[user]
        await self._start(user)
        while node.running:
            await self._sample(user)
            await trio.sleep(SAMPLE_EVERY_S)
        self.sim.record(user, "daemon_error", error=str(node.error))

    async def _start(self, user: str) -> None:
        """Start ``user``'s daemon; declare its probe socket (meant to lose its mapping)."""
        node = self.nodes[user]
        await self.world.start_daemon(node)
        if node.probe is not None:
            self.sim.record(user, "probe_socket", port=node.probe.getsockname()[1])

    async def _sample(self, user: str) -> dict[str, object] | None:
        node = self.nodes[user]
        if not node.running:
            return None
        try:
            status = await node.handle.status()
        except UdpimError:
            return None
        self.tallies[user].observe(status.get("session"), self.welcomes[user])
        return status

    async def _poll_forever(self, user: str, interval_s: float) -> None:
        node = self.nodes[user]
        next_s = self.sim.now()
        while True:
            await trio.sleep_until(next_s)
            self.polls[user] += 1
            await self._start(user)
            if await wait_until(node.welcomed_this_run, timeout_s=POLL_TIMEOUT_S, poll_s=0.25):
                await self._drain(node)
            await self._sample(user)
            self.tallies[user].end_session()
            await self.world.stop(node)
            next_s = max(next_s + interval_s, self.sim.now())

    @staticmethod
    async def _drain(node: DaemonNode) -> None:
        """Stay until ``POLL_QUIET_S`` passed without a new message (at most a limit)."""
        welcomed_at = trio.current_time()

        def quiet() -> bool:
            last = max([welcomed_at, *node.arrived_this_run()])
            return trio.current_time() - last >= POLL_QUIET_S

        await wait_until(quiet, timeout_s=DRAIN_LIMIT_S, poll_s=0.5)

    # ------------------------------------------------------------------ workload

    async def _send_all(self, plan: list[PlannedMessage]) -> None:
        for message in plan:
            await trio.sleep_until(message.at_s)
            node = self.nodes[message.sender]
            self.sim.record(
                message.sender, MSG_SENT, id=message.id, size=message.size, to=message.to
            )
            body = f"{message.id}|".ljust(message.size, ".")
            try:
                if not node.running:
                    raise UdpimError(f"{message.sender}'s daemon is not running")
                await node.handle.send(message.to, body)
            except UdpimError as exc:
                self.sim.record(message.sender, "send_failed", id=message.id, error=str(exc))

    async def _crash_hub(self) -> None:
        hub = self.world.hub
        assert hub is not None
        for crash, at_s in enumerate(self.workload.hub_crash_at):
            if at_s >= self.sim.duration_s:
                return
            await trio.sleep_until(at_s)
            await self.world.crash(hub)
            self.crashes += 1
            self.sim.record(self.workload.hub, "hub_crash")
            await trio.sleep(self.workload.hub_down_for(crash))
            await self.world.restart(hub)
            self.sim.record(self.workload.hub, "hub_restart")

    async def _rebind(self, every_s: float) -> None:
        while True:
            await trio.sleep(every_s)
            for name in self.workload.rebind_nats:
                self.sim.network.rebind_nat(name)

    async def _final_status(self) -> None:
        for user in self.users:
            status = await self._sample(user) or {}
            totals = self.tallies[user].totals()
            fields: dict[str, object] = {"sessions": self.welcomes[user]}
            if user in self.workload.poll_s:
                fields["polls"] = self.polls[user]
                fields["poll_interval_s"] = self.workload.poll_s[user]
            fields |= {key: totals[key] for key in TALLIED}
            fields |= keepalive_fields(status)
            self.sim.record(user, RETRANSMIT, count=totals["frames_retransmitted"])
            self.sim.record(user, STATUS, **fields)
        hub = self.world.hub
        self.sim.record(self.workload.hub, STATUS, crashes=self.crashes)
        if hub is not None and hub.error is not None:
            self.sim.record(self.workload.hub, "hub_error", error=str(hub.error))


def _section_with(tree: Mapping[str, object], keys: tuple[str, ...]) -> Mapping[str, object] | None:
    """The first mapping (depth first, in order) in ``tree`` holding one of ``keys``."""
    if any(key in tree for key in keys):
        return tree
    for value in tree.values():
        if isinstance(value, Mapping):
            found = _section_with(value, keys)
            if found is not None:
                return found
    return None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
