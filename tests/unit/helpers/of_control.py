"""The OpenFlow controller's test kit: a fake clock, switch messages by hand, replies taken apart.

Messages from the switch (packet-in, flow-removed, echo, error) are built by
hand with struct, independently of mosnet.ovs.openflow's encoders; what the
controller sends is taken apart again by hand (header, flow_mod fixed part,
instructions, actions, packet_out) with only the match left to
``openflow.Match.decode``. The clock is injected.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from mosnet.l2 import frames, nd
from mosnet.ovs import ofrules
from mosnet.ovs import openflow as of
from mosnet.ovs.ofcontrol import Controller
from mosnet.ovs.ofrules import KIND_BASE, KIND_GUEST, Flow, cookie
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
