"""Scenario files: every key, one-line errors naming the key path, timeline order, round trips."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from netsim.mahimahi import bundled_traces
from netsim.models import GilbertElliott, LinkProfile, Outage
from netsim.nat import Behaviour, NatConfig, PortAllocation
from netsim.scenario import (
    SCENARIO_DIR,
    Scenario,
    ScenarioError,
    TimelineAction,
    bundled_scenarios,
    load_scenario,
    scenario_from_data,
)

FULL = """
description = "every key"
duration = "10min"
seed = 42
app = "netsim.examples.ping:PingApp"

[profiles.base]
delay = "25ms"
jitter = "5ms"
reorder = true
loss = "2%"
duplicate = "1%"
corrupt = "0.5%"
mtu = 1400
rate = "1mbit"
queue = "64KiB"
outages = [["10s", "20s"]]

[profiles.bursty]
burst = { p_good_to_bad = 0.02, p_bad_to_good = 0.3, loss_good = 0.0, loss_bad = 0.8 }

[profiles.lte]
trace = "Verizon-LTE-short.down"

[nats.home]
public_ip = "127.1.0.100"
mapping = "address-dependent"
filtering = "endpoint-independent"
timeout = "30s"
refresh_on_inbound = true
ports = "30000-30099"
port_allocation = "random"

[nats.cell]
public_ip = "127.1.0.200"

[hosts.server]
address = "127.1.0.1"

[hosts.alice]
address = "127.16.1.2"
nat = "home"
link = "base"
down = { profile = "bursty", delay = "40ms" }

[hosts.bob]
address = "127.1.0.3"
up = "lte"
down = { loss = "5%" }

[[timeline]]
at = "5min"
action = "heal"

[[timeline]]
at = "60s"
action = "set-link"
host = "alice"
direction = "up"
loss = "30%"

[[timeline]]
at = "120s"
action = "outage"
host = "bob"
until = "180s"

[[timeline]]
at = "200s"
action = "rebind"
nat = "home"
public_ip = "127.1.0.101"

[[timeline]]
at = "240s"
action = "move"
host = "alice"
address = "127.16.9.9"
nat = "cell"

[[timeline]]
at = "250s"
action = "partition"
groups = [["alice"], ["server", "bob"]]

[[timeline]]
at = "260s"
action = "outage"
host = "server"
direction = "down"
duration = "5s"

[[timeline]]
at = "270s"
action = "set-link"
host = "bob"
profile = "base"

[workload]
interval = "1s"
nested = { any = ["thing", 1] }
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Scenario:
    return load_scenario(write(tmp_path, text))


def test_every_top_level_key(tmp_path: Path) -> None:
    scenario = load_text(tmp_path, FULL)
    assert scenario.name == "s"
    assert scenario.description == "every key"
    assert scenario.duration_s == 600.0
    assert scenario.seed == 42
    assert scenario.app == "netsim.examples.ping:PingApp"
    assert scenario.workload == {"interval": "1s", "nested": {"any": ["thing", 1]}}
    assert [host.name for host in scenario.hosts] == ["server", "alice", "bob"]


def test_profile_keys_and_inheritance(tmp_path: Path) -> None:
    scenario = load_text(tmp_path, FULL)
    base = scenario.profiles["base"]
    assert base == LinkProfile(
        delay_s=0.025,
        jitter_s=0.005,
        reorder=True,
        loss=0.02,
        duplicate=0.01,
        corrupt=0.005,
        mtu_bytes=1400,
        rate_bps=1e6,
        queue_bytes=65536,
        outages=(Outage(10.0, 20.0),),
    )
    assert scenario.profiles["bursty"].burst == GilbertElliott(0.02, 0.3, 0.0, 0.8)
    alice = scenario.host("alice")
    assert alice.up == base  # link = "base" applies to both directions...
    assert alice.down.burst == GilbertElliott(0.02, 0.3, 0.0, 0.8)  # ...down overrides it
    assert alice.down.delay_s == 0.04
    assert alice.down.loss == 0.0  # a profile = base replaces, it does not merge with link
    bob = scenario.host("bob")
    assert bob.up.trace is not None
    assert bob.up.trace.name == "Verizon-LTE-short.down"
    assert bob.down == LinkProfile(loss=0.05)
    assert scenario.host("server").up == LinkProfile()


