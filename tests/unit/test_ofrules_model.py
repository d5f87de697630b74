"""br-mosnet's OpenFlow table (mosnet.ovs.ofrules) run through a model of OVS's lookup.

The model: highest priority wins, actions applied in order. Every combination
of frame kind, source, destination and in_port runs through a table with two
guests, so that no frame from a guest port can leave the uplink with anything
but the NAT MAC.
"""

from __future__ import annotations

import itertools
from ipaddress import IPv4Address, IPv6Address

from mosnet.l2 import frames, nd
from mosnet.ovs import ofrules
from mosnet.ovs.ofrules import HOST_PORT, NIC_PORT, Flow, render
from mosnet.ovs.openflow import OFPP_CONTROLLER, Match, SetField
from tests.unit.helpers.of_rules import (
    A4,
    A6,
    ETH_ARP,
    ETH_IP,
    ETH_IPV6,
    GUEST_PORTS,
    GW4,
    GW6,
    MAC_A,
    MAC_B,
    NAT,
    PROVIDER,
    STRANGER,
    A,
    B,
    full_table,
)

# --- a model of the table ---------------------------------------------------------


def packet_fields(frame: bytes, in_port: int) -> dict[str, object]:
    """The match fields OVS would extract from ``frame`` (those Match knows, plus nd_*)."""
    eth = frames.Ethernet.decode(frame)
    f: dict[str, object] = {"in_port": in_port, "eth_dst": eth.dst, "eth_src": eth.src,
                            "eth_type": eth.ethertype}  # fmt: skip
    if eth.ethertype == ETH_ARP:
        arp = frames.Arp.decode(eth.payload)
        f.update(arp_op=arp.op, arp_spa=arp.spa, arp_tpa=arp.tpa, arp_sha=arp.sha, arp_tha=arp.tha)
    elif eth.ethertype == ETH_IP:
        f.update(ip_proto=eth.payload[9], ipv4_dst=IPv4Address(eth.payload[16:20]))
    elif eth.ethertype == ETH_IPV6:
        ip6 = nd.IPv6.decode(eth.payload)
        f.update(ip_proto=ip6.next_header, ipv6_src=ip6.src, ipv6_dst=ip6.dst)
        if ip6.next_header == 58:
            f.update(icmpv6_type=ip6.payload[0], icmpv6_code=ip6.payload[1])
            if ip6.payload[0] in (135, 136):
                msg = nd.decode_ndp(ip6)
                f["nd_target"] = msg.target
                lla = msg.sllao if isinstance(msg, nd.NeighborSolicitation) else msg.tllao
                if lla is not None:
                    f["nd_sll" if ip6.payload[0] == 135 else "nd_tll"] = lla
            elif ip6.payload[0] in ofrules.ND_DROPPED:  # an option no set_field reaches
                f["other_lla"] = eth.src
    return f


def matches(m: Match, pkt: dict[str, object]) -> bool:
    for name, want in vars(m).items():
        if want is None or name == "eth_dst_mask":
            continue
        have = pkt.get(name)
        if name == "eth_dst" and m.eth_dst_mask is not None:
            mask = int.from_bytes(m.eth_dst_mask)
            assert isinstance(have, bytes)
            if int.from_bytes(have) & mask != int.from_bytes(want) & mask:
                return False
        elif have != want:
            return False
    return True


def lookup(flows: list[Flow], pkt: dict[str, object]) -> Flow | None:
    hits = [f for f in flows if matches(f.match, pkt)]
    if not hits:
        return None
    top = max(f.priority for f in hits)
    winners = {f.actions for f in hits if f.priority == top}
    assert len(winners) == 1, f"ambiguous: {[render(f) for f in hits if f.priority == top]}"
    return next(f for f in hits if f.priority == top)


def run(flows: list[Flow], pkt: dict[str, object]) -> list[tuple[int, dict[str, object]]]:
    """(port, the packet as it leaves there) for each output of the winning flow."""
    flow = lookup(flows, pkt)
    state, out = dict(pkt), []
    for action in flow.actions if flow else ():
        if isinstance(action, SetField):
            if action.field in ("nd_sll", "nd_tll") and action.field not in state:
                continue  # OVS rewrites an option that is there, adds none
            state[action.field] = action.value
        else:
            out.append((action.port, dict(state)))
    return out


