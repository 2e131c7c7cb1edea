"""netsim.nat: RFC 4787 mapping, filtering, timeouts, port allocation, rebinding, hole punching."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from netsim.models import DropReason, derive_rng
from netsim.nat import (
    Address,
    Behaviour,
    MappingInfo,
    Nat,
    NatConfig,
    PortAllocation,
)

EI = Behaviour.ENDPOINT_INDEPENDENT
AD = Behaviour.ADDRESS_DEPENDENT
APD = Behaviour.ADDRESS_AND_PORT_DEPENDENT

PUBLIC_IP = "127.1.0.1"
ALICE: Address = ("127.16.1.10", 5000)
BOB: Address = ("127.16.1.11", 5000)
SERVER_1: Address = ("127.1.0.50", 3478)
SERVER_1_OTHER_PORT: Address = ("127.1.0.50", 3479)
SERVER_2: Address = ("127.1.0.51", 3478)


def make_nat(name: str = "home", public_ip: str = PUBLIC_IP, **config: Any) -> Nat:
    return Nat(name, public_ip, NatConfig(**config), derive_rng(11, "nat", name))


# --- mapping behaviour ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "same_ip_other_port", "other_ip"),
    [(EI, True, True), (AD, True, False), (APD, False, False)],
)
def test_mapping_behaviour(mapping: Behaviour, same_ip_other_port: bool, other_ip: bool) -> None:
    nat = make_nat(mapping=mapping)
    first = nat.outbound(ALICE, SERVER_1, 0.0)
    assert first[0] == PUBLIC_IP
    assert nat.outbound(ALICE, SERVER_1, 1.0) == first  # same destination: same mapping
    assert (nat.outbound(ALICE, SERVER_1_OTHER_PORT, 1.0) == first) is same_ip_other_port
    assert (nat.outbound(ALICE, SERVER_2, 1.0) == first) is other_ip


def test_different_private_endpoints_get_different_ports() -> None:
    nat = make_nat()
    assert nat.outbound(ALICE, SERVER_1, 0.0) != nat.outbound(BOB, SERVER_1, 0.0)


# --- filtering behaviour ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filtering", "allowed"),
    [
        (EI, {SERVER_1, SERVER_1_OTHER_PORT, SERVER_2}),
        (AD, {SERVER_1, SERVER_1_OTHER_PORT}),
        (APD, {SERVER_1}),
    ],
)
def test_filtering_behaviour(filtering: Behaviour, allowed: set[Address]) -> None:
    nat = make_nat(filtering=filtering)
    public = nat.outbound(ALICE, SERVER_1, 0.0)
    for source in (SERVER_1, SERVER_1_OTHER_PORT, SERVER_2):
        verdict = nat.inbound(public, source, 1.0)
        assert verdict == (ALICE if source in allowed else DropReason.NAT_FILTERED)


def test_no_mapping_drops() -> None:
    nat = make_nat()
    public = nat.outbound(ALICE, SERVER_1, 0.0)
    assert nat.inbound((PUBLIC_IP, public[1] + 1), SERVER_1, 0.0) is DropReason.NAT_NO_MAPPING
    assert nat.inbound(("127.1.0.99", public[1]), SERVER_1, 0.0) is DropReason.NAT_NO_MAPPING
    stats = nat.statistics()
    assert stats.drops == {DropReason.NAT_NO_MAPPING: 2}
    assert (stats.packets_out, stats.packets_in, stats.mappings_created) == (1, 2, 1)


# --- timeouts ---------------------------------------------------------------------------------


def test_mapping_expires_after_timeout() -> None:
    nat = make_nat(timeout_s=30.0)
    public = nat.outbound(ALICE, SERVER_1, 0.0)
    assert nat.inbound(public, SERVER_1, 29.999) == ALICE
    assert nat.inbound(public, SERVER_1, 30.0) is DropReason.NAT_EXPIRED
    assert nat.inbound(public, SERVER_1, 30.5) is DropReason.NAT_NO_MAPPING
    assert nat.statistics().expired == 1
    assert nat.mappings(30.0) == []


def test_outbound_refreshes_mapping() -> None:
    nat = make_nat(timeout_s=30.0)
    public = nat.outbound(ALICE, SERVER_1, 0.0)
    assert nat.outbound(ALICE, SERVER_1, 20.0) == public
    assert nat.inbound(public, SERVER_1, 49.0) == ALICE
    assert nat.mappings(49.0) == [MappingInfo(ALICE, public, 20.0, 50.0)]
    assert nat.inbound(public, SERVER_1, 50.0) is DropReason.NAT_EXPIRED


def test_inbound_does_not_refresh_by_default() -> None:
    nat = make_nat(timeout_s=30.0)
    public = nat.outbound(ALICE, SERVER_1, 0.0)
    assert nat.inbound(public, SERVER_1, 20.0) == ALICE
    assert nat.inbound(public, SERVER_1, 31.0) is DropReason.NAT_EXPIRED


def test_refresh_on_inbound() -> None:
    nat = make_nat(timeout_s=30.0, refresh_on_inbound=True)
    public = nat.outbound(ALICE, SERVER_1, 0.0)
    assert nat.inbound(public, SERVER_1, 20.0) == ALICE
    assert nat.inbound(public, SERVER_1, 45.0) == ALICE
    assert nat.inbound(public, SERVER_1, 74.9) == ALICE
    assert nat.inbound(public, SERVER_1, 104.9) is DropReason.NAT_EXPIRED


def test_filtered_inbound_never_refreshes() -> None:
    nat = make_nat(timeout_s=30.0, refresh_on_inbound=True)
    public = nat.outbound(ALICE, SERVER_1, 0.0)
    assert nat.inbound(public, SERVER_2, 20.0) is DropReason.NAT_FILTERED
    assert nat.inbound(public, SERVER_1, 31.0) is DropReason.NAT_EXPIRED


def test_permission_expires_while_mapping_lives() -> None:
    nat = make_nat(timeout_s=30.0, filtering=APD)
    public = nat.outbound(ALICE, SERVER_1, 0.0)
    nat.outbound(ALICE, SERVER_2, 25.0)  # keeps the (endpoint-independent) mapping alive
    assert nat.inbound(public, SERVER_2, 40.0) == ALICE
    assert nat.inbound(public, SERVER_1, 40.0) is DropReason.NAT_FILTERED


def test_outbound_after_expiry_creates_new_mapping() -> None:
    nat = make_nat(timeout_s=30.0)
    old = nat.outbound(ALICE, SERVER_1, 0.0)
    new = nat.outbound(ALICE, SERVER_1, 60.0)
    assert new != old
    assert nat.inbound(old, SERVER_1, 60.0) is DropReason.NAT_NO_MAPPING
    assert nat.inbound(new, SERVER_1, 60.0) == ALICE
    stats = nat.statistics()
    assert (stats.mappings_created, stats.expired) == (2, 1)


# --- port allocation --------------------------------------------------------------------------


def test_sequential_allocation() -> None:
    nat = make_nat(mapping=APD, port_min=30000, port_max=30009)
    ports = [nat.outbound(ALICE, ("127.1.0.50", 1000 + i), 0.0)[1] for i in range(5)]
    assert ports == [30000, 30001, 30002, 30003, 30004]


def test_random_allocation_is_seeded_distinct_and_in_range() -> None:
    def ports(seed: int) -> list[int]:
        config = NatConfig(mapping=APD, port_allocation=PortAllocation.RANDOM)
        nat = Nat("n", PUBLIC_IP, config, derive_rng(seed, "nat", "n"))
        return [nat.outbound(ALICE, ("127.1.0.50", 1000 + i), 0.0)[1] for i in range(200)]

    first = ports(1)
    assert first == ports(1)
    assert first != ports(2)
    assert len(set(first)) == 200
    assert all(20000 <= port <= 60999 for port in first)
    assert first != sorted(first)


def test_preserve_allocation() -> None:
    nat = make_nat(port_allocation=PortAllocation.PRESERVE, port_min=4000, port_max=6000)
    assert nat.outbound(ALICE, SERVER_1, 0.0) == (PUBLIC_IP, 5000)
    other_host_same_port = nat.outbound(BOB, SERVER_1, 0.0)
    assert other_host_same_port == (PUBLIC_IP, 4000)  # 5000 is held: sequential fallback
    outside = nat.outbound(("127.16.1.12", 7000), SERVER_1, 0.0)
    assert outside == (PUBLIC_IP, 4001)  # 7000 is outside the range


def test_live_port_is_never_reused_and_full_range_evicts_oldest() -> None:
    nat = make_nat(mapping=APD, port_min=30000, port_max=30002, timeout_s=100.0)
    publics = [nat.outbound(ALICE, ("127.1.0.50", 1000 + i), float(i)) for i in range(3)]
    assert len(set(publics)) == 3
    fourth = nat.outbound(ALICE, ("127.1.0.50", 2000), 10.0)
    assert fourth == publics[0]  # the least recently refreshed mapping was evicted
    assert nat.statistics().evicted == 1
    assert [info.public for info in nat.mappings(10.0)] == [publics[1], publics[2], fourth]
    assert nat.inbound(fourth, ("127.1.0.50", 1000), 10.0) is DropReason.NAT_FILTERED


def test_port_of_expired_mapping_is_reclaimed() -> None:
    nat = make_nat(mapping=APD, port_min=30000, port_max=30000, timeout_s=10.0)
    first = nat.outbound(ALICE, SERVER_1, 0.0)
    second = nat.outbound(ALICE, SERVER_2, 10.0)
    assert first == second
    stats = nat.statistics()
    assert (stats.expired, stats.evicted) == (1, 0)


# --- rebinding --------------------------------------------------------------------------------


def test_rebind_moves_mappings_to_new_ports() -> None:
    nat = make_nat(timeout_s=60.0)
    old = nat.outbound(ALICE, SERVER_1, 0.0)
    nat.rebind(1.0)
    assert nat.inbound(old, SERVER_1, 1.0) is DropReason.NAT_NO_MAPPING
    new = nat.outbound(ALICE, SERVER_1, 2.0)
    assert new[0] == PUBLIC_IP
    assert new[1] != old[1]
    assert nat.inbound(new, SERVER_1, 2.5) == ALICE
    assert nat.statistics().rebinds == 1
    assert [info.public for info in nat.mappings(2.5)] == [new]


def test_rebind_to_new_public_ip() -> None:
    nat = make_nat()
    old = nat.outbound(ALICE, SERVER_1, 0.0)
    nat.rebind(1.0, new_public_ip="127.1.0.2")
    assert nat.public_ip == "127.1.0.2"
    assert nat.inbound(old, SERVER_1, 1.0) is DropReason.NAT_NO_MAPPING
    assert nat.inbound(("127.1.0.2", old[1]), SERVER_1, 1.0) is DropReason.NAT_NO_MAPPING
    new = nat.outbound(ALICE, SERVER_1, 2.0)
    assert new[0] == "127.1.0.2"
    assert nat.inbound(new, SERVER_1, 2.0) == ALICE


def test_rebind_new_ports_avoid_all_old_ones_and_drops_what_does_not_fit() -> None:
    nat = make_nat(mapping=APD, port_min=30000, port_max=30002)
    old = {nat.outbound(ALICE, ("127.1.0.50", 1000 + i), 0.0) for i in range(2)}
    nat.rebind(1.0)
    new = {info.public for info in nat.mappings(1.0)}
    assert len(new) == 1  # only one free port (30002) for two mappings
    assert new.isdisjoint(old)
    assert nat.statistics().evicted == 1


# --- config -----------------------------------------------------------------------------------


def test_config_from_mapping_and_back() -> None:
    config = NatConfig.from_mapping(
        {
            "mapping": "apdm",
            "filtering": "address-dependent",
            "timeout": "30s",
            "refresh_on_inbound": True,
            "ports": "40000-40100",
            "port_allocation": "random",
        }
    )
    assert config == NatConfig(
        mapping=APD,
        filtering=AD,
        timeout_s=30.0,
        refresh_on_inbound=True,
        port_allocation=PortAllocation.RANDOM,
        port_min=40000,
        port_max=40100,
    )
    assert NatConfig.from_mapping(config.to_mapping()) == config
    assert NatConfig.from_mapping({}) == NatConfig()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"maping": "eim"}, "bad NAT config 'maping': unknown key: expected one of mapping"),
        ({"mapping": "cone"}, "bad NAT config 'mapping': bad behaviour 'cone': expected one of"),
        ({"timeout": "soon"}, "bad NAT config 'timeout': bad duration 'soon'"),
        ({"timeout": 0}, "bad NAT timeout_s=0.0: expected > 0"),
        ({"refresh_on_inbound": 1}, "bad NAT config 'refresh_on_inbound': bad flag 1"),
        ({"ports": "9-x"}, "bad NAT config 'ports': bad ports '9-x'"),
        ({"ports": [5, 4]}, "bad NAT ports 5-4: expected 1 <= port_min <= port_max <= 65535"),
        ({"port_allocation": "lucky"}, "bad NAT config 'port_allocation': bad port allocation"),
    ],
)
def test_config_errors_are_one_clear_line(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        NatConfig.from_mapping(data)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


# --- hole punching through two NATs -----------------------------------------------------------


@dataclass
class Peer:
    """A host behind a NAT that learned its peer's public endpoint from a rendezvous."""

    private: Address
    nat: Nat
    peer: Address = ("0.0.0.0", 0)
    received_from: list[Address] = field(default_factory=list)


