"""Pure IPv6 codecs for neighbour discovery: the IPv6 header, ICMPv6 NS/NA, whole frames.

Same rules as ``mosnet.l2.frames``: struct-based, frozen dataclasses, and
decoders that raise only ``FrameError``. Also the addresses NDP derives
(solicited-node groups, their 33:33 MACs, EUI-64 link-locals) and the one
read of the kernel's link-local address that the DHCPv6 and RA sockets need.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from ipaddress import IPv6Address

from mosnet.l2.frames import ETH_P_IPV6, Ethernet, FrameError, checked_mac

IPPROTO_ICMPV6 = 58
ICMP6_NS, ICMP6_NA = 135, 136
OPT_SLLA, OPT_TLLA = 1, 2
UNSPECIFIED6 = IPv6Address(0)
ALL_NODES = IPv6Address("ff02::1")
IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x08, 0x40

_IP6 = struct.Struct("!IHBB16s16s")
_ND = struct.Struct("!BBHI16s")  # type, code, checksum, flags/reserved, target


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
    m = checked_mac(mac, "mac")
    iid = bytes((m[0] ^ 0x02, m[1], m[2], 0xFF, 0xFE, m[3], m[4], m[5]))
    return IPv6Address(b"\xfe\x80" + b"\0" * 6 + iid)


# --- Neighbor Discovery (RFC 4861) --------------------------------------------


def _lla_option(kind: int, mac: bytes | None) -> bytes:
    return b"" if mac is None else bytes((kind, 1)) + checked_mac(mac, "lla option")


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


# --- the kernel's link-local address -------------------------------------------


def link_local(ifname: str, wait: float = 0.0, *, tentative_ok: bool = False) -> IPv6Address | None:
    """The interface's link-local address once DAD is done (polled for ``wait`` s)."""
    end = time.monotonic() + wait
    while True:
        addr = _proc_link_local(ifname, tentative_ok)
        if addr is not None or time.monotonic() >= end:
            return addr
        time.sleep(0.05)


def _proc_link_local(ifname: str, tentative_ok: bool = False) -> IPv6Address | None:
    """From /proc/net/if_inet6 (no netlink needed); DAD-failed ones never."""
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) != 6 or parts[5] != ifname or parts[3] != "20":
            continue
        bad = IFA_F_DADFAILED | (0 if tentative_ok else IFA_F_TENTATIVE)
        if int(parts[4], 16) & bad:
            continue
        return IPv6Address(int(parts[0], 16))
    return None
