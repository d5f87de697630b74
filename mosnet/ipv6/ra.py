"""Router Advertisements (RFC 4861 4.2, 6.1.2; RFC 8106 RDNSS/DNSSL): parse and listen.

The kernel does SLAAC and the default route itself (``accept_ra=2`` on a
forwarding bridge port); we only read the RA for what the kernel does not act
on: the M/O flags (should we run DHCPv6?) and the DNS options. ``parse_ra``
is pure and raises nothing: a packet that fails a validity check is ``None``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from dataclasses import dataclass, replace
from ipaddress import IPv6Address, IPv6Network

from mosnet.base import log
from mosnet.dhcp6.codec import decode_names
from mosnet.l2 import nd
from mosnet.l2.frames import FrameError
from mosnet.l2.nd import link_local

ICMP6_RS, ICMP6_RA = 133, 134
OPT_PREFIX, OPT_MTU, OPT_RDNSS, OPT_DNSSL = 3, 5, 25, 31
ALL_ROUTERS = IPv6Address("ff02::2")
ICMP6_FILTER = 1  # level IPPROTO_ICMPV6
IPV6_RECVHOPLIMIT, IPV6_HOPLIMIT = 51, 52
_RA = struct.Struct("!BBHBBHII")  # type, code, csum, cur hop limit, flags, lifetime, 2 timers
_PIO = struct.Struct("!BBIII16s")  # prefixlen, flags, valid, preferred, reserved, prefix
_log = log.get("ra")


@dataclass(frozen=True)
class Prefix:
    network: IPv6Network
    on_link: bool  # L flag
    autonomous: bool  # A flag: SLAAC
    valid: int
    preferred: int


@dataclass(frozen=True)
class RouterAdvert:
    router: IPv6Address  # link-local source
    managed: bool  # M: addresses from DHCPv6
    other: bool  # O: other configuration (DNS) from DHCPv6
    router_lifetime: int  # seconds; 0: not a default router
    cur_hop_limit: int = 0
    prefixes: tuple[Prefix, ...] = ()
    rdnss: tuple[IPv6Address, ...] = ()
    rdnss_lifetime: int = 0
    dnssl: tuple[str, ...] = ()
    dnssl_lifetime: int = 0
    mtu: int | None = None


def parse_ra(packet: bytes) -> RouterAdvert | None:
    """A whole IPv6 packet (header + ICMPv6) to a valid RA, or None."""
    try:
        ip = nd.IPv6.decode(packet)
    except FrameError:
        return None
    if ip.next_header != nd.IPPROTO_ICMPV6:
        return None
    if nd.icmpv6_checksum(ip.src, ip.dst, ip.payload) not in (0, 0xFFFF):
        return None  # a correct checksum sums to zero (either representation)
    return parse_icmp(ip.src, ip.hop_limit, ip.payload)


def parse_icmp(src: IPv6Address, hop_limit: int, msg: bytes) -> RouterAdvert | None:
    """RFC 4861 6.1.2 checks on an ICMPv6 message whose checksum is already verified."""
    if hop_limit != 255 or not src.is_link_local:  # 255: no off-link forgery
        return None
    if len(msg) < _RA.size:
        return None
    kind, code, _, hops, flags, lifetime, _, _ = _RA.unpack_from(msg)
    if kind != ICMP6_RA or code != 0:
        return None
    opts = _options(msg[_RA.size :])
    if opts is None:
        return None
    ra = RouterAdvert(src, bool(flags & 0x80), bool(flags & 0x40), lifetime, hops)
    for otype, body in opts:
        ra = _apply_option(ra, otype, body)
    return ra


def _options(data: bytes) -> list[tuple[int, bytes]] | None:
    """(type, body after type+length); None if any length is 0 or runs past the end."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 2 or data[pos + 1] == 0:
            return None
        end = pos + data[pos + 1] * 8
        if end > len(data):
            return None
        out.append((data[pos], bytes(data[pos + 2 : end])))
        pos = end
    return out


