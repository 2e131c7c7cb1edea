"""The workload of the udpim scenario app: who runs a daemon, who sends what, when, and what
else happens to the system (hub crashes, NAT rebinding), read from a scenario's ``[workload]``.

What it owns: `UdpimWorkload` (the validated ``[workload]`` table, with every key's meaning
below) and `plan_messages` (the message schedule, a pure function of the workload and a
seeded generator, so a run is replayable and the schedule testable on its own).

Keys (all optional; durations take units, e.g. ``"90s"``, ``"5min"``):

* ``hub`` ("hub"): the host running the hub; ``port`` (7000): its UDP port.
* ``users`` (every other host): hosts running a daemon; each logs in as the user named like
  its host (so host names must be udpim user names: ``[a-z0-9_.-]{1,32}``).
* ``senders`` (every user not polling) and ``recipients`` (every user).
* ``interval`` ("10min"): mean gap between two messages of one sender: a Poisson process
  (exponential gaps) per sender, each message to one random recipient other than the sender,
  or, with ``fanout = true``, the same message to every recipient (one message id each).
* ``size`` ([20, 400]): message body size in bytes, uniform in [min, max] (or one number).
* ``quiet`` ([]): windows ``[[start, end], ...]`` in which no one sends; at the end of each
  window every sender sends one message at once: pushes after a long idle gap.
* ``settle`` ("5min", at most a quarter of the run): no new messages in the run's last
  ``settle``, so the last ones can arrive.
* ``poll`` ({}): ``{ user = "5min" }``: that user's daemon does not stay connected: every
  interval it starts, connects, drains its mailbox (until ``POLL_QUIET_S`` pass without a
  new message), disconnects and stops; the first poll is at the start. It learns no NAT
  timeout (it keeps no mapping alive). Others keep the long connection.
* ``hub_crash_at`` ([]): times (ascending) at which the hub crashes (all memory lost, files
  kept); ``hub_down`` ("30s"): it restarts that long after each crash (one duration, or a
  list with one per crash).
* ``rebind_every`` (none) and ``rebind_nats`` ([]): every that long, the NATs named there
  move all their live mappings to new ports (a carrier-grade NAT rebinding).
* ``heartbeat`` (none: the daemon learns its NAT's timeout and sets its heartbeat from it,
  starting from the default): a fixed heartbeat interval, with learning off, for every daemon,
  or a table ``{ user = "60s" }`` for some of them.
* ``start_spread`` ("5s"): daemons start at seeded random offsets within this window.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from netsim.app import Workload, WorkloadError
from netsim.units import parse_duration

__all__ = ["POLL_QUIET_S", "PlannedMessage", "UdpimWorkload", "plan_messages"]

POLL_QUIET_S = 3.0
"""A polling daemon disconnects once no new message arrived for this long after its welcome."""
KEYS = (
    "hub",
    "port",
    "users",
    "senders",
    "recipients",
    "interval",
    "fanout",
    "size",
    "quiet",
    "settle",
    "poll",
    "hub_crash_at",
    "hub_down",
    "rebind_every",
    "rebind_nats",
    "heartbeat",
    "start_spread",
)


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One message of the schedule."""

    at_s: float
    id: str
    sender: str
    to: str
    size: int


