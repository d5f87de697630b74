"""Addresses and NDP frames shared by the NDP relay tests (mosnet.macnat.ndprelay)."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

from mosnet.l2 import frames, nd

NAT = bytes.fromhex("02aa00000001")
GUEST = bytes.fromhex("02cc00000003")
PROVIDER = bytes.fromhex("02bb00000002")
GUEST_LL = nd.link_local_eui64(GUEST)
PROVIDER_LL = nd.link_local_eui64(PROVIDER)
GUEST6, GW6, HOST6 = map(IPv6Address, ("fd00:70::50", "fe80::1", "fd00:70::10"))
GUEST4, GW4 = IPv4Address("10.70.0.50"), IPv4Address("10.70.0.1")


def ns(src: IPv6Address = GUEST_LL, target: IPv6Address = GW6, mac: bytes = GUEST) -> bytes:
    return nd.ns_frame(mac, src, target)


def na(flags: tuple[bool, bool, bool] = (True, True, False), tllao: bytes | None = GUEST,
       dst: IPv6Address = PROVIDER_LL) -> bytes:  # fmt: skip
    router, solicited, override = flags
    advert = nd.NeighborAdvertisement(GUEST6, router, solicited, override, tllao)
    dst_mac = None if dst.is_multicast else PROVIDER
    return nd.na_frame(GUEST, GUEST6, dst, advert, dst_mac=dst_mac)


def with_ip6(frame: bytes, **changes: int) -> bytes:
    """``frame`` with its IPv6 header's traffic class, flow label or hop limit changed."""
    word, plen, nh, hops = struct.unpack_from("!IHBB", frame, 14)
    tc, fl = changes.get("tc", word >> 20 & 0xFF), changes.get("fl", word & 0xFFFFF)
    word = 6 << 28 | tc << 20 | fl
    hops = changes.get("hops", hops)
    return frame[:14] + struct.pack("!IHBB", word, plen, nh, hops) + frame[22:]


def decoded(frame: bytes) -> tuple[frames.Ethernet, nd.IPv6, object]:
    eth = frames.Ethernet.decode(frame)
    ip6 = nd.IPv6.decode(eth.payload)
    return eth, ip6, nd.decode_ndp(ip6, check_sum=True)


def _ipv6_frame(payload: bytes, next_header: int = 58, hops: int = 255) -> bytes:
    packet = nd.IPv6(GUEST_LL, nd.ALL_NODES, next_header, hops, payload).encode()
    return frames.Ethernet(
        nd.multicast_mac(nd.ALL_NODES), GUEST, frames.ETH_P_IPV6, packet
    ).encode()