def _icmp6(src: IPv6Address, dst: IPv6Address, icmp_type: int, body: bytes = b"\0" * 20) -> bytes:
    packet = nd.IPv6(src, dst, 58, 255, bytes((icmp_type, 0, 0, 0)) + body)
    return packet.encode()


def ipv4(src: bytes, dst: bytes, src_ip: IPv4Address, dst_ip: IPv4Address) -> bytes:
    header = bytes.fromhex("4500001c0001000040110000") + src_ip.packed + dst_ip.packed
    return frames.Ethernet(dst, src, ETH_IP, header + b"\0" * 8).encode()


def frame_of(kind: str, src: bytes, dst: bytes) -> bytes:
    """One frame of ``kind`` from ``src`` to ``dst`` (payload addresses follow the MACs)."""
    ll = nd.link_local_eui64(src)
    if kind == "arp_request":
        return frames.Ethernet(
            dst, src, ETH_ARP, frames.arp_request(src, A4, GW4).encode()
        ).encode()
    if kind == "arp_reply":
        payload = frames.arp_reply(src, A4, dst, GW4).encode()
        return frames.Ethernet(dst, src, ETH_ARP, payload).encode()
    if kind == "ipv4":
        return ipv4(src, dst, A4, GW4)
    if kind == "ipv6_udp":
        packet = nd.IPv6(A6, IPv6Address("2001:db8::1"), 17, 64, b"\0" * 8).encode()
        return frames.Ethernet(dst, src, ETH_IPV6, packet).encode()
    if kind == "ns":
        icmp = nd.NeighborSolicitation(GW6, src).encode(ll, nd.solicited_node(GW6))
        packet = nd.IPv6(ll, nd.solicited_node(GW6), 58, 255, icmp).encode()
        return frames.Ethernet(dst, src, ETH_IPV6, packet).encode()
    if kind == "dad_ns":
        icmp = nd.NeighborSolicitation(A6).encode(nd.UNSPECIFIED6, nd.solicited_node(A6))
        packet = nd.IPv6(nd.UNSPECIFIED6, nd.solicited_node(A6), 58, 255, icmp).encode()
        return frames.Ethernet(dst, src, ETH_IPV6, packet).encode()
    if kind == "na":
        advert = nd.NeighborAdvertisement(A6, solicited=True, tllao=src)
        return nd.na_frame(src, A6, GW6, advert, dst_mac=dst)
    if kind in ("rs", "ra", "redirect"):
        icmp_type = {"rs": 133, "ra": 134, "redirect": 137}[kind]
        packet = _icmp6(ll, IPv6Address("ff02::2"), icmp_type, b"\0" * 4 + b"\x01\x01" + src)
        return frames.Ethernet(dst, src, ETH_IPV6, packet).encode()
    raise AssertionError(kind)


KINDS = ("arp_request", "arp_reply", "ipv4", "ipv6_udp", "ns", "dad_ns", "na", "rs", "ra",
         "redirect")  # fmt: skip
SOURCES = (MAC_A, MAC_B, STRANGER, NAT, PROVIDER)
DESTINATIONS = (frames.BROADCAST_MAC, NAT, MAC_A, MAC_B, PROVIDER, bytes.fromhex("3333ff000001"),
                bytes.fromhex("01005e000001"), STRANGER)  # fmt: skip
PORTS = (NIC_PORT, HOST_PORT, 3, 4, 5)


def test_model_no_guest_frame_leaves_the_uplink_unrewritten() -> None:
    table = full_table()
    combos = 0
    for kind, src, dst, port in itertools.product(KINDS, SOURCES, DESTINATIONS, PORTS):
        pkt = packet_fields(frame_of(kind, src, dst), port)
        out = run(table, pkt)
        combos += 1
        if port in GUEST_PORTS or port == 5:
            for out_port, sent in out:
                if out_port != NIC_PORT:
                    continue
                where = (kind, src.hex(), dst.hex(), port)
                assert sent["eth_src"] == NAT, where
                for field in ("arp_sha", "nd_sll", "nd_tll", "other_lla"):
                    assert sent.get(field, NAT) == NAT, (where, field)
        if port == NIC_PORT:
            for out_port, sent in out:
                assert out_port != NIC_PORT  # no hairpin back to the provider
                if out_port in (A.port, B.port):
                    mac = MAC_A if out_port == A.port else MAC_B
                    dst_out = sent["eth_dst"]
                    assert isinstance(dst_out, bytes)
                    assert dst_out[0] & 1 or dst_out == mac, (kind, dst.hex(), out_port)
    assert combos == len(KINDS) * len(SOURCES) * len(DESTINATIONS) * len(PORTS)


