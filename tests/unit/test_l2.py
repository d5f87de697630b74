"""mosnet.l2.frames and mosnet.l2.nd against known-good bytes and random input.

Known-good bytes are hand-written or scapy-built; scapy is only a test oracle
here, mosnet itself never imports it.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosnet.l2 import frames, nd

MAC = bytes.fromhex("525400123456")
GW_MAC = bytes.fromhex("02aabbccddee")
LL = IPv6Address("fe80::5054:ff:fe12:3456")
GW6 = IPv6Address("fe80::1")
EXAMPLES = int(os.environ.get("MOSNET_FUZZ_EXAMPLES", "3000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip

# Ether/IPv6/ICMPv6ND_NS/SrcLLAddr from scapy 2.8.0, checksum 0x7222 included.
NS_VECTOR = bytes.fromhex(
    "3333ff00000152540012345686dd6000000000203afffe80000000000000505400fffe123456"
    "ff0200000000000000000001ff0000018700722200000000fe800000000000000000000000000001"
    "0101525400123456"
)


def test_ethernet_roundtrip_pads_to_60() -> None:
    frame = frames.Ethernet(frames.BROADCAST_MAC, MAC, 0x1234, b"hi").encode()
    assert len(frame) == 60 and frame[:14] == b"\xff" * 6 + MAC + b"\x12\x34"
    back = frames.Ethernet.decode(frame)
    assert (back.dst, back.src, back.ethertype, back.payload[:2]) == (
        frames.BROADCAST_MAC, MAC, 0x1234, b"hi")  # fmt: skip


@pytest.mark.parametrize("data", [b"", b"\0" * 13, b"\0" * 12 + b"\x05\xdc"])
def test_ethernet_rejects(data: bytes) -> None:
    with pytest.raises(frames.FrameError):
        frames.Ethernet.decode(data)


def test_arp_request_bytes() -> None:
    arp = frames.arp_request(MAC, IPv4Address("10.0.0.2"), IPv4Address("10.0.0.1"))
    want = bytes.fromhex("0001080006040001525400123456 0a000002 000000000000 0a000001")
    assert arp.encode() == want
    assert arp.frame() == (b"\xff" * 6 + MAC + b"\x08\x06" + want).ljust(60, b"\0")
    assert frames.Arp.decode(arp.frame()[14:]) == arp


def test_arp_forms() -> None:
    probe = frames.arp_probe(MAC, IPv4Address("10.0.0.9"))
    assert probe.is_probe and probe.spa == IPv4Address(0) and not probe.is_gratuitous
    req, rep = frames.gratuitous_arps(MAC, IPv4Address("10.0.0.9"))
    assert req.op == frames.ARP_REQUEST and rep.op == frames.ARP_REPLY
    assert req.is_gratuitous and rep.is_gratuitous and req.tha == frames.ZERO_MAC
    assert rep.sha == req.sha == MAC


def test_arp_matches_scapy() -> None:
    from scapy.layers.l2 import ARP, Ether

    want = Ether(src=frames.mac_str(MAC), dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=2, hwsrc=frames.mac_str(MAC), psrc="10.1.2.3", hwdst="ff:ff:ff:ff:ff:ff", pdst="10.1.2.3"
    )
    assert frames.gratuitous_arps(MAC, IPv4Address("10.1.2.3"))[1].frame() == bytes(want).ljust(
        60, b"\0")  # fmt: skip


@pytest.mark.parametrize(
    "patch", [(0, b"\x00\x06"), (2, b"\x86\xdd"), (4, b"\x08"), (6, b"\0\x03")]
)
def test_arp_rejects(patch: tuple[int, bytes]) -> None:
    good = frames.arp_probe(MAC, IPv4Address("10.0.0.1")).encode()
    at, value = patch
    with pytest.raises(frames.FrameError):
        frames.Arp.decode(good[:at] + value + good[at + len(value) :])
    with pytest.raises(frames.FrameError):
        frames.Arp.decode(good[:27])


def test_addresses() -> None:
    assert nd.link_local_eui64(MAC) == LL
    assert nd.link_local_eui64(bytes.fromhex("020000000001")) == IPv6Address("fe80::ff:fe00:1")
    assert nd.solicited_node(IPv6Address("2001:db8::abcd:1234:5678")) == IPv6Address(
        "ff02::1:ff34:5678")  # fmt: skip
    assert nd.multicast_mac(IPv6Address("ff02::1:ff00:1")) == bytes.fromhex("3333ff000001")
    assert nd.multicast_mac(nd.ALL_NODES) == bytes.fromhex("333300000001")


def test_ns_known_vector() -> None:
    assert nd.ns_frame(MAC, LL, GW6) == NS_VECTOR


@pytest.mark.parametrize("target", ["fe80::1", "2a01:4f8:c17:1234::1", "fd00:97::1"])
def test_ns_matches_scapy(target: str) -> None:
    from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
    from scapy.layers.l2 import Ether

    tgt = IPv6Address(target)
    group = nd.solicited_node(tgt)
    want = (Ether(src=frames.mac_str(MAC), dst=frames.mac_str(nd.multicast_mac(group)))
            / IPv6(src=str(LL), dst=str(group), hlim=255) / ICMPv6ND_NS(tgt=target)
            / ICMPv6NDOptSrcLLAddr(lladdr=frames.mac_str(MAC)))  # fmt: skip
    assert nd.ns_frame(MAC, LL, tgt) == bytes(want)


def test_dad_ns_has_no_sllao() -> None:
    frame = nd.ns_frame(MAC, nd.UNSPECIFIED6, GW6)
    msg = nd.decode_ndp(nd.IPv6.decode(frame[14:]))
    assert msg == nd.NeighborSolicitation(GW6, None)


@pytest.mark.parametrize(("r", "s", "o"), [(0, 0, 1), (1, 1, 0), (1, 1, 1), (0, 0, 0)])
def test_na_matches_scapy(r: int, s: int, o: int) -> None:
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    from scapy.layers.l2 import Ether

    advert = nd.NeighborAdvertisement(GW6, bool(r), bool(s), bool(o), GW_MAC)
    want = (Ether(src=frames.mac_str(GW_MAC), dst=frames.mac_str(MAC))
            / IPv6(src=str(GW6), dst=str(LL), hlim=255) / ICMPv6ND_NA(tgt=str(GW6), R=r, S=s, O=o)
            / ICMPv6NDOptDstLLAddr(lladdr=frames.mac_str(GW_MAC)))  # fmt: skip
    ours = nd.na_frame(GW_MAC, GW6, LL, advert, dst_mac=MAC)
    assert ours == bytes(want)
    assert nd.parse_na(nd.IPv6.decode(ours[14:]), GW6) == advert


def test_unsolicited_na() -> None:
    addr = IPv6Address("2001:db8::5")
    frame = nd.unsolicited_na_frame(MAC, addr)
    eth = frames.Ethernet.decode(frame)
    ip = nd.IPv6.decode(eth.payload)
    assert eth.dst == bytes.fromhex("333300000001") and ip.dst == nd.ALL_NODES
    assert ip.src == addr and ip.hop_limit == 255
    na = nd.parse_na(ip, addr)
    assert na.override and not na.solicited and not na.router and na.tllao == MAC


def _na_packet(**change: Any) -> nd.IPv6:
    advert = nd.NeighborAdvertisement(GW6, solicited=True, tllao=GW_MAC)
    good = nd.IPv6.decode(nd.na_frame(GW_MAC, GW6, LL, advert, dst_mac=MAC)[14:])
    return dataclasses.replace(good, **change)


def _patched(offset: int, value: bytes) -> nd.IPv6:
    good = _na_packet()
    return _na_packet(payload=good.payload[:offset] + value + good.payload[offset + len(value) :])


def test_na_validation() -> None:
    assert nd.parse_na(_na_packet(), GW6).solicited
    bad = {
        "hop limit 254": _na_packet(hop_limit=254),
        "not ICMPv6": _na_packet(next_header=17),
        "code 1": _patched(1, b"\x01"),
        "bad checksum": _patched(2, b"\0\0"),
        "short": _na_packet(payload=_na_packet().payload[:23]),
        "zero-length option": _patched(24, b"\x02\x00"),
        "option past end": _patched(24, b"\x02\x03"),
        "solicited to multicast": _na_packet(dst=nd.ALL_NODES),
        "NS, not NA": _patched(0, b"\x87"),
    }
    for why, packet in bad.items():
        with pytest.raises(frames.FrameError):
            nd.parse_na(packet, GW6)
            pytest.fail(why)
    with pytest.raises(frames.FrameError, match="not fe80::2"):
        nd.parse_na(_na_packet(), IPv6Address("fe80::2"))
    # without checksum checking (offloaded frames) only the checksum case passes
    assert nd.parse_na(_patched(2, b"\0\0"), GW6, check_sum=False).target == GW6


def test_na_multicast_target_rejected() -> None:
    advert = nd.NeighborAdvertisement(nd.ALL_NODES, tllao=GW_MAC)
    frame = nd.na_frame(GW_MAC, GW6, nd.ALL_NODES, advert)
    with pytest.raises(frames.FrameError, match="multicast target"):
        nd.decode_ndp(nd.IPv6.decode(frame[14:]))


def test_ipv6_decode_drops_padding_and_rejects_lies() -> None:
    frame = nd.unsolicited_na_frame(MAC, GW6) + b"\0" * 10
    assert len(nd.IPv6.decode(frame[14:]).payload) == 32
    raw = frame[14:]
    with pytest.raises(frames.FrameError):
        nd.IPv6.decode(raw[:4] + struct.pack("!H", 999) + raw[6:])
    with pytest.raises(frames.FrameError):
        nd.IPv6.decode(b"\x40" + raw[1:])


def _decode_all(data: bytes) -> None:
    for decoder in (frames.Ethernet.decode, frames.Arp.decode, nd.IPv6.decode):
        try:
            decoder(data)
        except frames.FrameError:
            pass
    try:
        ip = nd.IPv6.decode(data)
        nd.decode_ndp(ip)
        nd.decode_ndp(ip, check_sum=False)
    except frames.FrameError:
        pass


@FUZZ
@given(st.binary(max_size=200))
def test_decoders_raise_only_frame_error(data: bytes) -> None:
    _decode_all(data)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
       st.integers(0, 120), st.booleans())  # fmt: skip
def test_mutated_ndp_raise_only_frame_error(
    edits: list[tuple[int, int]], cut: int, multicast: bool
) -> None:
    # near-valid input reaches the deep checks that random bytes rarely get to
    dst = nd.ALL_NODES if multicast else LL
    advert = nd.NeighborAdvertisement(GW6, override=True, tllao=GW_MAC)
    raw = bytearray(nd.na_frame(GW_MAC, GW6, dst, advert, dst_mac=MAC)[14:])
    for at, value in edits:
        if at < len(raw):
            raw[at] = value
    _decode_all(bytes(raw[: len(raw) - cut]))
    # fix the checksum so mutated options and flags get past it
    try:
        ip = nd.IPv6.decode(bytes(raw))
        body = ip.payload[:2] + b"\0\0" + ip.payload[4:]
        fixed = body[:2] + struct.pack("!H", nd.icmpv6_checksum(ip.src, ip.dst, body)) + body[4:]
        nd.decode_ndp(nd.IPv6(ip.src, ip.dst, ip.next_header, ip.hop_limit, fixed))
    except frames.FrameError:
        pass