@dataclass(frozen=True, slots=True)
class UdpimWorkload:
    """The validated ``[workload]`` table (see the module docstring for each key)."""

    hub: str = "hub"
    port: int = 7000
    users: tuple[str, ...] = ()  # empty: every host but the hub
    senders: tuple[str, ...] | None = None
    recipients: tuple[str, ...] | None = None
    interval_s: float = 600.0
    fanout: bool = False
    size_bytes: tuple[int, int] = (20, 400)
    quiet: tuple[tuple[float, float], ...] = ()
    settle_s: float = 300.0
    poll_s: Mapping[str, float] = field(default_factory=dict)
    hub_crash_at: tuple[float, ...] = ()
    hub_down_s: tuple[float, ...] = (30.0,)
    rebind_every_s: float | None = None
    rebind_nats: tuple[str, ...] = ()
    heartbeat_s: Mapping[str, float] = field(default_factory=dict)  # "*": every daemon
    start_spread_s: float = 5.0

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> UdpimWorkload:
        """Read and check a ``[workload]`` table.

        Raises:
            WorkloadError: one line naming the first bad key.
        """
        reader = Workload(data)
        reader.check_keys(KEYS)
        poll = _poll_table(reader)
        workload = cls(
            hub=reader.text("hub", "hub"),
            port=reader.integer("port", 7000, minimum=1) or 7000,
            users=tuple(reader.names("users", [])),
            senders=_optional_names(reader, "senders"),
            recipients=_optional_names(reader, "recipients"),
            interval_s=reader.duration_s("interval", "10min"),
            fanout=_flag(reader, "fanout"),
            size_bytes=_size_range(reader),
            quiet=_windows(reader, "quiet"),
            settle_s=reader.duration_s("settle", "5min", allow_zero=True),
            poll_s=poll,
            hub_crash_at=_durations(reader, "hub_crash_at"),
            hub_down_s=_durations(reader, "hub_down", "30s"),
            rebind_every_s=reader.duration_s("rebind_every", "1s")
            if "rebind_every" in data
            else None,
            rebind_nats=tuple(reader.names("rebind_nats", [])),
            heartbeat_s=_heartbeats(reader),
            start_spread_s=reader.duration_s("start_spread", "5s", allow_zero=True),
        )
        if list(workload.hub_crash_at) != sorted(workload.hub_crash_at):
            raise reader.fail("hub_crash_at", "times must be in ascending order")
        if len(workload.hub_down_s) not in (1, len(workload.hub_crash_at)):
            raise reader.fail("hub_down", "give one duration, or one per hub_crash_at time")
        for sender in workload.senders or ():
            if sender in poll:
                raise reader.fail("senders", f"{sender} polls; only connected users send")
        return workload

    def resolve_users(self, hosts: Sequence[str]) -> tuple[str, ...]:
        """The daemons' users given the scenario's hosts (checks every name).

        Raises:
            WorkloadError: a named user is not a host, or the hub is among the users.
        """
        if self.hub not in hosts:
            raise WorkloadError(f"workload.hub: no host named {self.hub!r}")
        users = self.users or tuple(host for host in hosts if host != self.hub)
        for name in users:
            if name not in hosts or name == self.hub:
                raise WorkloadError(f"workload.users: {name!r} is not a host other than the hub")
        for key, names in (
            ("senders", self.senders or ()),
            ("recipients", self.recipients or ()),
            ("poll", tuple(self.poll_s)),
            ("heartbeat", tuple(name for name in self.heartbeat_s if name != "*")),
        ):
            for name in names:
                if name not in users:
                    raise WorkloadError(f"workload.{key}: {name!r} is not one of the users")
        return users

    def heartbeat_for(self, user: str) -> float | None:
        """The fixed heartbeat interval of ``user``'s daemon (None: the daemon's default)."""
        return self.heartbeat_s.get(user, self.heartbeat_s.get("*"))

    def hub_down_for(self, crash: int) -> float:
        """How long the hub stays down after its crash number ``crash`` (from 0)."""
        return self.hub_down_s[crash if len(self.hub_down_s) > 1 else 0]

    def settle_for(self, duration_s: float) -> float:
        """``settle``, at most a quarter of the run."""
        return min(self.settle_s, duration_s / 4)


