"""Pure link-layer codecs: Ethernet II, ARP, IPv6 and ICMPv6 NS/NA.

struct-based on purpose: scapy's import alone costs 150-300 ms on the boot
path. Every value is a frozen dataclass; every decoder raises only
``FrameError`` whatever bytes it is fed, because they read off the wire.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from mosnet.errors import MosnetError

ETH_P_IP, ETH_P_ARP, ETH_P_IPV6 = 0x0800, 0x0806, 0x86DD
ARP_REQUEST, ARP_REPLY = 1, 2
IPPROTO_ICMPV6 = 58
ICMP6_NS, ICMP6_NA = 135, 136
OPT_SLLA, OPT_TLLA = 1, 2
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\0" * 6
ZERO4 = IPv4Address(0)
UNSPECIFIED6 = IPv6Address(0)
ALL_NODES = IPv6Address("ff02::1")
ETH_MIN = 60  # shortest Ethernet frame without FCS; we pad ourselves, some drivers don't

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_ND = struct.Struct("!BBHI16s")  # type, code, checksum, flags/reserved, target


class FrameError(MosnetError, ValueError):
    """A frame or packet we cannot use; the only exception decoders raise."""


def _mac(value: bytes, what: str) -> bytes:
    if len(value) != 6:
        raise FrameError(f"{what}: a MAC is 6 bytes, got {len(value)}")
    return bytes(value)


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


# --- Ethernet -----------------------------------------------------------------


@dataclass(frozen=True)
class Ethernet:
    dst: bytes
    src: bytes
    ethertype: int
    payload: bytes

    def encode(self) -> bytes:
        head = _ETH.pack(_mac(self.dst, "dst"), _mac(self.src, "src"), self.ethertype)
        return (head + self.payload).ljust(ETH_MIN, b"\0")

    @classmethod
    def decode(cls, data: bytes) -> Ethernet:
        if len(data) < _ETH.size:
            raise FrameError(f"Ethernet: {len(data)} bytes, need {_ETH.size}")
        dst, src, ethertype = _ETH.unpack_from(data)
        if ethertype < 0x0600:  # an 802.3 length field, not an Ethernet II type
            raise FrameError(f"Ethernet: not Ethernet II (type/length {ethertype})")
        return cls(dst, src, ethertype, bytes(data[_ETH.size :]))


# --- ARP ----------------------------------------------------------------------


@dataclass(frozen=True)
class Arp:
    """An Ethernet/IPv4 ARP packet (RFC 826)."""

    op: int
    sha: bytes
    spa: IPv4Address
    tha: bytes
    tpa: IPv4Address

    def encode(self) -> bytes:
        return _ARP.pack(
            1,
            ETH_P_IP,
            6,
            4,
            self.op,
            _mac(self.sha, "sha"),
            self.spa.packed,
            _mac(self.tha, "tha"),
            self.tpa.packed,
        )

    @classmethod
    def decode(cls, data: bytes) -> Arp:
        if len(data) < _ARP.size:  # longer is fine: Ethernet padding
            raise FrameError(f"ARP: {len(data)} bytes, need {_ARP.size}")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(data)
        if (htype, ptype, hlen, plen) != (1, ETH_P_IP, 6, 4):
            raise FrameError(f"ARP: not Ethernet/IPv4 ({htype}, {ptype:#x}, {hlen}, {plen})")
        if op not in (ARP_REQUEST, ARP_REPLY):
            raise FrameError(f"ARP: unknown operation {op}")
        return cls(op, sha, IPv4Address(spa), tha, IPv4Address(tpa))

    @property
    def is_probe(self) -> bool:
        """RFC 5227 probe: sender IP 0.0.0.0."""
        return self.op == ARP_REQUEST and self.spa == ZERO4

    @property
    def is_gratuitous(self) -> bool:
        return self.spa == self.tpa and self.spa != ZERO4

    def frame(self, dst: bytes = BROADCAST_MAC) -> bytes:
        return Ethernet(dst, self.sha, ETH_P_ARP, self.encode()).encode()


def arp_request(mac: bytes, sender: IPv4Address, target: IPv4Address) -> Arp:
    return Arp(ARP_REQUEST, mac, sender, ZERO_MAC, target)


def arp_probe(mac: bytes, target: IPv4Address) -> Arp:
    return arp_request(mac, ZERO4, target)


def arp_reply(mac: bytes, sender: IPv4Address, tha: bytes, tpa: IPv4Address) -> Arp:
    return Arp(ARP_REPLY, mac, sender, tha, tpa)


def gratuitous_arps(mac: bytes, addr: IPv4Address) -> tuple[Arp, Arp]:
    """Request and reply forms (RFC 5227 announcement; RFC 5944 4.6 reply).

    Both because implementations differ on which one refreshes a cache.
    """
    return (arp_request(mac, addr, addr), arp_reply(mac, addr, BROADCAST_MAC, addr))


# --- IPv6 ---------------------------------------------------------------------


@dataclass(frozen=True)
class IPv6:
    src: IPv6Address
    dst: IPv6Address
    next_header: int
    hop_limit: int
    payload: bytes
    traffic_class: int = 0
    flow_label: int = 0

    def encode(self) -> bytes:
        word = 6 << 28 | (self.traffic_class & 0xFF) << 20 | self.flow_label & 0xFFFFF
        return (
            _IP6.pack(
                word,
                len(self.payload),
                self.next_header,
                self.hop_limit,
                self.src.packed,
                self.dst.packed,
            )
            + self.payload
        )

    @classmethod
    def decode(cls, data: bytes) -> IPv6:
        if len(data) < _IP6.size:
            raise FrameError(f"IPv6: {len(data)} bytes, need {_IP6.size}")
        word, plen, nh, hops, src, dst = _IP6.unpack_from(data)
        if word >> 28 != 6:
            raise FrameError(f"IPv6: version {word >> 28}")
        if plen > len(data) - _IP6.size:
            raise FrameError(f"IPv6: payload length {plen} > {len(data) - _IP6.size} bytes")
        payload = bytes(data[_IP6.size : _IP6.size + plen])  # drops Ethernet padding
        return cls(
            IPv6Address(src), IPv6Address(dst), nh, hops, payload, word >> 20 & 0xFF, word & 0xFFFFF
        )


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def icmpv6_checksum(src: IPv6Address, dst: IPv6Address, message: bytes) -> int:
    """RFC 4443 2.3: one's complement sum over the pseudo-header and message."""
    pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(message), IPPROTO_ICMPV6)
    return 0xFFFF - _sum16(pseudo + message)


