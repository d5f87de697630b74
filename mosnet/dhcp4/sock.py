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
import ctypes
import select
import socket
import struct
import time
from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import Protocol

from mosnet.dhcp4 import codec
from mosnet.netif import interface_mac
from mosnet.wake import wait_readable

ETH_P_IP, ETH_P_ARP = 0x0800, 0x0806
SO_ATTACH_FILTER = 26
SO_BINDTODEVICE = 25
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_CSUMNOTREADY = 8
_AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata
BROADCAST_MAC = b"\xff" * 6


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


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


# IPv4, UDP, not a fragment (offset 0, no MF: we cannot reassemble), dst port 68.
# Offsets are relative to the IP header because the socket is SOCK_DGRAM.
# fmt: off
_FILTER = b"".join((
    _bpf(0x30, 0, 0, 0),            # ldb [0]
    _bpf(0x54, 0, 0, 0xF0),         # and #0xf0
    _bpf(0x15, 0, 8, 0x40),         # jeq #0x40 (version 4) else drop
    _bpf(0x30, 0, 0, 9),            # ldb [9]
    _bpf(0x15, 0, 6, 17),           # jeq #17 (UDP) else drop
    _bpf(0x28, 0, 0, 6),            # ldh [6]
    _bpf(0x45, 4, 0, 0x3FFF),       # jset #0x3fff (MF|offset) -> drop
    _bpf(0xB1, 0, 0, 0),            # ldxb 4*([0]&0xf): skip IP options
    _bpf(0x48, 0, 0, 2),            # ldh [x+2] (UDP dst port)
    _bpf(0x15, 0, 1, codec.CLIENT_PORT),
    _bpf(0x06, 0, 0, 0x40000),      # accept
    _bpf(0x06, 0, 0, 0),            # drop
))
# fmt: on


def _attach_filter(sock: socket.socket, program: bytes) -> None:
    buf = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class PacketTransport:
    """The real transport on one interface. Needs CAP_NET_RAW."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.ifindex = socket.if_nametoindex(ifname)
        self.mac = interface_mac(ifname)
        # protocol 0 until the filter is attached: no unfiltered packets queue up
        self._raw = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        try:
            _attach_filter(self._raw, _FILTER)
            self._raw.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            self._raw.bind((ifname, ETH_P_IP))
        except OSError:
            self._raw.close()
            raise
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
        data, anc, _, _ = self._raw.recvmsg(65535, socket.CMSG_SPACE(_AUXDATA.size))
        status = 0
        for level, kind, value in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= _AUXDATA.size:
                status = _AUXDATA.unpack_from(value)[0]
        try:
            return codec.parse_ip_udp(data, check_udp=not status & TP_STATUS_CSUMNOTREADY)[4]
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