def test_nat_keys(tmp_path: Path) -> None:
    scenario = load_text(tmp_path, FULL)
    home, cell = scenario.nats
    assert (home.name, home.public_ip) == ("home", "127.1.0.100")
    assert home.config == NatConfig(
        mapping=Behaviour.ADDRESS_DEPENDENT,
        filtering=Behaviour.ENDPOINT_INDEPENDENT,
        timeout_s=30.0,
        refresh_on_inbound=True,
        port_allocation=PortAllocation.RANDOM,
        port_min=30000,
        port_max=30099,
    )
    assert cell.config == NatConfig()
    assert scenario.host("alice").nat == "home"
    assert scenario.host("bob").nat is None


def test_timeline_is_sorted_and_resolved(tmp_path: Path) -> None:
    timeline = load_text(tmp_path, FULL).timeline
    assert [(e.at_s, e.action) for e in timeline] == [
        (60.0, TimelineAction.SET_LINK),
        (120.0, TimelineAction.OUTAGE),
        (200.0, TimelineAction.REBIND),
        (240.0, TimelineAction.MOVE),
        (250.0, TimelineAction.PARTITION),
        (260.0, TimelineAction.OUTAGE),
        (270.0, TimelineAction.SET_LINK),
        (300.0, TimelineAction.HEAL),
    ]
    set_link, outage, rebind, move, partition, server_outage, bob_base, heal = timeline
    assert set_link.key == "timeline[1]"  # messages keep the position in the file
    assert set_link.down is None
    assert set_link.up is not None
    assert set_link.up.loss == 0.3
    assert set_link.up.delay_s == 0.025  # the other keys of the current profile stay
    assert outage.up is not None
    assert outage.down is not None
    assert outage.up.outages == (Outage(120.0, 180.0),)
    assert outage.down.loss == 0.05
    assert (rebind.nat, rebind.public_ip) == ("home", "127.1.0.101")
    assert (move.host, move.address, move.nat) == ("alice", "127.16.9.9", "cell")
    assert partition.groups == (("alice",), ("server", "bob"))
    assert server_outage.up is None
    assert server_outage.down is not None
    assert server_outage.down.outages == (Outage(260.0, 265.0),)
    assert bob_base.up == load_text(tmp_path, FULL).profiles["base"]
    assert (heal.host, heal.up, heal.down, heal.groups) == (None, None, None, ())


def test_equal_times_keep_file_order(tmp_path: Path) -> None:
    text = BASE + "".join(
        f'\n[[timeline]]\nat = "{at}"\naction = "set-link"\nhost = "a"\ndelay = "{delay}"\n'
        for at, delay in (("20s", "3ms"), ("10s", "1ms"), ("10s", "2ms"))
    )
    timeline = load_text(tmp_path, text).timeline
    assert [(e.at_s, e.up.delay_s if e.up else None) for e in timeline] == [
        (10.0, 0.001),
        (10.0, 0.002),
        (20.0, 0.003),
    ]


def test_defaults(tmp_path: Path) -> None:
    scenario = load_text(tmp_path, '[hosts.a]\naddress = "127.0.0.5"\n')
    assert (scenario.duration_s, scenario.seed, scenario.app) == (60.0, 0, None)
    assert (scenario.description, scenario.workload, scenario.timeline) == ("", {}, ())


def test_data_round_trip_and_overrides(tmp_path: Path) -> None:
    scenario = load_text(tmp_path, FULL)
    again = scenario_from_data(scenario.to_data(), "header")
    assert again.name == "s"
    assert (again.hosts, again.nats, again.timeline) == (
        scenario.hosts,
        scenario.nats,
        scenario.timeline,
    )
    shorter = scenario.with_overrides(duration_s=100.0, seed=7)
    assert (shorter.duration_s, shorter.seed) == (100.0, 7)
    assert shorter.timeline == scenario.timeline  # later entries simply never happen


def test_relative_trace_path_is_made_absolute(tmp_path: Path) -> None:
    shutil.copy(SCENARIO_DIR.parent / "traces" / bundled_traces()[0], tmp_path / "my.trace")
    scenario = load_text(tmp_path, '[hosts.a]\naddress = "127.0.0.5"\nup = { trace = "my.trace" }')
    assert Path(scenario.data["hosts"]["a"]["up"]["trace"]) == (tmp_path / "my.trace").resolve()
    assert scenario.host("a").up.trace is not None