def solicited_node(addr: IPv6Address) -> IPv6Address:
    """ff02::1:ffXX:XXXX from the low 24 bits (RFC 4291 2.7.1)."""
    return IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + addr.packed[13:])


def multicast_mac(group: IPv6Address) -> bytes:
    """33:33 + the low 32 bits of the group (RFC 2464 7)."""
    return b"\x33\x33" + group.packed[12:]


def link_local_eui64(mac: bytes) -> IPv6Address:
    """fe80::/64 + modified EUI-64 of ``mac`` (RFC 4291 appendix A)."""
    m = _mac(mac, "mac")
    iid = bytes((m[0] ^ 0x02, m[1], m[2], 0xFF, 0xFE, m[3], m[4], m[5]))
    return IPv6Address(b"\xfe\x80" + b"\0" * 6 + iid)


# --- Neighbor Discovery (RFC 4861) --------------------------------------------


def _lla_option(kind: int, mac: bytes | None) -> bytes:
    return b"" if mac is None else bytes((kind, 1)) + _mac(mac, "lla option")


def _options(data: bytes) -> dict[int, bytes]:
    """First occurrence of each option type; a zero length is invalid (7.1.1/7.1.2)."""
    found: dict[int, bytes] = {}
    pos = 0
    while pos < len(data):
        if len(data) - pos < 2 or data[pos + 1] == 0:
            raise FrameError("NDP: truncated option or option of length 0")
        end = pos + data[pos + 1] * 8
        if end > len(data):
            raise FrameError("NDP: option runs past the end of the message")
        found.setdefault(data[pos], bytes(data[pos + 2 : end]))
        pos = end
    return found


def _lla(options: dict[int, bytes], kind: int) -> bytes | None:
    value = options.get(kind)
    return None if value is None else value[:6] if len(value) >= 6 else None


@dataclass(frozen=True)
class NeighborSolicitation:
    target: IPv6Address
    sllao: bytes | None = None

    def encode(self, src: IPv6Address, dst: IPv6Address) -> bytes:
        body = _ND.pack(ICMP6_NS, 0, 0, 0, self.target.packed) + _lla_option(OPT_SLLA, self.sllao)
        return _with_checksum(body, src, dst)


@dataclass(frozen=True)
class NeighborAdvertisement:
    target: IPv6Address
    router: bool = False
    solicited: bool = False
    override: bool = False
    tllao: bytes | None = None

    def encode(self, src: IPv6Address, dst: IPv6Address) -> bytes:
        flags = self.router << 31 | self.solicited << 30 | self.override << 29
        body = _ND.pack(ICMP6_NA, 0, 0, flags, self.target.packed)
        return _with_checksum(body + _lla_option(OPT_TLLA, self.tllao), src, dst)


def _with_checksum(body: bytes, src: IPv6Address, dst: IPv6Address) -> bytes:
    return body[:2] + struct.pack("!H", icmpv6_checksum(src, dst, body)) + body[4:]