def plan_messages(
    workload: UdpimWorkload,
    users: Sequence[str],
    rng_for: Mapping[str, random.Random],
    *,
    start_s: float,
    stop_s: float,
) -> list[PlannedMessage]:
    """Every message of the run, in time order (ties: sender order, then recipient order).

    Args:
        workload: the workload.
        users: the daemons' users (`UdpimWorkload.resolve_users`).
        rng_for: a seeded generator per sender.
        start_s: when the first gap starts (all daemons logged in once).
        stop_s: no message at or after this time.
    """
    senders = workload.senders or tuple(u for u in users if u not in workload.poll_s)
    recipients = workload.recipients or tuple(users)
    planned: list[PlannedMessage] = []
    for sender in senders:
        rng, others = rng_for[sender], [r for r in recipients if r != sender]
        if not others:
            continue
        times = _arrivals(rng, workload, start_s, stop_s)
        for number, at_s in enumerate(times):
            targets = others if workload.fanout else [rng.choice(others)]
            for to in targets:
                size = rng.randint(*workload.size_bytes)
                message_id = f"{sender}:{number}" + (f">{to}" if workload.fanout else "")
                planned.append(PlannedMessage(at_s, message_id, sender, to, size))
    order = {name: index for index, name in enumerate(senders)}
    planned.sort(key=lambda m: (m.at_s, order[m.sender]))
    return planned


def _arrivals(
    rng: random.Random, workload: UdpimWorkload, start_s: float, stop_s: float
) -> list[float]:
    """A Poisson process without the quiet windows, plus one arrival at each window's end."""
    times, t = [], start_s
    while True:
        t += rng.expovariate(1 / workload.interval_s)
        if t >= stop_s:
            break
        if not any(begin <= t < end for begin, end in workload.quiet):
            times.append(t)
    times += [end for _, end in workload.quiet if start_s <= end < stop_s]
    return sorted(times)


def _flag(reader: Workload, key: str) -> bool:
    value = reader.data.get(key, False)
    if not isinstance(value, bool):
        raise reader.fail(key, f"expected true or false, got {value!r}")
    return value


def _optional_names(reader: Workload, key: str) -> tuple[str, ...] | None:
    return tuple(reader.names(key, [])) if key in reader.data else None


def _duration(reader: Workload, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise reader.fail(key, f'expected a duration such as "5min", got {value!r}')
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise reader.fail(key, str(exc)) from None
    if seconds < 0:
        raise reader.fail(key, "must be 0s or more")
    return seconds


def _durations(reader: Workload, key: str, default: str | None = None) -> tuple[float, ...]:
    value = reader.data.get(key, [] if default is None else default)
    items = value if isinstance(value, list) else [value]
    return tuple(_duration(reader, key, item) for item in items)


def _windows(reader: Workload, key: str) -> tuple[tuple[float, float], ...]:
    value = reader.data.get(key, [])
    if not isinstance(value, list):
        raise reader.fail(key, f'expected [["start", "end"], ...], got {value!r}')
    windows = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise reader.fail(key, f'expected ["start", "end"], got {item!r}')
        start, end = _duration(reader, key, item[0]), _duration(reader, key, item[1])
        if end <= start:
            raise reader.fail(key, f"window {item!r} ends before it starts")
        windows.append((start, end))
    return tuple(sorted(windows))


def _size_range(reader: Workload) -> tuple[int, int]:
    value = reader.data.get("size", [20, 400])
    items = value if isinstance(value, list) else [value, value]
    sizes = [item for item in items if isinstance(item, int) and not isinstance(item, bool)]
    if len(items) != 2 or len(sizes) != 2 or not all(1 <= size <= 60_000 for size in sizes):
        raise reader.fail("size", f"expected bytes or [min, max] in 1..60000, got {value!r}")
    low, high = sizes
    if high < low:
        raise reader.fail("size", f"[min, max] with max < min: {value!r}")
    return low, high


def _poll_table(reader: Workload) -> dict[str, float]:
    return _per_user(reader, "poll", reader.data.get("poll", {}))


def _heartbeats(reader: Workload) -> dict[str, float]:
    value = reader.data.get("heartbeat", {})
    if isinstance(value, Mapping):
        return _per_user(reader, "heartbeat", value)
    return _per_user(reader, "heartbeat", {"*": value})


def _per_user(reader: Workload, key: str, value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise reader.fail(key, f'expected a table {{ user = "5min" }}, got {value!r}')
    table = {}
    for user, interval in value.items():
        name = key if user == "*" else f"{key}.{user}"
        seconds = _duration(reader, name, interval)
        if seconds <= 0:
            raise reader.fail(name, "must be more than 0s")
        table[str(user)] = seconds
    return table
