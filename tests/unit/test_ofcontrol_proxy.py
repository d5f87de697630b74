"""The OpenFlow controller's ARP/NS proxy on the uplink, and its rate limits."""

from __future__ import annotations

import pytest

from mosnet.l2 import frames, nd
from mosnet.ovs import openflow as of
from mosnet.proxy.proxyd import Limits
from tests.unit.helpers.of_control import (
    FREE4,
    GUEST,
    GUEST4,
    GUEST6,
    GW4,
    GW6,
    HOST4,
    HOST6,
    NAT,
    PROVIDER,
    PROVIDER_LL,
    answer,
    guest_arp,
    learned,
    make,
    packet_in,
    uplink_arp,
    uplink_ns,
)

# --- the proxy on the uplink ----------------------------------------------------------


def test_uplink_arp_request_for_the_host_is_answered_with_the_nat_mac() -> None:
    ctl, _ = make()
    reply = answer(ctl, uplink_arp(HOST4))
    assert reply is not None
    eth = frames.Ethernet.decode(reply)
    assert (eth.dst, eth.src, eth.ethertype) == (PROVIDER, NAT, frames.ETH_P_ARP)
    arp = frames.Arp.decode(eth.payload)
    assert (arp.op, arp.sha, arp.spa, arp.tha, arp.tpa) == (2, NAT, HOST4, PROVIDER, GW4)
    assert ctl.stats.answered == 1 and ctl.stats.packet_ins == 1


def test_uplink_ns_for_the_host_is_answered_with_the_nat_mac() -> None:
    ctl, _ = make()
    reply = answer(ctl, uplink_ns(HOST6))
    assert reply is not None
    eth = frames.Ethernet.decode(reply)
    assert (eth.dst, eth.src) == (PROVIDER, NAT)
    ip6 = nd.IPv6.decode(eth.payload)
    assert (ip6.src, ip6.dst) == (HOST6, PROVIDER_LL)
    na = nd.decode_ndp(ip6, check_sum=True)
    assert isinstance(na, nd.NeighborAdvertisement)
    assert (na.target, na.tllao, na.solicited) == (HOST6, NAT, True)


@pytest.mark.parametrize(
    "frame",
    [
        uplink_arp(GW4),
        uplink_arp(FREE4),
        uplink_arp(GUEST4),  # not learned yet
        uplink_ns(GW6),
        uplink_ns(GUEST6),
        frames.arp_reply(PROVIDER, GW4, NAT, HOST4).frame(dst=NAT),
        frames.arp_request(NAT, GW4, HOST4).frame(),  # our own, looped back
    ],
)
def test_uplink_requests_we_do_not_own_get_nothing(frame: bytes) -> None:
    ctl, _ = make()
    assert ctl.handle(packet_in(frame, 1)) == []
    assert ctl.guests == {} and len(ctl.addresses) == 0


def test_uplink_frames_never_teach_guests() -> None:
    ctl, _ = make()
    ctl.handle(packet_in(frames.arp_request(GUEST, GUEST4, GW4).frame(), 1))
    assert ctl.guests == {} and GUEST4 not in ctl.addresses


@pytest.mark.parametrize("port", [2, of.OFPP_LOCAL, of.OFPP_CONTROLLER, None])
def test_packet_ins_from_the_host_or_reserved_ports_are_ignored(port: int | None) -> None:
    ctl, _ = make()
    assert ctl.handle(packet_in(guest_arp(), port)) == []
    assert ctl.guests == {}


# --- rate limiting ------------------------------------------------------------------


def test_answers_are_rate_limited_per_requester_and_overall() -> None:
    limits = Limits(per_rate=1.0, per_burst=2.0, global_rate=1.0, global_burst=3.0)
    ctl, clock = make(limits)
    mac_x, mac_y, mac_z = (bytes.fromhex(f"02bb000000{i:02x}") for i in (0x10, 0x11, 0x12))
    got = [answer(ctl, uplink_arp(HOST4, mac_x)) is not None for _ in range(5)]
    assert got == [True, True, False, False, False]
    got = [answer(ctl, uplink_arp(HOST4, mac_y)) is not None for _ in range(5)]
    assert got == [True, False, False, False, False]  # the global burst is spent
    assert answer(ctl, uplink_arp(HOST4, mac_z)) is None
    assert ctl.stats.answered == 3
    clock.t += 1.0
    assert answer(ctl, uplink_arp(HOST4, mac_z)) is not None
    assert answer(ctl, uplink_arp(HOST4, mac_z)) is None
    clock.t += 10.0
    assert answer(ctl, uplink_ns(HOST6)) is not None


def test_limits_do_not_stop_learning() -> None:
    ctl, _ = make(Limits(per_rate=0.0, per_burst=1.0, global_rate=0.0, global_burst=1.0))
    assert answer(ctl, uplink_arp(HOST4)) is not None
    assert answer(ctl, uplink_arp(HOST4)) is None
    learned(ctl)
    assert GUEST4 in ctl.addresses
