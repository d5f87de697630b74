"""The OpenFlow controller's state machine (mosnet.ovs.ofcontrol.Controller).

Messages from the switch (packet-in, flow-removed, echo, error) are built by
hand with struct, independently of mosnet.ovs.openflow's encoders; what the
controller sends is taken apart again by hand (header, flow_mod fixed part,
instructions, actions, packet_out) with only the match left to
``openflow.Match.decode``. The clock is injected.
"""

from __future__ import annotations

import itertools
import shutil
import struct
import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosnet.l2 import frames, nd
from mosnet.ovs import ofcontrol, ofrules
from mosnet.ovs import openflow as of
from mosnet.ovs.ofcontrol import Controller
from mosnet.ovs.ofrules import KIND_ADDR, KIND_BASE, KIND_GUEST, Flow, Guest, cookie
from mosnet.proxy.answers import ProxyConfig
from mosnet.proxy.proxyd import Limits

NAT = bytes.fromhex("02aa00000001")
PROVIDER = bytes.fromhex("02bb00000002")
GUEST = bytes.fromhex("02cc00000003")
GUEST_B = bytes.fromhex("02dd00000004")
HOST4, GW4 = IPv4Address("10.70.0.10"), IPv4Address("10.70.0.1")
HOST6, GW6 = IPv6Address("fd00:70::10"), IPv6Address("fe80::1")
GUEST4, GUEST4B, FREE4 = map(IPv4Address, ("10.70.0.50", "10.70.0.60", "10.70.0.99"))
GUEST6 = IPv6Address("fd00:70::50")
PROVIDER_LL = nd.link_local_eui64(PROVIDER)
GUEST_LL = nd.link_local_eui64(GUEST)
CFG = ProxyConfig(NAT, frozenset({HOST4}), frozenset({HOST6}), frozenset({GW4, GW6}))
BASE, GUEST_COOKIE = cookie(KIND_BASE), cookie(KIND_GUEST)
OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY, OFPT_SET_CONFIG, OFPT_FLOW_MOD = 2, 3, 9, 14
OFPT_PACKET_OUT, OFPT_BARRIER_REQUEST, OFPT_PACKET_IN, OFPT_FLOW_REMOVED = 13, 20, 10, 11
OFPRR_IDLE_TIMEOUT, OFPRR_DELETE = 0, 2
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
OVS_OFCTL = shutil.which("ovs-ofctl") or shutil.which("ovs-ofctl", path="/usr/bin")


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(limits: Limits | None = None) -> tuple[Controller, Clock]:
    clock = Clock()
    if limits is None:
        return Controller(CFG, clock), clock
    return Controller(CFG, clock, limits=limits), clock


def learned_index(ctl: Controller, ip: IPv4Address | IPv6Address) -> int:
    """The index the controller gave a guest address it learned."""
    binding = ctl.addresses.get(ip)
    assert binding is not None, ip
    return binding.index


# --- messages from the switch, by hand ----------------------------------------------


def oxm(field: int, value: bytes) -> bytes:
    return struct.pack("!HBB", 0x8000, field << 1, len(value)) + value


def match_bytes(*oxms: bytes) -> bytes:
    body = b"".join(oxms)
    length = 4 + len(body)
    return struct.pack("!HH", 1, length) + body + b"\0" * (-length % 8)


def in_port_oxm(port: int) -> bytes:
    return oxm(0, struct.pack("!I", port))


def header(msg_type: int, xid: int, body: bytes, version: int = 4) -> bytes:
    return struct.pack("!BBHI", version, msg_type, 8 + len(body), xid) + body


def packet_in(frame: bytes, port: int | None, pin_cookie: int = BASE, *, version: int = 4,
              reason: int = 0) -> bytes:  # fmt: skip
    match = match_bytes(in_port_oxm(port)) if port is not None else match_bytes()
    fixed = struct.pack("!IHBBQ", 0xFFFFFFFF, len(frame), reason, 0, pin_cookie)
    return header(OFPT_PACKET_IN, 0, fixed + match + b"\0\0" + frame, version)