def test_bundled_scenarios_load() -> None:
    names = bundled_scenarios()
    assert set(names) >= {
        "lossy-ping",
        "burst-loss",
        "nat-timeout",
        "lte-trace",
        "outage-handover",
        "ten-hosts",
    }
    for name in names:
        scenario = load_scenario(name)
        assert scenario.description
        assert scenario.app is not None
        assert scenario.source == f"{name}.toml"


BASE = """
duration = "10min"
[profiles.p]
delay = "1ms"
[nats.n]
public_ip = "127.1.0.100"
[hosts.a]
address = "127.16.0.2"
nat = "n"
[hosts.b]
address = "127.1.0.2"
"""

BAD_CASES = [
    # (TOML added to BASE, or a whole file after "!"; the key path; part of the problem)
    ('colour = "red"', "colour", "unknown key"),
    ("!duration = 'soon'\n[hosts.a]\naddress = '127.0.0.1'", "duration", "bad duration"),
    ("!duration = 0\n[hosts.a]\naddress = '127.0.0.1'", "duration", "more than 0s"),
    ("!seed = -1\n[hosts.a]\naddress = '127.0.0.1'", "seed", "non-negative integer"),
    ("!seed = 'x'\n[hosts.a]\naddress = '127.0.0.1'", "seed", "non-negative integer"),
    ("!app = 'nocolon'\n[hosts.a]\naddress = '127.0.0.1'", "app", "MODULE:FACTORY"),
    ("!description = 3\n[hosts.a]\naddress = '127.0.0.1'", "description", "expected a string"),
    ("!duration = '1min'", "hosts", "at least one"),
    ("!hosts = 3", "hosts", "expected a table"),
    ("[profiles.q]\nloss = '150%'", "profiles.q.loss", "ratio"),
    ("[profiles.q]\nwobble = 1", "profiles.q.wobble", "wobble"),
    ("[hosts.c]\naddress = '10.0.0.1'", "hosts.c.address", "outside 127.0.0.0/8"),
    ("[hosts.c]\naddress = 'nowhere'", "hosts.c.address", "not an IPv4 address"),
    ("[hosts.c]\nnat = 'n'", "hosts.c.address", "missing"),
    ("[hosts.c]\naddress = '127.1.0.2'", "hosts.c.address", "already used by hosts.b"),
    ("[hosts.c]\naddress = '127.1.0.100'", "hosts.c.address", "already used by nats.n"),
    ("[hosts.c]\naddress = '127.1.0.9'\nnat = 'm'", "hosts.c.nat", "unknown NAT 'm'"),
    ("[hosts.c]\naddress = '127.1.0.9'\nlink = 'zz'", "hosts.c.link", "unknown profile 'zz'"),
    ("[hosts.c]\naddress = '127.1.0.9'\nup = { delay = 'x' }", "hosts.c.up.delay", "duration"),
    ("[hosts.c]\naddress = '127.1.0.9'\nspeed = 1", "hosts.c.speed", "unknown key"),
    ("[hosts.n]\naddress = '127.1.0.9'", "hosts.n", "already used by a NAT"),
    ("[nats.m]\ntimeout = '1s'", "nats.m.public_ip", "missing"),
    ("[nats.m]\npublic_ip = '127.1.0.7'\ntimeout = 'x'", "nats.m.timeout", "timeout"),
    ("[nats.m]\npublic_ip = '127.1.0.7'\nmapping = 'odd'", "nats.m.mapping", "mapping"),
    ("[[timeline]]\naction = 'heal'", "timeline[0]", "missing key 'at'"),
    (
        "[[timeline]]\nat = '11min'\naction = 'heal'",
        "timeline[0].at",
        "not before the scenario's end",
    ),
    ("[[timeline]]\nat = '-1s'\naction = 'heal'", "timeline[0].at", "bad duration"),
    ("[[timeline]]\nat = '1s'\naction = 'explode'", "timeline[0].action", "expected one of"),
    ("[[timeline]]\nat = '1s'\naction = 'heal'\nhost = 'a'", "timeline[0].host", "unknown key"),
    (
        "[[timeline]]\nat = '1s'\naction = 'set-link'\nhost = 'z'",
        "timeline[0].host",
        "unknown host",
    ),
    (
        "[[timeline]]\nat = '1s'\naction = 'set-link'\nhost = 'a'\nloss = 'lots'",
        "timeline[0].loss",
        "ratio",
    ),
    (
        "[[timeline]]\nat = '1s'\naction = 'set-link'\nhost = 'a'\ndirection = 'sideways'",
        "timeline[0].direction",
        "up, down or both",
    ),
    (
        "[[timeline]]\nat = '1s'\naction = 'set-link'\nhost = 'a'\nprofile = 'zz'",
        "timeline[0].profile",
        "unknown profile",
    ),
    ("[[timeline]]\nat = '1s'\naction = 'outage'\nhost = 'a'", "timeline[0]", "exactly one"),
    (
        "[[timeline]]\nat = '9s'\naction = 'outage'\nhost = 'a'\nuntil = '5s'",
        "timeline[0]",
        "end after it starts",
    ),
    ("[[timeline]]\nat = '1s'\naction = 'rebind'\nnat = 'x'", "timeline[0].nat", "unknown NAT"),
    (
        "[[timeline]]\nat = '1s'\naction = 'rebind'\nnat = 'n'\npublic_ip = '127.1.0.2'",
        "timeline[0].public_ip",
        "already used by hosts.b",
    ),
    (
        "[[timeline]]\nat = '1s'\naction = 'move'\nhost = 'a'\naddress = '127.1.0.2'",
        "timeline[0].address",
        "already used by hosts.b",
    ),
    (
        "[[timeline]]\nat = '1s'\naction = 'move'\nhost = 'a'\naddress = '192.0.2.1'",
        "timeline[0].address",
        "outside 127.0.0.0/8",
    ),
    ("[[timeline]]\nat = '1s'\naction = 'partition'", "timeline[0].groups", "two or more"),
    (
        "[[timeline]]\nat = '1s'\naction = 'partition'\ngroups = [['a'], ['a', 'b']]",
        "timeline[0].groups[1]",
        "in two groups",
    ),
    (
        "[[timeline]]\nat = '1s'\naction = 'partition'\ngroups = [['a'], ['q']]",
        "timeline[0].groups[1]",
        "unknown host",
    ),
    ("[workload]\nwhen = 1979-05-27", "workload.when", "dates are not allowed"),
    ("timeline = 3", "timeline", "array of tables"),
]


