"""The NDP relay of the Linux-bridge backend (mosnet.macnat.ndprelay): ``rewrite``.

``rewrite`` is checked with mosnet.l2.nd (checksum verified) and re-parsed by
scapy, whose recomputed ICMPv6 checksum must equal ours.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import Ether

from mosnet.l2 import frames, nd
from mosnet.macnat.ndprelay import rewrite
from tests.unit.helpers.ndp_frames import (
    GUEST,
    GUEST4,
    GUEST6,
    GUEST_LL,
    GW4,
    GW6,
    NAT,
    PROVIDER,
    PROVIDER_LL,
    _ipv6_frame,
    decoded,
    na,
    ns,
    with_ip6,
)


def scapy_checksum_ok(frame: bytes, layer: type) -> bool:
    pkt = Ether(frame)
    sent = pkt[layer].cksum
    del pkt[layer].cksum
    return bool(Ether(bytes(pkt))[layer].cksum == sent)


def test_ns_gets_the_nat_mac_outside_and_in_its_sllao() -> None:
    frame = ns()
    out = rewrite(frame, NAT)
    assert out is not None
    eth, ip6, msg = decoded(out)
    orig_eth, orig_ip6, _ = decoded(frame)
    assert (eth.src, eth.dst, eth.ethertype) == (NAT, orig_eth.dst, frames.ETH_P_IPV6)
    assert (ip6.src, ip6.dst, ip6.hop_limit) == (orig_ip6.src, orig_ip6.dst, 255)
    assert msg == nd.NeighborSolicitation(GW6, NAT)
    assert GUEST not in out
    assert scapy_checksum_ok(out, ICMPv6ND_NS)


@pytest.mark.parametrize("flags", [(True, True, False), (False, False, True), (True, False, True),
                                   (False, True, False)])  # fmt: skip
def test_na_gets_the_nat_mac_in_its_tllao_and_keeps_its_flags(
    flags: tuple[bool, bool, bool],
) -> None:
    dst = nd.ALL_NODES if not flags[1] else PROVIDER_LL
    frame = na(flags, dst=dst)
    out = rewrite(frame, NAT)
    assert out is not None
    eth, ip6, msg = decoded(out)
    assert eth.src == NAT and eth.dst == frames.Ethernet.decode(frame).dst
    assert (ip6.src, ip6.dst, ip6.hop_limit) == (GUEST6, dst, 255)
    assert msg == nd.NeighborAdvertisement(GUEST6, *flags, tllao=NAT)
    assert GUEST not in out
    assert scapy_checksum_ok(out, ICMPv6ND_NA)
    na_layer = Ether(out)[ICMPv6ND_NA]
    assert (na_layer.R, na_layer.S, na_layer.O) == flags


def test_na_without_tllao_stays_without() -> None:
    out = rewrite(na(tllao=None), NAT)
    assert out is not None
    _, _, msg = decoded(out)
    assert msg == nd.NeighborAdvertisement(GUEST6, True, True, False, None)
    assert frames.Ethernet.decode(out).src == NAT


def test_dad_ns_stays_without_an_option() -> None:
    frame = ns(src=nd.UNSPECIFIED6, target=GUEST6)
    out = rewrite(frame, NAT)
    assert out is not None
    eth, ip6, msg = decoded(out)
    assert eth.src == NAT and eth.dst == nd.multicast_mac(nd.solicited_node(GUEST6))
    assert ip6.src == nd.UNSPECIFIED6 and ip6.dst == nd.solicited_node(GUEST6)
    assert msg == nd.NeighborSolicitation(GUEST6, None)
    assert len(out) == len(frame)


def test_traffic_class_and_flow_label_are_kept() -> None:
    out = rewrite(with_ip6(ns(), tc=0xB8, fl=0x12345), NAT)
    assert out is not None
    _, ip6, _ = decoded(out)
    assert (ip6.traffic_class, ip6.flow_label) == (0xB8, 0x12345)


def test_an_offloaded_checksum_is_filled_in() -> None:
    frame = bytearray(ns())
    frame[14 + 40 + 2 : 14 + 40 + 4] = b"\0\0"  # left to the NIC by the guest's kernel
    out = rewrite(bytes(frame), NAT)
    assert out is not None
    decoded(out)  # check_sum=True


def test_other_options_are_dropped_and_the_sllao_kept() -> None:
    frame = ns()
    eth, ip6, _ = decoded(frame)
    nonce = bytes((14, 1)) + b"\x11" * 6
    icmp = ip6.payload + nonce
    packet = nd.IPv6(ip6.src, ip6.dst, 58, 255, icmp).encode()
    out = rewrite(frames.Ethernet(eth.dst, eth.src, frames.ETH_P_IPV6, packet).encode(), NAT)
    assert out is not None
    _, ip6_out, msg = decoded(out)
    assert msg == nd.NeighborSolicitation(GW6, NAT)
    assert b"\x11" * 6 not in out


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x02" * 13,
        frames.arp_request(GUEST, GUEST4, GW4).frame(),
        _ipv6_frame(b"\0" * 8, next_header=17),  # UDP
        _ipv6_frame(bytes((128, 0, 0, 0)) + b"\0" * 4),  # echo request
        _ipv6_frame(bytes((133, 0, 0, 0)) + b"\0" * 4 + b"\x01\x01" + GUEST),  # RS
        _ipv6_frame(bytes((135, 0, 0, 0)) + b"\0" * 8),  # NS cut short
        _ipv6_frame(bytes((135, 1, 0, 0)) + b"\0" * 20),  # code 1
        with_ip6(ns(), hops=64),  # off-link
        ns()[:60],  # truncated IPv6 payload
        frames.Ethernet(PROVIDER, GUEST, 0x0100, b"\0" * 46).encode(),  # 802.3
    ],
)
def test_non_ndp_and_malformed_frames_give_none(frame: bytes) -> None:
    assert rewrite(frame, NAT) is None


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=40), st.integers(0, 120), st.booleans())
def test_rewrite_never_raises(tail: bytes, cut: int, ndp_prefix: bool) -> None:
    frame = (ns()[: 14 + cut] + tail) if ndp_prefix else tail
    out = rewrite(frame, NAT)
    if out is not None:
        eth, _, msg = decoded(out)
        assert eth.src == NAT
        assert isinstance(msg, nd.NeighborSolicitation | nd.NeighborAdvertisement)


def test_ipv6_scapy_cross_check_of_addresses() -> None:
    out = rewrite(ns(), NAT)
    assert out is not None
    pkt = Ether(out)
    assert pkt.src == frames.mac_str(NAT) and pkt[IPv6].hlim == 255
    assert pkt[IPv6].src == str(GUEST_LL) and pkt[ICMPv6ND_NS].tgt == str(GW6)