RENDEZVOUS: Address = ("127.1.0.100", 3478)


def register(peer: Peer, now: float) -> Address:
    """Send to the rendezvous (on the public side, no NAT); return the source it sees."""
    return peer.nat.outbound(peer.private, RENDEZVOUS, now)


def punch(config_a: NatConfig, config_b: NatConfig, rounds: int = 4) -> tuple[Peer, Peer]:
    nat_a = Nat("a", "127.1.0.1", config_a, derive_rng(1, "nat", "a"))
    nat_b = Nat("b", "127.1.0.2", config_b, derive_rng(1, "nat", "b"))
    nats = {nat.public_ip: nat for nat in (nat_a, nat_b)}
    a = Peer(("127.16.1.10", 5000), nat_a)
    b = Peer(("127.16.2.10", 5000), nat_b)
    # Both register with the rendezvous, which tells each the other's public endpoint.
    a.peer, b.peer = register(b, 0.0), register(a, 0.0)
    for step in range(rounds):
        now = 1.0 + step
        # Simultaneous: both leave their NAT before either arrives at the other one.
        outs = [(a, b, a.nat.outbound(a.private, a.peer, now), a.peer)]
        outs.append((b, a, b.nat.outbound(b.private, b.peer, now), b.peer))
        for _sender, receiver, public_src, dst in outs:
            verdict = nats[dst[0]].inbound(dst, public_src, now)
            if verdict == receiver.private:
                receiver.received_from.append(public_src)
                receiver.peer = public_src  # answer where the packet came from
    return a, b