@pytest.mark.parametrize(("extra", "key", "problem"), BAD_CASES)
def test_bad_scenarios_name_the_key(tmp_path: Path, extra: str, key: str, problem: str) -> None:
    if extra.startswith("!"):
        text = extra[1:]
    else:  # tables go after BASE's tables, top-level keys before them
        text = BASE + "\n" + extra if extra.startswith("[") else extra + "\n" + BASE
    path = write(tmp_path, text, "bad.toml")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: ")
    assert problem in message
    assert info.value.key == key


def test_moves_free_the_old_address(tmp_path: Path) -> None:
    text = BASE + (
        "[[timeline]]\nat = '1s'\naction = 'move'\nhost = 'b'\naddress = '127.1.0.9'\n"
        "[[timeline]]\nat = '2s'\naction = 'move'\nhost = 'a'\naddress = '127.1.0.2'\n"
    )
    move_b, move_a = load_text(tmp_path, text).timeline
    assert (move_b.address, move_b.nat) == ("127.1.0.9", None)
    assert (move_a.address, move_a.nat) == ("127.1.0.2", None)


def test_hosts_behind_one_nat_cannot_be_split(tmp_path: Path) -> None:
    text = BASE + (
        "[hosts.c]\naddress = '127.16.0.3'\nnat = 'n'\n"
        "[[timeline]]\nat = '1s'\naction = 'partition'\ngroups = [['a'], ['c']]\n"
    )
    with pytest.raises(ScenarioError, match=r"timeline\[0\]\.groups\[1\]: NAT 'n'"):
        load_text(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("[hosts\n", "invalid TOML"), ("\xff", "invalid TOML")],
)
def test_unparsable_files(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ScenarioError, match=problem):
        load_text(tmp_path, text)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(b'description = "caf\xe9"\n')
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load_scenario(path)


def test_missing_file_lists_bundled_names(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "nope.toml")
    assert "no such file and no bundled scenario" in str(info.value)
    assert "lossy-ping" in str(info.value)
