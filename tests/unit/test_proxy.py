"""ARP/NDP proxy rules (mosnet.proxy.answers.decide) and the reply rate limiter.

Request frames are built with scapy, an implementation independent of
mosnet.l2.frames and mosnet.l2.nd; replies are checked byte by byte and re-parsed
by scapy, whose recomputed ICMPv6 checksum must equal ours.
"""

from __future__ import annotations

import socket
import struct
import time
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet
from scapy.utils6 import in6_getnsma, in6_getnsmac

from mosnet.l2 import frames
from mosnet.proxy import proxyd
from mosnet.proxy.answers import ProxyConfig, decide

pytestmark = pytest.mark.unit

NAT = "02:aa:00:00:00:01"
NAT_B = bytes.fromhex(NAT.replace(":", ""))
PEER = "02:bb:00:00:00:02"
PEER_B = bytes.fromhex(PEER.replace(":", ""))
OTHER = "02:cc:00:00:00:03"
HOST4, GUEST4, GW4, FREE4, ME4 = "10.70.0.10", "10.70.0.11", "10.70.0.1", "10.70.0.12", "10.70.0.2"
HOST6, GUEST6, GW6, FREE6 = "fd00:70::10", "fd00:70::11", "fe80::1", "fd00:70::12"
PEER6 = "fe80::bb:2"
CFG = ProxyConfig(
    NAT_B,
    frozenset({IPv4Address(HOST4), IPv4Address(GUEST4), IPv4Address(GW4)}),  # GW4 by mistake
    frozenset({IPv6Address(HOST6), IPv6Address(GUEST6), IPv6Address(GW6)}),
    frozenset({IPv4Address(GW4), IPv6Address(GW6)}),
)


def arp_req(tpa: str, *, dst: str = "ff:ff:ff:ff:ff:ff", op: int = 1, spa: str = ME4,
            sha: str = PEER) -> bytes:  # fmt: skip
    return bytes(Ether(dst=dst, src=sha) / ARP(op=op, hwsrc=sha, psrc=spa, pdst=tpa))


def sol_mac(target: str) -> str:
    return str(in6_getnsmac(in6_getnsma(socket.inet_pton(socket.AF_INET6, target))))


def sol_ip(target: str) -> str:
    return str(
        socket.inet_ntop(socket.AF_INET6, in6_getnsma(socket.inet_pton(socket.AF_INET6, target)))
    )


def ns(target: str, *, src: str = PEER6, dst: str | None = None, edst: str | None = None,
       hlim: int = 255, code: int = 0, sllao: str | None = PEER) -> bytes:  # fmt: skip
    ip_dst = dst or sol_ip(target)
    if edst is None:
        edst = sol_mac(target) if ip_address(ip_dst).is_multicast else NAT
    pkt: Packet = Ether(dst=edst, src=PEER) / IPv6(src=src, dst=ip_dst, hlim=hlim)
    pkt /= ICMPv6ND_NS(tgt=target, code=code)
    if sllao is not None:
        pkt /= ICMPv6NDOptSrcLLAddr(lladdr=sllao)
    return bytes(pkt)


# --- ARP ----------------------------------------------------------------------


def expected_arp_reply(target: str, tha: bytes, tpa: str) -> bytes:
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, NAT_B,
                      IPv4Address(target).packed, tha, IPv4Address(tpa).packed)  # fmt: skip
    return (tha + NAT_B + b"\x08\x06" + arp).ljust(60, b"\0")


@pytest.mark.parametrize("target", [HOST4, GUEST4])
def test_arp_request_for_configured_address_is_answered_with_nat_mac(target: str) -> None:
    reply = decide(arp_req(target), CFG)
    assert reply == expected_arp_reply(target, PEER_B, ME4)
    parsed = Ether(reply)
    assert parsed[ARP].op == 2 and parsed[ARP].hwsrc == NAT and parsed[ARP].psrc == target