def _apply_option(ra: RouterAdvert, otype: int, body: bytes) -> RouterAdvert:
    """Fold one option into ``ra``; malformed options are skipped, not fatal."""
    if otype == OPT_PREFIX and len(body) == _PIO.size:
        plen, flags, valid, pref, _, raw = _PIO.unpack(body)
        if plen > 128:
            return ra
        net = IPv6Network((IPv6Address(raw), plen), strict=False)
        pio = Prefix(net, bool(flags & 0x80), bool(flags & 0x40), valid, pref)
        return replace(ra, prefixes=ra.prefixes + (pio,))
    if otype == OPT_MTU and len(body) == 6:
        return replace(ra, mtu=struct.unpack_from("!I", body, 2)[0])
    if otype == OPT_RDNSS and len(body) >= 22 and (len(body) - 6) % 16 == 0:
        life = struct.unpack_from("!I", body, 2)[0]
        addrs = tuple(IPv6Address(body[i : i + 16]) for i in range(6, len(body), 16))
        return replace(ra, rdnss=ra.rdnss + addrs, rdnss_lifetime=life)
    if otype == OPT_DNSSL and len(body) >= 14:
        names = decode_names(body[6:])
        if names is not None:
            life = struct.unpack_from("!I", body, 2)[0]
            return replace(ra, dnssl=ra.dnssl + names, dnssl_lifetime=life)
    return ra


# ------------------------------------------------------------------ sockets
def router_solicitation() -> bytes:
    """RS without SLLAO (RFC 4861 4.1: it must be absent from ::, optional otherwise).

    The kernel fills in the checksum on raw ICMPv6 sockets.
    """
    return struct.pack("!BBHI", ICMP6_RS, 0, 0, 0)


def open_socket(ifname: str) -> socket.socket:
    """Raw ICMPv6 socket on ``ifname`` that only ever sees RAs (kernel ICMP6_FILTER)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        sock.setsockopt(socket.SOL_SOCKET, 25, ifname.encode())  # SO_BINDTODEVICE
        blocked = [0xFFFFFFFF] * 8
        blocked[ICMP6_RA >> 5] &= ~(1 << (ICMP6_RA & 31))  # a set bit blocks the type
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *blocked))
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
    except OSError:
        sock.close()
        raise
    return sock


def send_rs(sock: socket.socket, ifname: str) -> None:
    """Best effort: without a usable source the kernel's own RS still goes out."""
    with contextlib.suppress(OSError):
        sock.sendto(router_solicitation(), (str(ALL_ROUTERS), 0, 0, socket.if_nametoindex(ifname)))


def recv_ra(sock: socket.socket, timeout: float) -> RouterAdvert | None:
    """One valid RA within ``timeout`` seconds (invalid ones are skipped)."""
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return None
        data, anc, _, addr = sock.recvmsg(65535, socket.CMSG_SPACE(4))
        hops = -1
        for level, kind, value in anc:
            if level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT and len(value) >= 4:
                hops = struct.unpack("=i", value[:4])[0]
        src = IPv6Address(addr[0].split("%")[0])
        ra = parse_icmp(src, hops, data)  # the kernel checked the ICMPv6 checksum
        if ra is not None:
            return ra
        _log.debug("dropped an invalid RA from %s (hop limit %d)", src, hops)
    return None


def wait_for_ra(ifname: str, timeout: float, *, dad_wait: float = 2.0) -> RouterAdvert | None:
    """Solicit and wait for one RA on ``ifname``; None on timeout or socket error."""
    end = time.monotonic() + timeout
    try:
        with open_socket(ifname) as sock:
            link_local(ifname, min(dad_wait, timeout / 2))  # RS from a real source if we can
            send_rs(sock, ifname)
            resend = time.monotonic() + 4.0  # RFC 4861 10: RTR_SOLICITATION_INTERVAL
            while (left := end - time.monotonic()) > 0:
                ra = recv_ra(sock, min(left, max(0.0, resend - time.monotonic())))
                if ra is not None:
                    return ra
                if time.monotonic() >= resend:
                    send_rs(sock, ifname)
                    resend += 4.0
    except OSError as exc:
        _log.warning("ra %s: %s", ifname, exc)
    return None