def test_model_unknown_guests_go_to_the_controller_only() -> None:
    table = full_table()
    for kind in KINDS:
        for port, src in ((5, STRANGER), (5, MAC_A), (3, MAC_B), (3, STRANGER)):
            pkt = packet_fields(frame_of(kind, src, PROVIDER), port)
            assert [p for p, _ in run(table, pkt)] == [OFPP_CONTROLLER], (kind, port, src)


def test_model_guest_arp_broadcast() -> None:
    out = run(full_table(), packet_fields(frame_of("arp_request", MAC_A, frames.BROADCAST_MAC), 3))
    assert [p for p, _ in out] == [OFPP_CONTROLLER, HOST_PORT, B.port, NIC_PORT]
    for port, sent in out[:3]:  # inside, the guest keeps its own MAC
        assert sent["eth_src"] == sent["arp_sha"] == MAC_A, port
    assert out[3][1]["eth_src"] == out[3][1]["arp_sha"] == NAT


def test_model_guest_ndp_is_dropped_or_rewritten() -> None:
    table = full_table()
    for kind in ("rs", "ra", "redirect"):
        assert run(table, packet_fields(frame_of(kind, MAC_A, PROVIDER), 3)) == []
    ns = run(table, packet_fields(frame_of("ns", MAC_A, bytes.fromhex("3333ff000001")), 3))
    assert ns[-1][0] == NIC_PORT and ns[-1][1]["nd_sll"] == NAT
    na = run(table, packet_fields(frame_of("na", MAC_A, PROVIDER), 3))
    assert [p for p, _ in na] == [OFPP_CONTROLLER, HOST_PORT, B.port, NIC_PORT]
    assert na[-1][1]["nd_tll"] == NAT and na[-1][1]["eth_src"] == NAT


def test_model_uplink_traffic_for_guest_addresses() -> None:
    table = full_table()
    to_a4 = ipv4(PROVIDER, NAT, GW4, A4)
    assert [(p, s["eth_dst"]) for p, s in run(table, packet_fields(to_a4, 1))] == [(3, MAC_A)]
    reply = frames.arp_reply(PROVIDER, GW4, NAT, A4).frame(dst=NAT)
    out = run(table, packet_fields(reply, 1))
    assert [(p, s["eth_dst"], s["arp_tha"]) for p, s in out] == [(3, MAC_A, MAC_A)]
    request = frames.arp_request(PROVIDER, GW4, A4).frame()
    assert [p for p, _ in run(table, packet_fields(request, 1))] == [OFPP_CONTROLLER, HOST_PORT]
    na = nd.na_frame(PROVIDER, GW6, A6, nd.NeighborAdvertisement(GW6, solicited=True,
                     tllao=PROVIDER), dst_mac=NAT)  # fmt: skip
    assert [(p, s["eth_dst"]) for p, s in run(table, packet_fields(na, 1))] == [(3, MAC_A)]
    other = frames.arp_request(PROVIDER, GW4, IPv4Address("10.70.0.99")).frame(dst=NAT)
    assert [p for p, _ in run(table, packet_fields(other, 1))] == [OFPP_CONTROLLER, HOST_PORT]


def test_model_host_and_guests_talk_inside() -> None:
    table = full_table()
    host_to_a = frame_of("ipv4", NAT, MAC_A)
    assert [p for p, _ in run(table, packet_fields(host_to_a, HOST_PORT))] == [A.port]
    a_to_host = frame_of("ipv4", MAC_A, NAT)
    assert [p for p, _ in run(table, packet_fields(a_to_host, A.port))] == [HOST_PORT]
    a_to_b = frame_of("ipv6_udp", MAC_A, MAC_B)
    assert [p for p, _ in run(table, packet_fields(a_to_b, A.port))] == [B.port]
