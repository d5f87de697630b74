"""The NDP relay of the Linux-bridge backend (mosnet.macnat.ndprelay), without sockets.

``rewrite`` is checked with mosnet.l2.nd (checksum verified) and re-parsed by
scapy, whose recomputed ICMPv6 checksum must equal ours; ``guest_port`` runs
on a fake sysfs tree; ``Relay.handle`` on a fake socket that records sendto.
"""

from __future__ import annotations

import os
import pathlib
import socket
import struct
from ipaddress import IPv4Address, IPv6Address
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import Ether

from mosnet.l2 import frames, nd
from mosnet.macnat import guests, ndprelay
from mosnet.macnat.ndprelay import Relay, guest_port, rewrite

NAT = bytes.fromhex("02aa00000001")
GUEST = bytes.fromhex("02cc00000003")
PROVIDER = bytes.fromhex("02bb00000002")
GUEST_LL = nd.link_local_eui64(GUEST)
PROVIDER_LL = nd.link_local_eui64(PROVIDER)
GUEST6, GW6, HOST6 = map(IPv6Address, ("fd00:70::50", "fe80::1", "fd00:70::10"))
GUEST4, GW4 = IPv4Address("10.70.0.50"), IPv4Address("10.70.0.1")


class Clock:
    def __init__(self, t: float = 50.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeSocket:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.fail = fail

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        if self.fail:
            raise OSError(100, "Network is down")
        self.sent.append((data, addr))
        return len(data)


def as_socket(fake: FakeSocket) -> socket.socket:
    """The relay only sends on the socket it is given: the fake does that much."""
    return cast(socket.socket, fake)


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


def scapy_checksum_ok(frame: bytes, layer: type) -> bool:
    pkt = Ether(frame)
    sent = pkt[layer].cksum
    del pkt[layer].cksum
    return bool(Ether(bytes(pkt))[layer].cksum == sent)


# --- rewrite ------------------------------------------------------------------------


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


def _ipv6_frame(payload: bytes, next_header: int = 58, hops: int = 255) -> bytes:
    packet = nd.IPv6(GUEST_LL, nd.ALL_NODES, next_header, hops, payload).encode()
    return frames.Ethernet(
        nd.multicast_mac(nd.ALL_NODES), GUEST, frames.ETH_P_IPV6, packet
    ).encode()


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


# --- guest_port ---------------------------------------------------------------------


@pytest.fixture
def sysfs(tmp_path: pathlib.Path) -> str:
    root = tmp_path / "class_net"
    devices = tmp_path / "devices"
    for name in ("br-mosnet", "docker0", "c0", "c1", "up0", "lo", "d0"):
        (devices / name).mkdir(parents=True)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(devices / name, root / name)
    for port, master in (("c0", "br-mosnet"), ("up0", "br-mosnet"), ("d0", "docker0")):
        os.symlink(f"../{master}", devices / port / "master")  # sysfs-style, relative
    os.symlink(devices / "br-mosnet", devices / "c1" / "master")  # absolute works too
    return str(root)


@pytest.mark.parametrize(
    ("ifname", "want"),
    [
        ("c0", True),
        ("c1", True),
        ("up0", False),
        ("d0", False),
        ("lo", False),
        ("br-mosnet", False),
        ("gone", False),
    ],
)
def test_guest_port(sysfs: str, ifname: str, want: bool) -> None:
    assert guest_port(ifname, "up0", sysfs) is want


def test_guest_port_another_uplink(sysfs: str) -> None:
    assert guest_port("up0", "eth9", sysfs) is True
    assert guest_port("c0", "c0", sysfs) is False


# --- Relay.handle -------------------------------------------------------------------


@pytest.fixture
def fake_ports(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def fake(ifname: str, uplink: str, sysfs: str = "") -> bool:
        asked.append(ifname)
        return ifname in ("c0", "c1") and ifname != uplink

    monkeypatch.setattr(ndprelay, "guest_port", fake)
    return asked


def relay(clock: Clock | None = None) -> Relay:
    reserved: frozenset[guests.IpAddress] = frozenset({GW6, GW4, HOST6})
    clock = clock or Clock()
    return Relay("up0", NAT, guests.GuestTable(reserved, clock, timeout=300.0), clock)


def test_a_guest_ns_is_relayed_rewritten_and_its_source_learned(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    frame = ns()
    r.handle(frame, "c0", as_socket(out))
    assert out.sent == [(rewrite(frame, NAT), ("up0", frames.ETH_P_IPV6))]
    assert r.relayed == 1
    binding = r.table.get(GUEST_LL)
    assert binding is not None and binding.mac == GUEST


def test_a_guest_na_is_relayed_and_its_target_learned(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    r.handle(na(), "c1", as_socket(out))
    (sent, addr) = out.sent[0]
    assert addr == ("up0", frames.ETH_P_IPV6)
    _, _, msg = decoded(sent)
    assert isinstance(msg, nd.NeighborAdvertisement) and msg.tllao == NAT
    assert GUEST6 in r.table


def test_a_guest_arp_is_learned_not_relayed(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    r.handle(frames.arp_request(GUEST, GUEST4, GW4).frame(), "c0", as_socket(out))
    assert out.sent == [] and GUEST4 in r.table and r.relayed == 0


def test_a_guest_dad_ns_is_relayed_but_teaches_nothing(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    r.handle(ns(src=nd.UNSPECIFIED6, target=GUEST6), "c0", as_socket(out))
    assert len(out.sent) == 1 and len(r.table) == 0


def test_reserved_addresses_are_relayed_but_not_learned(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    r.handle(na().replace(GUEST6.packed, HOST6.packed), "c0", as_socket(out))
    assert HOST6 not in r.table and GUEST6 not in r.table


@pytest.mark.parametrize("ifname", ["up0", "br-mosnet", "d0", "lo"])
def test_frames_from_other_interfaces_are_ignored(fake_ports: list[str], ifname: str) -> None:
    r, out = relay(), FakeSocket()
    r.handle(ns(), ifname, as_socket(out))
    r.handle(frames.arp_request(GUEST, GUEST4, GW4).frame(), ifname, as_socket(out))
    assert out.sent == [] and len(r.table) == 0


def test_frames_from_the_nat_mac_are_ignored(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    r.handle(ns(mac=NAT), "c0", as_socket(out))
    assert out.sent == [] and len(r.table) == 0
    assert fake_ports == []  # not even asked


def test_non_ndp_ipv6_is_not_relayed(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket()
    r.handle(_ipv6_frame(b"\0" * 8, next_header=17), "c0", as_socket(out))
    assert out.sent == []


def test_the_token_bucket_caps_the_relay(
    fake_ports: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ndprelay, "RELAY_RATE", 2.0)
    monkeypatch.setattr(ndprelay, "RELAY_BURST", 3.0)
    clock = Clock()
    r, out = relay(clock), FakeSocket()
    for _ in range(10):
        r.handle(ns(), "c0", as_socket(out))
    assert len(out.sent) == 3 and r.relayed == 3
    clock.t += 1.0
    for _ in range(10):
        r.handle(ns(), "c0", as_socket(out))
    assert len(out.sent) == 5
    r.handle(frames.arp_request(GUEST, GUEST4, GW4).frame(), "c0", as_socket(out))
    assert GUEST4 in r.table  # learning goes on when the bucket is empty


def test_a_failing_send_is_swallowed(fake_ports: list[str]) -> None:
    r, out = relay(), FakeSocket(fail=True)
    r.handle(ns(), "c0", as_socket(out))
    assert r.relayed == 0 and GUEST_LL in r.table


def test_port_verdicts_are_cached_for_a_few_seconds(fake_ports: list[str]) -> None:
    clock = Clock()
    r, out = relay(clock), FakeSocket()
    for _ in range(3):
        r.handle(ns(), "c0", as_socket(out))
    assert fake_ports == ["c0"]
    clock.t += 6.0
    r.handle(ns(), "c0", as_socket(out))
    assert fake_ports == ["c0", "c0"]


def run_bpf(prog: bytes, frame: bytes) -> int:
    """A classic BPF interpreter for the four opcodes GUEST_FILTER uses."""
    insns = [struct.unpack_from("HBBI", prog, i) for i in range(0, len(prog), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x06:  # ret k
            return int(k)
        if code in (0x28, 0x30):  # ldh / ldb [k]; out of range: the kernel drops
            size = 2 if code == 0x28 else 1
            if k + size > len(frame):
                return 0
            acc = int.from_bytes(frame[k : k + size])
        elif code == 0x15:  # jeq #k
            pc += jt if acc == k else jf
        else:
            raise AssertionError(f"opcode {code:#x}")
        pc += 1


@pytest.mark.parametrize(
    ("frame", "kept"),
    [
        (ns(), True),
        (na(), True),
        (ns(src=nd.UNSPECIFIED6, target=GUEST6), True),
        (frames.arp_request(GUEST, GUEST4, GW4).frame(), True),
        (_ipv6_frame(bytes((133, 0, 0, 0)) + b"\0" * 12), False),
        (_ipv6_frame(bytes((128, 0, 0, 0)) + b"\0" * 4), False),
        (_ipv6_frame(b"\0" * 8, next_header=17), False),
        (frames.Ethernet(PROVIDER, GUEST, frames.ETH_P_IP, b"\x45" + b"\0" * 45).encode(), False),
        (b"\x02" * 13, False),
    ],
)
def test_the_guest_filter_keeps_arp_ns_and_na_only(frame: bytes, kept: bool) -> None:
    assert (run_bpf(ndprelay.GUEST_FILTER, frame) > 0) is kept


def test_ipv6_scapy_cross_check_of_addresses() -> None:
    out = rewrite(ns(), NAT)
    assert out is not None
    pkt = Ether(out)
    assert pkt.src == frames.mac_str(NAT) and pkt[IPv6].hlim == 255
    assert pkt[IPv6].src == str(GUEST_LL) and pkt[ICMPv6ND_NS].tgt == str(GW6)
