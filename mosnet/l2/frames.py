"""Pure link-layer codecs: Ethernet II and ARP, and the MAC helpers.

struct-based on purpose: scapy's import alone costs 150-300 ms on the boot
path. Every value is a frozen dataclass; every decoder raises only
``FrameError`` whatever bytes it is fed, because they read off the wire.
IPv6 and its neighbour discovery live in ``mosnet.l2.nd``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from mosnet.base.errors import MosnetError

ETH_P_IP, ETH_P_ARP, ETH_P_IPV6 = 0x0800, 0x0806, 0x86DD
ARP_REQUEST, ARP_REPLY = 1, 2
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\0" * 6
ZERO4 = IPv4Address(0)
ETH_MIN = 60  # shortest Ethernet frame without FCS; we pad ourselves, some drivers don't

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")


class FrameError(MosnetError, ValueError):
    """A frame or packet we cannot use; the only exception decoders raise."""


def checked_mac(value: bytes, what: str) -> bytes:
    """``value`` as bytes if it is 6 long, else FrameError naming ``what``."""
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
        head = _ETH.pack(checked_mac(self.dst, "dst"), checked_mac(self.src, "src"), self.ethertype)
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
            checked_mac(self.sha, "sha"),
            self.spa.packed,
            checked_mac(self.tha, "tha"),
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