def decode_ndp(
    packet: IPv6, *, check_sum: bool = True
) -> NeighborSolicitation | NeighborAdvertisement:
    """RFC 4861 7.1.1/7.1.2 validity checks, then decode an NS or an NA.

    ``check_sum=False`` for frames whose checksum the kernel left to offload.
    """
    msg = packet.payload
    if packet.next_header != IPPROTO_ICMPV6:
        raise FrameError(f"NDP: next header {packet.next_header}, not ICMPv6")
    if packet.hop_limit != 255:  # off-link senders cannot forge 255
        raise FrameError(f"NDP: hop limit {packet.hop_limit}, must be 255")
    if len(msg) < _ND.size:
        raise FrameError(f"NDP: ICMPv6 length {len(msg)} < {_ND.size}")
    kind, code, _, flags, target = _ND.unpack_from(msg)
    if kind not in (ICMP6_NS, ICMP6_NA) or code != 0:
        raise FrameError(f"NDP: ICMPv6 type {kind} code {code}")
    if check_sum and _sum16(_pseudo(packet) + msg) != 0xFFFF:
        raise FrameError("NDP: bad ICMPv6 checksum")
    tgt = IPv6Address(target)
    if tgt.is_multicast:
        raise FrameError(f"NDP: multicast target {tgt}")
    options = _options(msg[_ND.size :])
    if kind == ICMP6_NS:
        return _ns(packet, tgt, options)
    if packet.dst.is_multicast and flags & 1 << 30:
        raise FrameError("NDP: solicited NA to a multicast address")
    return NeighborAdvertisement(
        tgt,
        bool(flags >> 31 & 1),
        bool(flags >> 30 & 1),
        bool(flags >> 29 & 1),
        _lla(options, OPT_TLLA),
    )


def _pseudo(packet: IPv6) -> bytes:
    return (
        packet.src.packed
        + packet.dst.packed
        + struct.pack("!I3xB", len(packet.payload), IPPROTO_ICMPV6)
    )


def _ns(packet: IPv6, target: IPv6Address, options: dict[int, bytes]) -> NeighborSolicitation:
    sllao = _lla(options, OPT_SLLA)
    if packet.src == UNSPECIFIED6 and (sllao is not None or packet.dst != solicited_node(target)):
        raise FrameError("NDP: DAD NS must go to the solicited-node group without SLLAO")
    return NeighborSolicitation(target, sllao)


def parse_na(packet: IPv6, target: IPv6Address, *, check_sum: bool = True) -> NeighborAdvertisement:
    """A valid NA for ``target``, or FrameError."""
    msg = decode_ndp(packet, check_sum=check_sum)
    if not isinstance(msg, NeighborAdvertisement):
        raise FrameError("NDP: not a Neighbor Advertisement")
    if msg.target != target:
        raise FrameError(f"NDP: NA for {msg.target}, not {target}")
    return msg


# --- whole frames ---------------------------------------------------------------


def ns_frame(mac: bytes, src: IPv6Address, target: IPv6Address) -> bytes:
    """NS for ``target`` to its solicited-node group, hop limit 255.

    The SLLAO is omitted only for DAD (unspecified source), as 7.1.1 requires.
    """
    dst = solicited_node(target)
    sllao = None if src == UNSPECIFIED6 else mac
    icmp = NeighborSolicitation(target, sllao).encode(src, dst)
    return Ethernet(
        multicast_mac(dst), mac, ETH_P_IPV6, IPv6(src, dst, IPPROTO_ICMPV6, 255, icmp).encode()
    ).encode()


def na_frame(
    mac: bytes,
    src: IPv6Address,
    dst: IPv6Address,
    advert: NeighborAdvertisement,
    dst_mac: bytes | None = None,
) -> bytes:
    """``advert`` from ``src``; a multicast ``dst`` picks its 33:33 MAC itself."""
    if dst_mac is None:
        if not dst.is_multicast:
            raise FrameError(f"NA to unicast {dst} needs a destination MAC")
        dst_mac = multicast_mac(dst)
    icmp = advert.encode(src, dst)
    return Ethernet(
        dst_mac, mac, ETH_P_IPV6, IPv6(src, dst, IPPROTO_ICMPV6, 255, icmp).encode()
    ).encode()


def unsolicited_na_frame(mac: bytes, addr: IPv6Address, src: IPv6Address | None = None) -> bytes:
    """RFC 4861 7.2.6: to all-nodes, S=0, O=1, with our MAC as TLLAO."""
    advert = NeighborAdvertisement(addr, override=True, tllao=mac)
    return na_frame(mac, addr if src is None else src, ALL_NODES, advert)