def test_arp_request_unicast_to_nat_mac_is_answered() -> None:
    assert decide(arp_req(HOST4, dst=NAT), CFG) == expected_arp_reply(HOST4, PEER_B, ME4)


def test_arp_probe_for_our_address_is_defended() -> None:
    # RFC 5227: the prober treats any ARP with sender IP == its candidate as a conflict
    assert decide(arp_req(HOST4, spa="0.0.0.0"), CFG) == expected_arp_reply(
        HOST4, PEER_B, "0.0.0.0"
    )


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(arp_req(GW4), id="gateway-even-if-configured"),
        pytest.param(arp_req(FREE4), id="unconfigured"),
        pytest.param(arp_req(HOST4, op=2, dst=NAT), id="arp-reply"),
        pytest.param(arp_req(HOST4, spa=HOST4), id="gratuitous-request"),
        pytest.param(arp_req(HOST4, op=2, spa=HOST4), id="gratuitous-reply"),
        pytest.param(arp_req(HOST4, dst=OTHER), id="unicast-to-another-mac"),
        pytest.param(arp_req(HOST4, sha=NAT), id="from-nat-mac"),
        pytest.param(arp_req(HOST4, sha="01:00:5e:00:00:01"), id="multicast-sender"),
        pytest.param(arp_req(HOST4)[:40], id="truncated"),
    ],
)
def test_arp_not_answered(frame: bytes) -> None:
    assert decide(frame, CFG) is None


# --- NDP ----------------------------------------------------------------------


def check_na(reply: bytes | None, target: str, dst: str, edst: str, *, s: int, o: int) -> None:
    assert reply is not None
    pkt = Ether(reply)
    assert (pkt.dst, pkt.src, pkt.type) == (edst, NAT, 0x86DD)
    assert (pkt[IPv6].src, pkt[IPv6].dst, pkt[IPv6].hlim, pkt[IPv6].nh) == (target, dst, 255, 58)
    na = pkt[ICMPv6ND_NA]
    assert (na.type, na.code, na.R, na.S, na.O, na.tgt) == (136, 0, 0, s, o, target)
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == NAT
    assert pkt[IPv6].plen == 32 and len(reply) == 14 + 40 + 32
    # scapy recomputes the checksum when the field is cleared: it must be ours
    theirs = pkt.copy()
    del theirs[ICMPv6ND_NA].cksum
    assert Ether(bytes(theirs))[ICMPv6ND_NA].cksum == na.cksum
    assert reply == bytes(theirs)


@pytest.mark.parametrize("target", [HOST6, GUEST6])
def test_ns_for_configured_address_gets_solicited_na(target: str) -> None:
    check_na(decide(ns(target), CFG), target, PEER6, PEER, s=1, o=0)


def test_unicast_ns_to_nat_mac_is_answered() -> None:
    reply = decide(ns(GUEST6, dst=GUEST6, src="fd00:70::2"), CFG)
    check_na(reply, GUEST6, "fd00:70::2", PEER, s=1, o=0)


def test_na_goes_to_the_sllao_mac() -> None:
    reply = decide(ns(HOST6, sllao=OTHER), CFG)
    check_na(reply, HOST6, PEER6, OTHER, s=1, o=0)


def test_dad_for_our_address_is_defended_to_all_nodes() -> None:
    reply = decide(ns(HOST6, src="::", sllao=None), CFG)
    check_na(reply, HOST6, "ff02::1", "33:33:00:00:00:01", s=0, o=1)