def flow_removed(fr_cookie: int, reason: int, ip: IPv4Address | IPv6Address) -> bytes:
    if isinstance(ip, IPv4Address):
        fields = (in_port_oxm(1), oxm(5, b"\x08\x00"), oxm(12, ip.packed))
    else:
        fields = (in_port_oxm(1), oxm(5, b"\x86\xdd"), oxm(27, ip.packed))
    fixed = struct.pack("!QHBBIIHHQQ", fr_cookie, 200, reason, 0, 301, 0, 300, 0, 12, 1200)
    return header(OFPT_FLOW_REMOVED, 0, fixed + match_bytes(*fields))


# --- what the controller sends, taken apart by hand ----------------------------------

SET_FIELDS = {3: "eth_dst", 4: "eth_src", 24: "arp_sha", 25: "arp_tha", 32: "nd_sll", 33: "nd_tll"}


@dataclass(frozen=True)
class FlowMod:
    xid: int
    cookie: int
    cookie_mask: int
    table_id: int
    command: int
    idle_timeout: int
    priority: int
    flags: int
    match: of.Match
    actions: tuple[of.Action, ...]

    def flow(self) -> Flow:
        return Flow(self.priority, self.match, self.actions, self.cookie, self.idle_timeout,
                    self.flags)  # fmt: skip


@dataclass(frozen=True)
class PacketOut:
    xid: int
    in_port: int
    actions: tuple[of.Action, ...]
    data: bytes


@dataclass(frozen=True)
class Other:
    type: int
    xid: int
    body: bytes


def parse_actions(data: bytes) -> tuple[of.Action, ...]:
    out: list[of.Action] = []
    pos = 0
    while pos < len(data):
        kind, length = struct.unpack_from("!HH", data, pos)
        assert length >= 8 and length % 8 == 0 and pos + length <= len(data)
        if kind == 0:
            port, max_len = struct.unpack_from("!IH", data, pos + 4)
            assert length == 16
            out.append(of.Output(port, max_len))
        else:
            assert kind == 25, kind
            oxm_class, field, size = struct.unpack_from("!HBB", data, pos + 4)
            assert oxm_class == 0x8000 and not field & 1 and size == 6
            out.append(of.SetField(SET_FIELDS[field >> 1], data[pos + 8 : pos + 8 + size]))
        pos += length
    return tuple(out)


def parse(msg: bytes) -> FlowMod | PacketOut | Other:
    version, kind, length, xid = struct.unpack_from("!BBHI", msg)
    assert version == 4 and length == len(msg)
    if kind == OFPT_FLOW_MOD:
        (ck, mask, table, command, idle, hard, prio, buffer_id, out_port, out_group, flags) = (
            struct.unpack_from("!QQBBHHHIIIH2x", msg, 8)
        )
        assert hard == 0 and buffer_id == out_port == out_group == 0xFFFFFFFF
        match, pos = of.Match.decode(msg, 48)
        actions: tuple[of.Action, ...] = ()
        if pos < len(msg):
            itype, ilen = struct.unpack_from("!HH", msg, pos)
            assert itype == 4 and pos + ilen == len(msg)
            actions = parse_actions(msg[pos + 8 :])
        return FlowMod(xid, ck, mask, table, command, idle, prio, flags, match, actions)
    if kind == OFPT_PACKET_OUT:
        buffer_id, in_port, alen = struct.unpack_from("!IIH6x", msg, 8)
        assert buffer_id == 0xFFFFFFFF
        return PacketOut(xid, in_port, parse_actions(msg[24 : 24 + alen]), msg[24 + alen :])
    return Other(kind, xid, msg[8:])


def parse_all(msgs: list[bytes]) -> list[FlowMod | PacketOut | Other]:
    return [parse(m) for m in msgs]


def adds(parsed: list[FlowMod | PacketOut | Other], kind: int | None = None) -> list[Flow]:
    return [
        p.flow()
        for p in parsed
        if isinstance(p, FlowMod)
        and p.command == 0
        and (kind is None or ofrules.cookie_kind(p.cookie) == kind)
    ]


def deletes(parsed: list[FlowMod | PacketOut | Other]) -> list[FlowMod]:
    return [p for p in parsed if isinstance(p, FlowMod) and p.command != 0]


