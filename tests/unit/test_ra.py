"""RA parser on hand-built vectors, cross-checked against scapy (tests only)."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mosnet.ipv6 import ra
from mosnet.l2 import nd
from mosnet.state import resolvconf

pytestmark = pytest.mark.unit

ROUTER = IPv6Address("fe80::1")
DNS1, DNS2 = IPv6Address("fd00:90::53"), IPv6Address("fd00:90::54")


def _opt(kind: int, body: bytes) -> bytes:
    assert (len(body) + 2) % 8 == 0
    return bytes((kind, (len(body) + 2) // 8)) + body


def _pio(prefix: str = "fd00:90::", plen: int = 64, flags: int = 0xC0) -> bytes:
    return _opt(
        3, struct.pack("!BBIII16s", plen, flags, 86400, 14400, 0, IPv6Address(prefix).packed)
    )


def _rdnss(*servers: IPv6Address, life: int = 600) -> bytes:
    return _opt(25, struct.pack("!HI", 0, life) + b"".join(s.packed for s in servers))


def _dnssl(names: bytes, life: int = 600) -> bytes:
    body = struct.pack("!HI", 0, life) + names
    body += b"\0" * (-(len(body) + 2) % 8)
    return _opt(31, body)


def _ra(
    options: bytes = b"",
    *,
    flags: int = 0xC0,
    hops: int = 255,
    code: int = 0,
    src: IPv6Address = ROUTER,
    lifetime: int = 1800,
) -> bytes:
    body = struct.pack("!BBHBBHII", 134, code, 0, 64, flags, lifetime, 0, 0) + options
    dst = nd.ALL_NODES
    csum = nd.icmpv6_checksum(src, dst, body)
    body = body[:2] + struct.pack("!H", csum) + body[4:]
    return nd.IPv6(src, dst, nd.IPPROTO_ICMPV6, hops, body).encode()


FULL = (
    _pio()
    + _rdnss(DNS1, DNS2)
    + _dnssl(b"\x02v6\x07example\x00\x03lab\x00")
    + _opt(5, struct.pack("!HI", 0, 1400))
)


def test_parse_full_ra() -> None:
    got = ra.parse_ra(_ra(FULL))
    assert got is not None
    assert got.router == ROUTER and got.managed and got.other and got.router_lifetime == 1800
    assert got.cur_hop_limit == 64 and got.mtu == 1400
    assert got.prefixes == (ra.Prefix(IPv6Network("fd00:90::/64"), True, True, 86400, 14400),)
    assert got.rdnss == (DNS1, DNS2) and got.rdnss_lifetime == 600
    assert got.dnssl == ("v6.example", "lab") and got.dnssl_lifetime == 600


def test_flags_off() -> None:
    got = ra.parse_ra(_ra(_pio(flags=0x40), flags=0))
    assert got is not None and not got.managed and not got.other
    assert not got.prefixes[0].on_link and got.prefixes[0].autonomous


def test_cross_check_with_scapy() -> None:
    scapy_all = pytest.importorskip("scapy.all")
    pkt = (
        scapy_all.IPv6(src=str(ROUTER), dst="ff02::1", hlim=255)
        / scapy_all.ICMPv6ND_RA(M=1, O=0, routerlifetime=900, chlim=64)
        / scapy_all.ICMPv6NDOptPrefixInfo(
            prefix="fd00:91::", prefixlen=64, L=1, A=1, validlifetime=7200, preferredlifetime=3600
        )
        / scapy_all.ICMPv6NDOptRDNSS(dns=[str(DNS1)], lifetime=300)
        / scapy_all.ICMPv6NDOptDNSSL(searchlist=["corp.example."], lifetime=300)
    )
    got = ra.parse_ra(bytes(pkt))
    assert got is not None and got.managed and not got.other and got.router_lifetime == 900
    assert got.prefixes[0].network == IPv6Network("fd00:91::/64")
    assert got.prefixes[0].valid == 7200 and got.prefixes[0].preferred == 3600
    assert got.rdnss == (DNS1,) and got.rdnss_lifetime == 300
    assert got.dnssl == ("corp.example",)
    # and the other way round: scapy reads our vector the same
    back = scapy_all.IPv6(_ra(FULL))
    assert back[scapy_all.ICMPv6ND_RA].M == 1
    assert list(back[scapy_all.ICMPv6NDOptRDNSS].dns) == [str(DNS1), str(DNS2)]


@pytest.mark.parametrize(
    "packet",
    [
        _ra(FULL, hops=254),  # RFC 4861 6.1.2: off-link
        _ra(FULL, code=1),
        _ra(FULL, src=IPv6Address("fd00:90::1")),  # not link-local
        _ra(_pio() + b"\x19\x00" + b"\0" * 6),  # zero-length option
        _ra(_pio() + b"\x19\x03" + b"\0" * 6),  # option runs past the end
        _ra(FULL)[:-3],  # truncated (IPv6 payload length too big)
        _ra()[: 40 + 10],
    ],
)
def test_malformed_rejected(packet: bytes) -> None:
    assert ra.parse_ra(packet) is None


def test_bad_checksum_rejected() -> None:
    good = bytearray(_ra(FULL))
    good[42] ^= 0xFF
    assert ra.parse_ra(bytes(good)) is None


def test_bad_options_skipped_not_fatal() -> None:
    bad_rdnss = _opt(25, struct.pack("!HI", 0, 60) + b"\0" * 8)  # not a whole address
    bad_dnssl = _dnssl(b"\xc0\x0c")  # compression pointer
    got = ra.parse_ra(_ra(bad_rdnss + bad_dnssl + _pio(plen=200) + _rdnss(DNS1)))
    assert got is not None and got.rdnss == (DNS1,) and got.dnssl == () and got.prefixes == ()


def test_router_solicitation_bytes() -> None:
    assert ra.router_solicitation() == b"\x85\0\0\0\0\0\0\0"  # no SLLAO


@given(st.binary(max_size=200))
@settings(max_examples=500, deadline=None)
def test_never_raises(tail: bytes) -> None:
    ra.parse_icmp(ROUTER, 255, b"\x86\0\0\0" + tail)
    ra.parse_ra(_ra(tail[: len(tail) // 8 * 8]))


def test_merge_nameservers_keeps_both_families() -> None:
    v4 = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    v6 = [DNS1, DNS2]
    assert resolvconf.merge_nameservers(v4, v6) == ["10.0.0.1", str(DNS1), "10.0.0.2"]
    assert resolvconf.merge_nameservers([], v6) == [str(DNS1), str(DNS2)]
    assert resolvconf.merge_nameservers(v4, []) == v4
    assert resolvconf.merge_nameservers(["10.0.0.1"], [DNS1, DNS1, DNS2]) == [
        "10.0.0.1",
        str(DNS1),
        str(DNS2),
    ]
    assert resolvconf.merge_search(["a.example"], ["B.example.", "a.example"]) == [
        "a.example",
        "b.example",
    ]
