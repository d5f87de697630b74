"""The OpenFlow controller learning guests from packet-ins and forgetting them on flow-removed."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from mosnet.l2 import frames, nd
from mosnet.ovs import ofcontrol, ofrules
from mosnet.ovs import openflow as of
from mosnet.ovs.ofrules import KIND_ADDR, KIND_BASE, KIND_GUEST, Guest, cookie
from tests.unit.helpers.of_control import (
    BASE,
    FREE4,
    GUEST,
    GUEST4,
    GUEST4B,
    GUEST6,
    GUEST_B,
    GUEST_COOKIE,
    GW4,
    GW6,
    HOST4,
    HOST6,
    NAT,
    OFPRR_DELETE,
    OFPRR_IDLE_TIMEOUT,
    PROVIDER,
    FlowMod,
    PacketOut,
    adds,
    answer,
    assert_delete_by_cookie,
    deletes,
    flow_removed,
    guest_arp,
    guest_na,
    learned,
    learned_index,
    make,
    packet_in,
    packet_outs,
    parse_all,
    uplink_arp,
    uplink_ns,
)

# --- learning -----------------------------------------------------------------------


def test_new_guest_via_the_catch_all() -> None:
    ctl, _ = make()
    frame = guest_arp()
    out = learned(ctl, frame)
    guest = Guest(3, GUEST)
    # no delete: an add with the same match replaces the actions, without a gap
    assert deletes(out) == []
    assert adds(out, KIND_BASE) == ofrules.base_flows([3])
    assert adds(out, KIND_GUEST) == ofrules.guest_flows(guest, NAT, [3])
    index = learned_index(ctl, GUEST4)
    assert adds(out, KIND_ADDR) == ofrules.address_flows(GUEST4, guest, index)
    assert {f.cookie for f in adds(out, KIND_ADDR)} == {cookie(KIND_ADDR, index)}
    po = out[-1]
    assert isinstance(po, PacketOut) and packet_outs(out) == [po]
    assert po.in_port == 3 and po.actions == (of.Output(of.OFPP_TABLE),) and po.data == frame
    assert ctl.guests == {GUEST: guest}
    assert ctl.stats.learned_macs == 1 and ctl.stats.learned_addresses == 1


def test_new_guest_via_a_guest_flow_is_not_sent_again() -> None:
    ctl, _ = make()
    out = parse_all(ctl.handle(packet_in(guest_arp(), 3, GUEST_COOKIE)))
    assert packet_outs(out) == []
    assert adds(out, KIND_GUEST) and adds(out, KIND_ADDR)
    assert GUEST in ctl.guests and GUEST4 in ctl.addresses


def test_learned_guest_addresses_are_answered() -> None:
    ctl, _ = make()
    learned(ctl)
    reply = answer(ctl, uplink_arp(GUEST4))
    assert reply is not None
    arp = frames.Arp.decode(frames.Ethernet.decode(reply).payload)
    assert (arp.sha, arp.spa) == (NAT, GUEST4)
    assert answer(ctl, uplink_ns(GUEST6)) is None
    out = parse_all(ctl.handle(packet_in(guest_na(), 3, GUEST_COOKIE)))
    (flow,) = adds(out)
    assert flow.match.ipv6_dst == GUEST6 and ofrules.cookie_kind(flow.cookie) == KIND_ADDR
    reply6 = answer(ctl, uplink_ns(GUEST6))
    assert reply6 is not None
    na = nd.decode_ndp(nd.IPv6.decode(frames.Ethernet.decode(reply6).payload))
    assert isinstance(na, nd.NeighborAdvertisement) and (na.target, na.tllao) == (GUEST6, NAT)


def test_a_known_guest_refreshes_its_address_flows_only() -> None:
    ctl, _ = make()
    first = learned(ctl)
    out = parse_all(ctl.handle(packet_in(guest_arp(), 3, GUEST_COOKIE)))
    assert [type(p) for p in out] == [FlowMod, FlowMod]
    assert adds(out) == adds(first, KIND_ADDR)  # same cookie: the idle timer restarts
    assert ctl.stats.learned_macs == 1 and ctl.stats.learned_addresses == 1


def test_distinct_addresses_get_distinct_cookies() -> None:
    ctl, _ = make()
    learned(ctl)
    out = parse_all(ctl.handle(packet_in(guest_arp(GUEST4B), 3, GUEST_COOKIE)))
    first = ctl.addresses.get(GUEST4)
    second = ctl.addresses.get(GUEST4B)
    assert first is not None and second is not None and first.index != second.index
    assert {f.cookie for f in adds(out)} == {cookie(KIND_ADDR, second.index)}


@pytest.mark.parametrize(
    "frame",
    [guest_arp(GW4), guest_arp(HOST4), guest_na(GW6), guest_na(HOST6), guest_arp(FREE4, NAT)],
)
def test_a_guest_claiming_the_gateway_or_a_host_address_is_not_bound(frame: bytes) -> None:
    ctl, _ = make()
    out = parse_all(ctl.handle(packet_in(frame, 3)))
    assert adds(out, KIND_ADDR) == []
    assert len(ctl.addresses) == 0
    assert answer(ctl, uplink_arp(GW4)) is None and answer(ctl, uplink_ns(GW6)) is None
    assert answer(ctl, uplink_arp(HOST4)) is not None  # still the host's


def test_a_guest_claiming_the_host_link_local_is_not_bound() -> None:
    ctl, _ = make()
    host_ll = nd.link_local_eui64(NAT)
    out = parse_all(ctl.handle(packet_in(guest_na(host_ll), 3)))
    assert adds(out, KIND_ADDR) == []
    assert host_ll not in ctl.addresses


@pytest.mark.parametrize(
    "mac",
    [
        NAT,
        bytes.fromhex("01005e000001"),
        bytes.fromhex("333300000001"),
        frames.BROADCAST_MAC,
        frames.ZERO_MAC,
    ],
)
def test_nat_mac_multicast_and_zero_sources_are_ignored(mac: bytes) -> None:
    ctl, _ = make()
    frame = frames.Ethernet(frames.BROADCAST_MAC, mac, frames.ETH_P_ARP,
                        frames.arp_request(GUEST, GUEST4, GW4).encode()).encode()  # fmt: skip
    assert ctl.handle(packet_in(frame, 3)) == []
    assert ctl.guests == {} and len(ctl.addresses) == 0


def test_garbage_from_a_guest_port_teaches_nothing() -> None:
    ctl, _ = make()
    assert ctl.handle(packet_in(b"\x02" * 13, 3)) == []
    assert ctl.guests == {}


def test_a_guest_frame_without_addresses_teaches_the_mac() -> None:
    ctl, _ = make()
    frame = frames.Ethernet(PROVIDER, GUEST, 0x88CC, b"\0" * 46).encode()
    out = parse_all(ctl.handle(packet_in(frame, 3)))
    assert adds(out, KIND_GUEST) and adds(out, KIND_ADDR) == []
    assert packet_outs(out)[0].data == frame


def test_a_second_guest_joins_the_flood_lists() -> None:
    ctl, _ = make()
    learned(ctl)
    out = learned(ctl, guest_arp(GUEST4B, GUEST_B), port=4)
    assert adds(out, KIND_BASE) == ofrules.base_flows([3, 4])
    guest_adds = adds(out, KIND_GUEST)
    assert ofrules.guest_flows(Guest(3, GUEST), NAT, [3, 4])[0] in guest_adds
    assert set(ofrules.guest_flows(Guest(4, GUEST_B), NAT, [3, 4])) <= set(guest_adds)


def test_a_guest_moving_to_another_port() -> None:
    ctl, _ = make()
    learned(ctl)
    out = learned(ctl, guest_arp(), port=5)
    assert ctl.guests[GUEST] == Guest(5, GUEST)
    assert 5 in [a.port for f in adds(out, KIND_BASE) for a in f.actions
                 if isinstance(a, of.Output)]  # fmt: skip
    (ip_flow, _arp_flow) = adds(out, KIND_ADDR)
    assert ip_flow.actions[-1] == of.Output(5)
    assert ctl.stats.learned_macs == 2


def test_too_many_macs_on_one_port() -> None:
    ctl, _ = make()
    for i in range(ofcontrol.MAX_MACS_PER_PORT):
        mac = bytes.fromhex(f"02cc000001{i:02x}")
        learned(ctl, guest_arp(IPv4Address(f"10.70.1.{i + 1}"), mac))
    extra = bytes.fromhex("02cc000002ff")
    assert ctl.handle(packet_in(guest_arp(IPv4Address("10.70.2.1"), extra), 3)) == []
    assert extra not in ctl.guests and len(ctl.guests) == ofcontrol.MAX_MACS_PER_PORT
    assert learned(ctl, guest_arp(IPv4Address("10.70.2.1"), extra), port=4)  # other port: fine


# --- flow-removed -------------------------------------------------------------------


def test_an_expired_ipv4_address_is_forgotten_and_its_flows_deleted() -> None:
    ctl, _ = make()
    learned(ctl)
    index = learned_index(ctl, GUEST4)
    out = parse_all(ctl.handle(flow_removed(cookie(KIND_ADDR, index), OFPRR_IDLE_TIMEOUT, GUEST4)))
    (delete,) = out
    assert isinstance(delete, FlowMod)
    assert_delete_by_cookie(delete, cookie(KIND_ADDR, index))
    assert GUEST4 not in ctl.addresses and ctl.stats.forgotten == 1
    assert answer(ctl, uplink_arp(GUEST4)) is None
    assert GUEST in ctl.guests  # the MAC NAT flows stay


def test_an_expired_ipv6_address_is_forgotten() -> None:
    ctl, _ = make()
    learned(ctl, guest_na())
    index = learned_index(ctl, GUEST6)
    out = ctl.handle(flow_removed(cookie(KIND_ADDR, index), OFPRR_IDLE_TIMEOUT, GUEST6))
    assert len(out) == 1 and GUEST6 not in ctl.addresses
    assert answer(ctl, uplink_ns(GUEST6)) is None


@pytest.mark.parametrize(
    ("which", "reason"),
    [("addr", OFPRR_DELETE), ("base", 0), ("guest", 0), ("foreign", 0), ("unknown", 0)],
)
def test_other_flow_removals_are_ignored(which: str, reason: int) -> None:
    ctl, _ = make()
    learned(ctl)
    index = learned_index(ctl, GUEST4)
    fr_cookie = {
        "addr": cookie(KIND_ADDR, index),
        "base": BASE,
        "guest": GUEST_COOKIE,
        "foreign": 0x1234 << 32 | index,
        "unknown": cookie(KIND_ADDR, index + 1),
    }[which]
    assert ctl.handle(flow_removed(fr_cookie, reason, GUEST4)) == []
    assert GUEST4 in ctl.addresses and ctl.stats.forgotten == 0


def test_a_stale_flow_removal_from_a_previous_controller_forgets_nothing() -> None:
    ctl, _ = make()  # the new controller after a restart
    learned(ctl, guest_arp(GUEST4B))  # index 1, like GUEST4 had in the previous one
    index = learned_index(ctl, GUEST4B)
    stale = flow_removed(cookie(KIND_ADDR, index), OFPRR_IDLE_TIMEOUT, GUEST4)
    assert ctl.handle(stale) == []
    assert GUEST4B in ctl.addresses