def test_checksum_not_ready_skips_the_check() -> None:
    frame = bytearray(ns(HOST6))
    frame[56] ^= 0xFF  # ICMPv6 checksum, as left by checksum offload
    assert decide(bytes(frame), CFG) is None
    assert decide(bytes(frame), CFG, check_sum=False) is not None


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(ns(HOST6, hlim=254), id="hop-limit-254"),
        pytest.param(ns(HOST6, code=1), id="code-1"),
        pytest.param(ns(HOST6, sllao=None), id="no-sllao"),
        pytest.param(ns(GW6), id="gateway-even-if-configured"),
        pytest.param(ns(FREE6), id="unconfigured"),
        pytest.param(ns(FREE6, src="::", sllao=None), id="dad-unconfigured"),
        pytest.param(ns(HOST6, src="::", sllao=PEER), id="dad-with-sllao"),
        pytest.param(ns(HOST6, edst=OTHER, dst=HOST6), id="unicast-to-another-mac"),
        pytest.param(ns(HOST6, dst=sol_ip(FREE6)), id="wrong-solicited-node"),
        pytest.param(ns(HOST6, dst="ff02::1"), id="to-all-nodes"),
        pytest.param(ns(HOST6, edst="33:33:00:00:00:01"), id="wrong-multicast-mac"),
        pytest.param(ns(HOST6, src="ff02::2"), id="multicast-source"),
        pytest.param(ns(HOST6, sllao=NAT), id="sllao-is-nat-mac"),
        pytest.param(ns(HOST6, sllao="33:33:00:00:00:01"), id="sllao-multicast"),
        pytest.param(
            bytes(
                Ether(dst=PEER, src=OTHER) / IPv6(src=HOST6, dst=PEER6) / ICMPv6ND_NA(tgt=HOST6)
            ),  # fmt: skip
            id="neighbor-advertisement",
        ),
    ],
)
def test_ns_not_answered(frame: bytes) -> None:
    assert decide(frame, CFG) is None


def test_own_frames_are_ignored() -> None:
    frame = bytearray(ns(HOST6))
    frame[6:12] = NAT_B
    assert decide(bytes(frame), CFG) is None


def test_config_rejects_a_multicast_nat_mac() -> None:
    with pytest.raises(ValueError):
        ProxyConfig(b"\x01" * 6, frozenset(), frozenset(), frozenset())


# --- never raises -------------------------------------------------------------

FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))  # fmt: skip
VALID = [arp_req(HOST4), arp_req(HOST4, spa="0.0.0.0"), ns(HOST6), ns(GUEST6, src="::", sllao=None)]


def _sane(reply: bytes | None) -> None:
    if reply is not None:
        assert reply[6:12] == NAT_B  # never another MAC, never for the gateway
        assert IPv4Address(GW4).packed not in reply[28:32]
        assert IPv6Address(GW6).packed not in reply[22:38]


@FUZZ
@given(st.binary(max_size=200), st.booleans())
def test_decide_never_raises_on_random_bytes(data: bytes, check_sum: bool) -> None:
    _sane(decide(data, CFG, check_sum=check_sum))


@FUZZ
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 99), st.integers(0, 255)), max_size=6),
    st.integers(0, 100),
    st.booleans(),
)
def test_decide_never_raises_on_mutated_frames(
    base: bytes, flips: list[tuple[int, int]], cut: int, check_sum: bool
) -> None:
    frame = bytearray(base)
    for pos, value in flips:
        if pos < len(frame):
            frame[pos] = value
    _sane(decide(bytes(frame[: len(frame) - cut]), CFG, check_sum=check_sum))


# --- BPF filter ---------------------------------------------------------------


