"""What ``udpim demo`` prints: one line per thing that happened, then the figures.

What it owns: the demo's text and JSON output. Text goes to stdout as it happens, each line
stamped with the seconds since the demo started; with ``--json`` the same events are JSON
objects, one per line (``{"event": "arrived", "t": 1.234, ...}``), ending with one
``{"event": "summary", ...}`` object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, final

from udpim.cli_options import print_json

if TYPE_CHECKING:
    from udpim.cli_demo import DemoResult
    from udpim.cli_demo_proxy import LinkProfile, LossyProxy

__all__ = ["DemoReporter", "print_summary"]


@final
class DemoReporter:
    """Prints the demo's events as text lines or JSON lines."""

    def __init__(self, *, json_output: bool) -> None:
        self.json = json_output
        self._start = 0.0

    def start(self, now: float) -> None:
        """Times printed from now on count from ``now`` (``trio.current_time()``)."""
        self._start = now

    def elapsed_s(self, now: float) -> float:
        """Seconds since ``start``."""
        return now - self._start

    def _line(self, now: float | None, event: str, text: str, /, **facts: object) -> None:
        if self.json:
            stamp = {} if now is None else {"t": round(self.elapsed_s(now), 3)}
            print_json({"event": event, **stamp, **facts})
        elif now is None:
            print(f"  {text}", flush=True)
        else:
            print(f"  {self.elapsed_s(now):6.3f}s  {text}", flush=True)

    def header(self, messages: int, loss_percent: float, seed: int) -> None:
        """What the demo is about to do."""
        if self.json:
            print_json(
                {"event": "demo", "messages": messages, "loss_percent": loss_percent, "seed": seed}
            )
            return
        print(
            "udpim demo: a hub and two daemons, alice and bob, on loopback. Each daemon reaches\n"
            f"the hub through its own netsim proxy that drops {loss_percent:g}% of the datagrams "
            "and delays\nthe rest 20 +- 5 ms, in each direction "
            f"(seed {seed}). Each user sends {messages} messages.\n",
            flush=True,
        )

    def hub(self, address: str, public_key: str) -> None:
        """The hub is listening."""
        self._line(
            None,
            "hub",
            f"hub    listening on {address}, key {public_key}",
            address=address,
            public_key=public_key,
        )

    def link(self, user: str, address: str, profile: LinkProfile) -> None:
        """A proxy runs for ``user``."""
        self._line(
            None,
            "link",
            f"link   {user:<5} -> netsim proxy {address} -> hub",
            user=user,
            proxy=address,
            loss_percent=profile.loss_percent,
            delay_ms=profile.delay_ms,
            jitter_ms=profile.jitter_ms,
        )

    def daemon(self, user: str, device: str, via: str) -> None:
        """``user``'s daemon runs (its state is loaded; it dials the hub)."""
        self._line(
            None,
            "daemon",
            f"daemon {user:<5} device {device}, dialling the hub via {via}",
            user=user,
            device=device,
        )
        if not self.json and user == "bob":
            print(flush=True)

    def welcomed(self, now: float, user: str) -> None:
        """``user`` logged in to the hub."""
        self._user_line(now, "welcomed", user, "logged in to the hub")

    def arrived(self, now: float, user: str, sender: str, text: str, latency_ms: int) -> None:
        """A message reached ``user``'s disk."""
        line = f"<- {sender:<5} {text!r}  ({latency_ms} ms after it was sent)"
        self._user_line(now, "arrived", user, line, sender=sender, text=text, latency_ms=latency_ms)

    def receipt(self, now: float, user: str, to: str, message_id: str, number: str) -> None:
        """A delivery receipt for ``user``'s message ``number`` ("n/N") came back."""
        line = f"receipt: {to} has message {number} (id {message_id})"
        self._user_line(now, "receipt", user, line, to=to, id=message_id)

    def rejected(self, now: float, user: str, to: str, number: str, reason: str) -> None:
        """The hub refused ``user``'s message ``number`` (it will never be delivered)."""
        line = f"message {number} to {to} rejected by the hub: {reason or 'unknown user'}"
        self._user_line(now, "rejected", user, line, to=to, reason=reason)

    def _user_line(self, now: float, event: str, user: str, text: str, /, **facts: object) -> None:
        """A line about ``user``: the name in a column of its own, and a ``user`` fact."""
        self._line(now, event, f"{user:<5} {text}", user=user, **facts)