def packet_outs(parsed: list[FlowMod | PacketOut | Other]) -> list[PacketOut]:
    return [p for p in parsed if isinstance(p, PacketOut)]


def assert_delete_by_cookie(p: FlowMod, want: int) -> None:
    assert (p.command, p.table_id, p.cookie, p.cookie_mask) == (3, 0xFF, want, (1 << 64) - 1)
    assert p.match == of.Match() and p.actions == ()


# --- frames -------------------------------------------------------------------------


def uplink_arp(tpa: IPv4Address, sha: bytes = PROVIDER) -> bytes:
    return frames.arp_request(sha, GW4, tpa).frame()


def uplink_ns(target: IPv6Address) -> bytes:
    return nd.ns_frame(PROVIDER, PROVIDER_LL, target)


def guest_arp(spa: IPv4Address = GUEST4, mac: bytes = GUEST) -> bytes:
    return frames.arp_request(mac, spa, GW4).frame()


def guest_na(target: IPv6Address = GUEST6, mac: bytes = GUEST) -> bytes:
    advert = nd.NeighborAdvertisement(target, override=True, tllao=mac)
    return nd.na_frame(mac, target, nd.ALL_NODES, advert)


Parsed = list[FlowMod | PacketOut | Other]


def learned(ctl: Controller, frame: bytes = b"", port: int = 3) -> Parsed:
    return parse_all(ctl.handle(packet_in(frame or guest_arp(), port)))


def answer(ctl: Controller, frame: bytes) -> bytes | None:
    """The frame the controller sends the provider for ``frame``, or None."""
    out = parse_all(ctl.handle(packet_in(frame, 1)))
    if not out:
        return None
    (po,) = out
    assert isinstance(po, PacketOut)
    assert po.in_port == of.OFPP_CONTROLLER and po.actions == (of.Output(1),)
    return po.data


# --- connect ------------------------------------------------------------------------


def test_connected_sets_config_replaces_the_base_flows_and_ends_with_a_barrier() -> None:
    ctl, _ = make()
    out = parse_all(ctl.connected())
    first, delete, *added, last = out
    assert isinstance(first, Other) and first.type == OFPT_SET_CONFIG
    assert struct.unpack("!HH", first.body) == (0, 0xFFFF)  # whole packets to us
    assert isinstance(delete, FlowMod)
    assert_delete_by_cookie(delete, BASE)
    assert isinstance(last, Other) and last.type == OFPT_BARRIER_REQUEST
    assert adds(out) == ofrules.base_flows([])
    assert len(added) == 7
    xids = [m.xid for m in out]
    assert len(set(xids)) == len(xids)


def test_connected_uses_the_injected_xids() -> None:
    ctl = Controller(CFG, Clock(), xids=itertools.count(0xABC0))
    out = parse_all(ctl.connected())
    assert [m.xid for m in out] == list(range(0xABC0, 0xABC0 + len(out)))


def test_connected_after_learning_restores_guest_flows_too() -> None:
    ctl, _ = make()
    learned(ctl)
    out = parse_all(ctl.connected())
    assert adds(out, KIND_BASE) == ofrules.base_flows([3])
    assert adds(out, KIND_GUEST) == ofrules.guest_flows(Guest(3, GUEST), NAT, [3])
    assert isinstance(out[-1], Other) and out[-1].type == OFPT_BARRIER_REQUEST


def test_restore_messages_are_the_base_flows() -> None:
    out = parse_all(ofcontrol.restore_messages((5, 6)))
    assert isinstance(out[0], FlowMod)
    assert_delete_by_cookie(out[0], BASE)
    assert adds(out) == ofrules.base_flows([5, 6]) and len(out) == 8


# --- echo, hello, errors, garbage ---------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"ping", bytes(range(256))])
def test_echo_request_gets_a_reply_with_the_same_xid_and_data(data: bytes) -> None:
    ctl, _ = make()
    (reply,) = ctl.handle(header(OFPT_ECHO_REQUEST, 0xDEADBEEF, data))
    assert reply == header(OFPT_ECHO_REPLY, 0xDEADBEEF, data)