def run_bpf(program: bytes, frame: bytes) -> int:
    """Interpret the few classic BPF opcodes REQUEST_FILTER uses."""
    code = [struct.unpack_from("HBBI", program, i) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        op, jt, jf, k = code[pc]
        if op == 0x28:
            acc = int.from_bytes(frame[k : k + 2], "big") if k + 2 <= len(frame) else -1
        elif op == 0x30:
            acc = frame[k] if k < len(frame) else -1
        elif op == 0x15:
            pc += jt if acc == k else jf
        elif op == 0x06:
            return int(k)
        else:
            raise AssertionError(f"opcode {op:#x}")
        if acc == -1:
            return 0  # a load past the end aborts the program
        pc += 1


def test_bpf_filter_passes_only_arp_requests_and_ns() -> None:
    na = bytes(Ether(dst=PEER) / IPv6(dst="ff02::1") / ICMPv6ND_NA(tgt=HOST6))
    keep = [arp_req(HOST4), ns(HOST6), ns(HOST6, hlim=1)]  # the filter is a coarse pre-cut
    udp6 = bytes(Ether(dst=PEER) / IPv6(nh=17))
    drop = [arp_req(HOST4, op=2), na, udp6, bytes(Ether(dst=PEER) / (b"x" * 50))]
    assert [run_bpf(proxyd.REQUEST_FILTER, f) > 0 for f in keep] == [True] * 3
    assert [run_bpf(proxyd.REQUEST_FILTER, f) > 0 for f in drop] == [False] * 4


# --- rate limiting --------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refills_and_caps() -> None:
    bucket = proxyd.TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.5)  # 2/s: one token per 0.5 s
    assert not bucket.take(0.4)  # a clock going back mints nothing
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_per_requester_limit_does_not_starve_others() -> None:
    clock = FakeClock()
    limiter = proxyd.RateLimiter(proxyd.Limits(per_rate=1, per_burst=2), clock)
    assert [limiter.allow(b"a") for _ in range(3)] == [True, True, False]
    assert limiter.allow(b"b")
    clock.now += 1.0
    assert limiter.allow(b"a") and not limiter.allow(b"a")


def test_global_limit_and_bounded_requester_table() -> None:
    clock = FakeClock()
    limits = proxyd.Limits(global_rate=10, global_burst=5, max_requesters=3)
    limiter = proxyd.RateLimiter(limits, clock)
    assert sum(limiter.allow(bytes([i])) for i in range(20)) == 5
    assert limiter.exhausted() and len(limiter.requesters) <= 3
    clock.now += 0.1
    assert not limiter.exhausted() and limiter.allow(b"z")


class FakeSock:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


def test_flood_of_10k_requests_per_second_is_bounded() -> None:
    clock, sock = FakeClock(), FakeSock()
    limits = proxyd.Limits()
    loop = proxyd._Loop("eth0", CFG, cast(socket.socket, sock), proxyd.RateLimiter(limits, clock),
                        proxyd.Counters())  # fmt: skip
    flood = [arp_req(HOST4, sha=f"02:dd:00:00:{i >> 8:02x}:{i & 255:02x}") for i in range(1000)]
    flood += [ns(GUEST6), arp_req(FREE4)]
    start = time.process_time()
    for i in range(20_000):  # two seconds' worth at 10k/s
        clock.now += 1e-4
        loop.handle(flood[i % len(flood)], True)
    cpu = time.process_time() - start
    c = loop.counters
    assert c.received == 20_000 and c.answered == len(sock.sent)
    assert c.answered <= limits.global_burst + 2 * limits.global_rate + 1
    assert c.answered + c.ignored + c.limited == c.received and c.errors == 0
    assert {addr for _, addr in sock.sent} <= {("eth0", 0x0806), ("eth0", 0x86DD)}
    print(f"20k frames: {cpu * 1000:.0f} ms CPU, {c.line()}")
    assert cpu < 2.0  # ~50x headroom: real cost is a few us per dropped frame


def test_announcement_frames_cover_every_address_but_gateways() -> None:
    announced = proxyd.announcement_frames(CFG)
    arps = [Ether(f)[ARP] for t, f in announced if t == 0x0806]
    nas = [Ether(f) for t, f in announced if t == 0x86DD]
    assert sorted((a.op, a.psrc) for a in arps) == [
        (1, HOST4),
        (1, GUEST4),
        (2, HOST4),
        (2, GUEST4),
    ]
    assert all(a.hwsrc == NAT and a.pdst == a.psrc for a in arps)
    assert sorted(p[ICMPv6ND_NA].tgt for p in nas) == [HOST6, GUEST6]
    for p in nas:
        na = p[ICMPv6ND_NA]
        assert (na.S, na.O, p[IPv6].hlim, p[ICMPv6NDOptDstLLAddr].lladdr) == (0, 1, 255, NAT)
    assert all(frames.ETH_P_ARP == t or f[6:12] == NAT_B for t, f in announced)