def print_summary(
    report: DemoReporter, messages: int, result: DemoResult, problems: list[str]
) -> None:
    """The figures: deliveries, latency, each session's network figures, each link's drops."""
    sessions = {user: _session(status) for user, status in result.status.items()}
    links = {user: _link(proxy) for user, proxy in result.links.items()}
    delivered = sum(len(texts) for texts in result.inboxes.values())
    receipts = sum(result.receipts.values())
    latency = result.latency_figures()
    if report.json:
        print_json(
            {
                "event": "summary",
                "ok": not problems,
                "problems": problems,
                "messages": 2 * messages,
                "delivered": delivered,
                "receipts": receipts,
                "latency": latency,
                "sessions": sessions,
                "links": links,
                "elapsed_s": round(result.elapsed_s, 3),
            }
        )
        return
    print("\nsummary")
    print(
        f"  delivered  {delivered}/{2 * messages} messages ({messages} each way), "
        f"{receipts}/{2 * messages} delivery receipts, in {result.elapsed_s:.2f} s"
    )
    if latency["median_ms"] is not None:
        print(
            f"  latency    sent -> on the recipient's disk: median {latency['median_ms']:g} ms, "
            f"max {latency['max_ms']:g} ms"
        )
    for user, figures in sessions.items():
        print(f"  {user:<10} {_session_line(figures)}")
    for user, counters in links.items():
        print(f"  link {user:<5} {_link_line(counters)}")
    if problems:
        print("  PROBLEMS   " + "; ".join(problems))
    else:
        print("  every message arrived exactly once, in order, and its receipt came back")


def _session(status: Mapping[str, object]) -> dict[str, object]:
    session = status.get("session")
    figures = dict(session) if isinstance(session, Mapping) else {}
    keep = (
        "rtt_ms",
        "min_rtt_ms",
        "packets_sent",
        "packets_received",
        "packets_lost",
        "loss_percent",
        "frames_retransmitted",
        "probes_sent",
        "heartbeat_interval_s",
    )
    return {key: figures.get(key) for key in keep}


def _session_line(figures: Mapping[str, object]) -> str:
    f = {key: _number(value) for key, value in figures.items()}
    return (
        f"RTT {f['rtt_ms']} ms (min {f['min_rtt_ms']}); {f['packets_sent']} packets sent, "
        f"{f['packets_lost']} declared lost ({f['loss_percent']}%), "
        f"{f['frames_retransmitted']} frames retransmitted, probes {f['probes_sent']}; "
        f"heartbeat every {f['heartbeat_interval_s']} s"
    )


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "?" if value is None else str(value)


def _link(proxy: LossyProxy) -> dict[str, object]:
    figures: dict[str, object] = {}
    for direction in ("up", "down"):
        counters = proxy.counters(direction)
        drops = counters.get("drops")
        figures[direction] = {
            "packets_in": counters.get("packets_in"),
            "packets_out": counters.get("packets_out"),
            "dropped": sum(v for v in drops.values() if isinstance(v, int))
            if isinstance(drops, dict)
            else None,
        }
    return figures


def _link_line(figures: Mapping[str, object]) -> str:
    parts = []
    for direction, label in (("up", "to the hub"), ("down", "from the hub")):
        counters = figures[direction]
        assert isinstance(counters, Mapping)
        parts.append(f"{label}: {counters['packets_in']} datagrams, {counters['dropped']} dropped")
    return "; ".join(parts)
