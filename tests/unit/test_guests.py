"""Guest address learning (mosnet.macnat.guests): what a frame shows, and the bounded table.

Frames are built with the builders of mosnet.l2.frames (ARP) and mosnet.l2.nd
(NS/NA) and by hand (IPv4, IPv6/UDP); the table runs on an injected clock.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosnet.l2 import frames, nd
from mosnet.macnat import guests
from mosnet.macnat.guests import GuestTable, frame_addresses

GUEST = bytes.fromhex("02cc00000003")
OTHER = bytes.fromhex("02dd00000004")
PEER = bytes.fromhex("02bb00000002")
HOST4, GW4 = IPv4Address("10.70.0.10"), IPv4Address("10.70.0.1")
GUEST4, GUEST4B = IPv4Address("10.70.0.50"), IPv4Address("10.70.0.51")
HOST6, GW6, GUEST6 = map(IPv6Address, ("fd00:70::10", "fe80::1", "fd00:70::50"))
LL6 = nd.link_local_eui64(GUEST)
RESERVED: frozenset[guests.IpAddress] = frozenset({HOST4, GW4, HOST6, GW6})
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ipv4_frame(src: str, dst: str = "10.70.0.1", mac: bytes = GUEST) -> bytes:
    s, d = IPv4Address(src).packed, IPv4Address(dst).packed
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 64, 17, 0, s, d)
    return frames.Ethernet(PEER, mac, frames.ETH_P_IP, header + b"\0" * 8).encode()


def ipv6_frame(src: str, next_header: int = 17, body: bytes = b"") -> bytes:
    payload = body or b"\0" * 8
    packet = nd.IPv6(IPv6Address(src), IPv6Address("fd00:70::1"), next_header, 64, payload).encode()
    return frames.Ethernet(PEER, GUEST, frames.ETH_P_IPV6, packet).encode()


def na(target: IPv6Address, src: IPv6Address, mac: bytes = GUEST) -> bytes:
    advert = nd.NeighborAdvertisement(target, solicited=True, tllao=mac)
    return nd.na_frame(mac, src, GW6, advert, dst_mac=PEER)


# --- frame_addresses --------------------------------------------------------------


def test_arp_request_shows_the_sender_address() -> None:
    frame = frames.arp_request(GUEST, GUEST4, GW4).frame()
    assert frame_addresses(frame) == (GUEST, [GUEST4])


def test_arp_reply_shows_the_sender_not_the_target() -> None:
    frame = frames.arp_reply(GUEST, GUEST4, PEER, GW4).frame(dst=PEER)
    assert frame_addresses(frame) == (GUEST, [GUEST4])


def test_arp_source_mac_is_the_ethernet_source() -> None:
    frame = frames.Ethernet(frames.BROADCAST_MAC, OTHER, frames.ETH_P_ARP,
                        frames.arp_request(GUEST, GUEST4, GW4).encode()).encode()  # fmt: skip
    assert frame_addresses(frame) == (OTHER, [GUEST4])


def test_arp_probe_shows_nothing() -> None:
    assert frame_addresses(frames.arp_probe(GUEST, GUEST4).frame()) == (GUEST, [])


def test_ipv4_source() -> None:
    assert frame_addresses(ipv4_frame("10.70.0.50")) == (GUEST, [GUEST4])


@pytest.mark.parametrize("src", ["0.0.0.0", "127.0.0.1", "224.0.0.251", "255.255.255.255"])
def test_ipv4_unusable_sources(src: str) -> None:
    assert frame_addresses(ipv4_frame(src)) == (GUEST, [])


def test_ipv4_too_short_shows_nothing_but_the_mac() -> None:
    frame = frames.Ethernet(PEER, GUEST, frames.ETH_P_IP, b"\x45" * 19).encode()[:33]
    assert frame_addresses(frame) == (GUEST, [])


def test_ipv6_source() -> None:
    assert frame_addresses(ipv6_frame(str(GUEST6))) == (GUEST, [GUEST6])
    assert frame_addresses(ipv6_frame(str(LL6))) == (GUEST, [LL6])


@pytest.mark.parametrize("src", ["::", "::1", "ff02::1", "ff02::1:ff00:50"])
def test_ipv6_unusable_sources(src: str) -> None:
    assert frame_addresses(ipv6_frame(src)) == (GUEST, [])


def test_na_shows_source_and_target_once_each() -> None:
    assert frame_addresses(na(GUEST6, LL6)) == (GUEST, [LL6, GUEST6])
    assert frame_addresses(na(GUEST6, GUEST6)) == (GUEST, [GUEST6])


def test_unsolicited_na_shows_its_target() -> None:
    frame = nd.unsolicited_na_frame(GUEST, GUEST6)  # from the address itself, to ff02::1
    assert frame_addresses(frame) == (GUEST, [GUEST6])


def test_ns_shows_its_source_not_its_target() -> None:
    frame = nd.ns_frame(GUEST, LL6, GW6)
    assert frame_addresses(frame) == (GUEST, [LL6])


def test_dad_ns_shows_nothing() -> None:
    assert frame_addresses(nd.ns_frame(GUEST, nd.UNSPECIFIED6, GUEST6)) == (GUEST, [])


def test_malformed_na_still_shows_the_source() -> None:
    body = bytes([nd.ICMP6_NA]) + b"\0" * 5  # too short to be an NA
    assert frame_addresses(ipv6_frame(str(GUEST6), next_header=58, body=body)) == (
        GUEST,
        [GUEST6],
    )


def test_multicast_na_target_is_not_learned() -> None:
    advert = nd.NeighborAdvertisement(GUEST6, override=True, tllao=GUEST)
    good = nd.na_frame(GUEST, LL6, nd.ALL_NODES, advert)
    bad = good.replace(GUEST6.packed, IPv6Address("ff02::2").packed)  # checksum unchecked
    assert frame_addresses(good) == (GUEST, [LL6, GUEST6])
    assert frame_addresses(bad) == (GUEST, [LL6])


def test_other_ethertypes_show_nothing() -> None:
    frame = frames.Ethernet(PEER, GUEST, 0x88CC, b"\0" * 46).encode()
    assert frame_addresses(frame) == (GUEST, [])


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00" * 13,
        frames.Ethernet(PEER, GUEST, 0x0100, b"\0" * 46).encode(),  # 802.3 length
        frames.Ethernet(PEER, GUEST, frames.ETH_P_ARP, b"\0" * 10).encode()[:24],  # short ARP
        frames.Ethernet(PEER, GUEST, frames.ETH_P_ARP, b"\0" * 28).encode(),  # htype 0
        frames.Ethernet(PEER, GUEST, frames.ETH_P_IPV6, b"\x40" + b"\0" * 39).encode(),  # version 4
        frames.Ethernet(PEER, GUEST, frames.ETH_P_IPV6, b"\x60").encode()[:15],  # truncated
    ],
)
def test_garbage_gives_nothing(frame: bytes) -> None:
    assert frame_addresses(frame) == (b"", [])


@FUZZ
@given(st.binary(max_size=120))
def test_frame_addresses_never_raises(frame: bytes) -> None:
    mac, found = frame_addresses(frame)
    assert mac in (b"", frame[6:12])
    assert all(guests._usable(ip) for ip in found)


@FUZZ
@given(
    st.sampled_from([frames.ETH_P_ARP, frames.ETH_P_IP, frames.ETH_P_IPV6]), st.binary(max_size=120)
)
def test_frame_addresses_never_raises_on_known_ethertypes(ethertype: int, tail: bytes) -> None:
    frame = PEER + GUEST + struct.pack("!H", ethertype) + tail
    mac, found = frame_addresses(frame)
    assert mac in (b"", GUEST)
    assert len(found) == len(set(found))


@FUZZ
@given(st.binary(min_size=0, max_size=64), st.integers(0, 255), st.integers(0, 80))
def test_frame_addresses_never_raises_on_ndp_shapes(tail: bytes, hops: int, cut: int) -> None:
    good = na(GUEST6, LL6)
    ip6 = good[14:54]
    frame = good[:14] + ip6[:7] + bytes([hops]) + ip6[8:] + good[54 : 54 + cut] + tail
    mac, found = frame_addresses(frame)
    assert mac in (b"", GUEST)


# --- GuestTable -------------------------------------------------------------------


def table(timeout: float | None = None, max_entries: int = guests.DEFAULT_MAX) -> GuestTable:
    return GuestTable(RESERVED, Clock(), timeout=timeout, max_entries=max_entries)


@pytest.mark.parametrize("ip", sorted(RESERVED, key=str))
def test_reserved_addresses_and_gateways_are_never_learned(ip: IPv4Address | IPv6Address) -> None:
    t = table()
    assert t.learn(ip, GUEST, 3) is None
    assert ip not in t and len(t) == 0


@pytest.mark.parametrize("ip", ["0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255",
                                "::", "::1", "ff02::1"])  # fmt: skip
def test_unusable_addresses_are_never_learned(ip: str) -> None:
    assert table().learn(ip_address(ip), GUEST, 3) is None


@pytest.mark.parametrize(
    "mac",
    [b"\x01\x00\x5e\x00\x00\x01", frames.BROADCAST_MAC, frames.ZERO_MAC, b"\x02\0\0\0\0", b""],
)
def test_bad_macs_are_never_learned(mac: bytes) -> None:
    assert table().learn(GUEST4, mac, 3) is None


def test_new_then_refreshed() -> None:
    t = table()
    first = t.learn(GUEST4, GUEST, 3)
    assert first is not None and first[1] is True
    binding = first[0]
    assert (binding.mac, binding.port, binding.seen) == (GUEST, 3, 100.0)
    cast(Clock, t.clock).t = 150.0  # table() gives each table a Clock
    again = t.learn(GUEST4, GUEST, 3)
    assert again is not None and again[1] is False
    assert again[0].index == binding.index and again[0].seen == 150.0
    assert t.get(GUEST4) == again[0]


@pytest.mark.parametrize(("mac", "port"), [(OTHER, 3), (GUEST, 4), (OTHER, 4)])
def test_moved_is_reported_and_keeps_the_index(mac: bytes, port: int) -> None:
    t = table()
    first = t.learn(GUEST4, GUEST, 3)
    assert first is not None
    moved = t.learn(GUEST4, mac, port)
    assert moved is not None and moved[1] is True
    assert moved[0].index == first[0].index
    assert (moved[0].mac, moved[0].port) == (mac, port)
    assert len(t) == 1


def test_indices_are_distinct_and_found_back() -> None:
    t = table()
    ips: list[guests.IpAddress] = [GUEST4, GUEST4B, GUEST6, LL6]
    bindings = [t.learn(ip, GUEST, 3) for ip in ips]
    indices = [b[0].index for b in bindings if b is not None]
    assert len(set(indices)) == 4 and all(0 < i <= 0xFFFFFF for i in indices)
    for ip, index in zip(ips, indices, strict=True):
        assert t.by_index(index) == ip
    assert t.by_index(max(indices) + 1) is None
    assert set(t) == set(ips)


def test_expiry_with_the_clock() -> None:
    clock = Clock(0.0)
    t = GuestTable(RESERVED, clock, timeout=10.0)
    t.learn(GUEST4, GUEST, 3)
    clock.t = 9.9
    assert GUEST4 in t and len(t) == 1 and list(t) == [GUEST4]
    clock.t = 10.0
    assert GUEST4 not in t and len(t) == 0 and list(t) == [] and t.get(GUEST4) is None
    again = t.learn(GUEST4, GUEST, 3)
    assert again is not None and again[1] is True  # back after expiry: news again
    assert GUEST4 in t


def test_refresh_extends_the_life() -> None:
    clock = Clock(0.0)
    t = GuestTable(RESERVED, clock, timeout=10.0)
    t.learn(GUEST4, GUEST, 3)
    clock.t = 8.0
    t.learn(GUEST4, GUEST, 3)
    clock.t = 17.0
    assert GUEST4 in t
    clock.t = 18.0
    assert GUEST4 not in t


def test_no_timeout_means_forever() -> None:
    clock = Clock(0.0)
    t = GuestTable(RESERVED, clock)
    t.learn(GUEST4, GUEST, 3)
    clock.t = 1e9
    assert GUEST4 in t


def test_max_entries_bounds_new_addresses_only() -> None:
    clock = Clock(0.0)
    t = GuestTable(RESERVED, clock, timeout=10.0, max_entries=2)
    assert t.learn(GUEST4, GUEST, 3) is not None
    assert t.learn(GUEST4B, GUEST, 3) is not None
    assert t.learn(GUEST6, GUEST, 3) is None  # full
    assert GUEST6 not in t
    refreshed = t.learn(GUEST4, GUEST, 3)
    moved = t.learn(GUEST4B, OTHER, 4)
    assert refreshed is not None and refreshed[1] is False
    assert moved is not None and moved[1] is True
    clock.t = 5.0
    t.learn(GUEST4, GUEST, 3)  # GUEST4B was last seen at 0: it expires at 10
    clock.t = 12.0
    assert t.learn(GUEST6, GUEST, 3) is not None  # the expired one made room
    assert set(t) == {GUEST4, GUEST6}


def test_a_flood_of_sources_stays_bounded() -> None:
    t = table(max_entries=16)
    for i in range(1000):
        t.learn(IPv4Address(0x0A460000 + 100 + i), GUEST, 3)
    assert len(t) == 16


def test_forget() -> None:
    t = table()
    learned = t.learn(GUEST4, GUEST, 3)
    assert learned is not None
    assert t.forget(GUEST4) == learned[0]
    assert GUEST4 not in t and t.by_index(learned[0].index) is None
    assert t.forget(GUEST4) is None
    again = t.learn(GUEST4, GUEST, 3)
    assert again is not None and again[1] is True


def test_forget_port() -> None:
    t = table()
    t.learn(GUEST4, GUEST, 3)
    t.learn(GUEST6, GUEST, 3)
    t.learn(GUEST4B, OTHER, 4)
    assert sorted(map(str, t.forget_port(3))) == sorted(map(str, (GUEST4, GUEST6)))
    assert list(t) == [GUEST4B]
    assert t.forget_port(3) == []


def test_contains_ignores_other_types() -> None:
    t = table()
    t.learn(GUEST4, GUEST, 3)
    assert "10.70.0.50" not in t and None not in t