EIM_APDF = NatConfig(mapping=EI, filtering=APD)
SYMMETRIC = NatConfig(mapping=APD, filtering=APD)
FULL_CONE = NatConfig(mapping=EI, filtering=EI)


def test_hole_punching_works_through_endpoint_independent_mapping() -> None:
    a, b = punch(EIM_APDF, EIM_APDF)
    assert a.received_from
    assert b.received_from
    # The endpoint the rendezvous saw is the one b's packets come from (one EIM mapping each).
    assert a.received_from[0] == b.nat.mappings(5.0)[0].public
    assert b.received_from[0] == a.nat.mappings(5.0)[0].public


def test_hole_punching_fails_when_both_nats_are_symmetric() -> None:
    a, b = punch(SYMMETRIC, SYMMETRIC)
    assert a.received_from == []
    assert b.received_from == []
    assert a.nat.statistics().drops == {DropReason.NAT_FILTERED: 4}
    assert b.nat.statistics().drops == {DropReason.NAT_FILTERED: 4}


def test_hole_punching_symmetric_to_full_cone_works_after_learning_the_source() -> None:
    a, b = punch(SYMMETRIC, FULL_CONE)
    assert b.received_from
    assert a.received_from
    rendezvous_saw_a = a.nat.mappings(1.0)[0].public
    assert b.received_from[0] != rendezvous_saw_a  # a's NAT used a fresh port towards b