def test_hello_echo_reply_and_barrier_reply_need_no_answer() -> None:
    ctl, _ = make()
    assert ctl.handle(of.hello(5)) == []
    assert ctl.handle(header(OFPT_ECHO_REPLY, 1, b"x")) == []
    assert ctl.handle(header(21, 2, b"")) == []


def test_switch_errors_are_counted() -> None:
    ctl, _ = make()
    assert ctl.handle(header(1, 9, struct.pack("!HH", 4, 9) + b"\x04\x0e\x00\x48")) == []
    assert ctl.stats.errors == 1


@pytest.mark.parametrize(
    "msg",
    [
        b"",
        b"\x04",
        b"\x04\x0a\x00\x08",
        header(OFPT_PACKET_IN, 1, b"")[:-1] + b"\0\0",  # length field disagrees
        header(OFPT_PACKET_IN, 1, b"\0" * 4),  # truncated packet-in
        packet_in(frames.arp_request(PROVIDER, GW4, HOST4).frame(), 1, version=1),
        packet_in(b"", 1)[:-2],  # no padding after the match
        header(OFPT_PACKET_IN, 1, struct.pack("!IHBBQ", 0, 0, 0, 0, 0) + b"\0\x02\0\x40"),
        header(OFPT_FLOW_REMOVED, 1, b"\xff" * 10),
        b"\xff" * 64,
    ],
)
def test_undecodable_messages_are_counted_not_raised(msg: bytes) -> None:
    ctl, _ = make()
    assert ctl.handle(msg) == []
    assert ctl.stats.errors == 1


@FUZZ
@given(st.binary(max_size=200))
def test_handle_never_raises_on_bytes(msg: bytes) -> None:
    ctl, _ = make()
    for reply in ctl.handle(msg):
        parse(reply)


@FUZZ
@given(st.binary(max_size=120), st.integers(3, of.OVS_PORTS - 1), st.sampled_from([BASE, 0]))
def test_handle_never_raises_on_packet_ins_from_guest_ports(
    frame: bytes, port: int, pin_cookie: int
) -> None:
    ctl, _ = make()
    for reply in ctl.handle(packet_in(frame, port, pin_cookie)):
        parse(reply)
    for reply in ctl.handle(packet_in(frame, 1, pin_cookie)):
        parse(reply)


@pytest.mark.parametrize("port", [0, of.OVS_PORTS, 0xFFFFFEFF])
def test_handle_never_raises_on_out_of_range_in_ports(port: int) -> None:
    ctl, _ = make()
    assert ctl.handle(packet_in(guest_arp(), port)) == []
    assert ctl.guests == {}


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


# --- OVS reads it -------------------------------------------------------------------


@pytest.mark.skipif(OVS_OFCTL is None, reason="ovs-ofctl is not installed")
def test_ovs_ofctl_decodes_everything_the_controller_sends() -> None:
    assert OVS_OFCTL is not None
    ctl, _ = make()
    msgs = [*ctl.connected(), *ctl.handle(packet_in(guest_arp(), 3))]
    msgs += ctl.handle(packet_in(guest_na(), 3, GUEST_COOKIE))
    msgs += ctl.handle(packet_in(uplink_arp(GUEST4), 1))
    msgs += ctl.handle(packet_in(uplink_ns(HOST6), 1))
    index = learned_index(ctl, GUEST4)
    msgs += ctl.handle(flow_removed(cookie(KIND_ADDR, index), OFPRR_IDLE_TIMEOUT, GUEST4))
    msgs += ctl.handle(header(OFPT_ECHO_REQUEST, 7, b"abc"))
    kinds = set()
    for msg in msgs:
        res = subprocess.run([OVS_OFCTL, "ofp-print", msg.hex()], capture_output=True,
                             text=True, timeout=10)  # fmt: skip
        text = res.stdout + res.stderr
        assert res.returncode == 0, text
        for word in ("error", "bad", "truncated", "warn"):
            assert word not in text.lower(), text
        kinds.add(res.stdout.split(" ", 1)[0])
    assert kinds == {"OFPT_SET_CONFIG", "OFPT_FLOW_MOD", "OFPT_BARRIER_REQUEST",
                     "OFPT_PACKET_OUT", "OFPT_ECHO_REPLY"}  # fmt: skip
