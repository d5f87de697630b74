"""Sockets for the DHCPv4 client: a filtered AF_PACKET socket plus a UDP one.

Before we have an address the kernel's UDP stack cannot send from 0.0.0.0 or
receive replies sent to an address we do not hold yet, so DISCOVER/REQUEST go
out as hand-built IPv4/UDP frames on an AF_PACKET socket. A classic BPF filter
keeps everything but UDP to port 68 in the kernel, so a busy link costs no
Python wake-ups. Renewals are unicast from the leased address through an
ordinary UDP socket; replies can then arrive on either socket, so both are read.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import Protocol

from mosnet.base.netif import interface_mac
from mosnet.base.wake import wait_readable
from mosnet.dhcp4 import codec
from mosnet.l2 import bpf
from mosnet.l2.frames import BROADCAST_MAC, ETH_P_ARP, ETH_P_IP
from mosnet.l2.packet import AUXDATA_SPACE, checksum_ready, packet_socket

SO_BINDTODEVICE = 25


class Transport(Protocol):
    """What the client needs from the network; tests inject a fake."""

    mac: bytes

    def send_broadcast(self, payload: bytes, src: IPv4Address) -> None: ...

    def send_unicast(self, payload: bytes, server: IPv4Address, src: IPv4Address) -> None: ...

    def recv(self, timeout: float | None, wake: Sequence[int] = ()) -> bytes | None:
        """One DHCP payload (UDP data), or None after ``timeout`` seconds (None:
        no limit) or as soon as one of the ``wake`` fds is readable."""
        ...

    def probe(self, addr: IPv4Address, count: int, wait: float) -> bool:
        """RFC 5227 ARP probe: True if someone else uses ``addr``."""
        ...

    def close(self) -> None: ...


# IPv4, UDP, not a fragment (offset 0, no MF: we cannot reassemble), dst port 68.
# Offsets are relative to the IP header because the socket is SOCK_DGRAM.
_FILTER = bpf.program(
    bpf.stmt(bpf.LDB, 0),
    bpf.stmt(bpf.AND, 0xF0),
    bpf.jump(bpf.JEQ, 0x40, 0, 8),  # version 4, else drop
    bpf.stmt(bpf.LDB, 9),
    bpf.jump(bpf.JEQ, 17, 0, 6),  # UDP, else drop
    bpf.stmt(bpf.LDH, 6),
    bpf.jump(bpf.JSET, 0x3FFF, 4, 0),  # MF or an offset: drop
    bpf.stmt(bpf.LDX_IP_HEADER, 0),  # skip IP options
    bpf.stmt(bpf.LDH_X, 2),  # UDP dst port
    bpf.jump(bpf.JEQ, codec.CLIENT_PORT, 0, 1),
    bpf.ACCEPT,
    bpf.DROP,
)


class PacketTransport:
    """The real transport on one interface. Needs CAP_NET_RAW."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.ifindex = socket.if_nametoindex(ifname)
        self.mac = interface_mac(ifname)
        self._raw = packet_socket(ifname, ETH_P_IP, _FILTER, socket.SOCK_DGRAM, blocking=True)
        self._udp: socket.socket | None = None
        self._udp_src: IPv4Address | None = None

    def send_broadcast(self, payload: bytes, src: IPv4Address) -> None:
        frame = codec.ip_udp_frame(
            src, IPv4Address("255.255.255.255"), codec.CLIENT_PORT, codec.SERVER_PORT, payload
        )
        self._raw.sendto(frame, (self.ifname, ETH_P_IP, 0, 0, BROADCAST_MAC))

    def send_unicast(self, payload: bytes, server: IPv4Address, src: IPv4Address) -> None:
        self._udp_socket(src).sendto(payload, (str(server), codec.SERVER_PORT))

    def _udp_socket(self, src: IPv4Address) -> socket.socket:
        if self._udp is None or self._udp_src != src:
            self._close_udp()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.ifname.encode())
                sock.bind((str(src), codec.CLIENT_PORT))
            except OSError:
                sock.close()
                raise
            self._udp, self._udp_src = sock, src
        return self._udp

    def fileno(self) -> int:
        """The AF_PACKET socket, for one select loop over many NICs (the probe)."""
        return self._raw.fileno()

    def recv(self, timeout: float | None, wake: Sequence[int] = ()) -> bytes | None:
        socks = [self._raw] + ([self._udp] if self._udp else [])
        ready = wait_readable([s.fileno() for s in socks] + list(wake), timeout)
        if self._udp is not None and self._udp.fileno() in ready:
            return self._udp.recv(65535)
        if self._raw.fileno() in ready:
            return self._recv_raw()
        return None

    def _recv_raw(self) -> bytes:
        data, anc, _, _ = self._raw.recvmsg(65535, AUXDATA_SPACE)
        try:
            return codec.parse_ip_udp(data, check_udp=checksum_ready(anc))[4]
        except codec.DecodeError:
            return b""  # not a valid datagram; the caller just reads again

    def probe(self, addr: IPv4Address, count: int = 2, wait: float = 1.0) -> bool:
        return arp_probe(self.ifname, self.mac, addr, count, wait)

    def _close_udp(self) -> None:
        if self._udp is not None:
            self._udp.close()
        self._udp = self._udp_src = None

    def close(self) -> None:
        self._close_udp()
        self._raw.close()


def arp_request(mac: bytes, sender: IPv4Address, target: IPv4Address) -> bytes:
    return struct.pack(
        "!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, mac, sender.packed, b"\0" * 6, target.packed
    )


def arp_conflict(packet: bytes, mac: bytes, addr: IPv4Address) -> bool:
    """RFC 5227 2.1.1: a reply/request from ``addr``, or someone else probing it."""
    if len(packet) < 28:
        return False
    _, ptype, _, _, _, sha, spa, _, tpa = struct.unpack_from("!HHBBH6s4s6s4s", packet)
    if ptype != ETH_P_IP or sha == mac:
        return False
    return bool(spa == addr.packed or (spa == b"\0" * 4 and tpa == addr.packed))


def arp_probe(ifname: str, mac: bytes, addr: IPv4Address, count: int, wait: float) -> bool:
    """Send ``count`` probes (sender IP 0.0.0.0) within ``wait`` s; True on conflict."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((ifname, ETH_P_ARP))
        probe = arp_request(mac, codec.ZERO, addr)
        end = time.monotonic() + wait
        gap = wait / (count + 1)
        next_send = time.monotonic()
        sent = 0
        while (left := end - time.monotonic()) > 0:
            if sent < count and time.monotonic() >= next_send:
                with contextlib.suppress(OSError):
                    sock.sendto(probe, (ifname, ETH_P_ARP, 0, 0, BROADCAST_MAC))
                sent, next_send = sent + 1, next_send + gap
            ready, _, _ = select.select([sock], [], [], min(left, max(0.0, gap)))
            if ready and arp_conflict(sock.recv(1500), mac, addr):
                return True
    return False
