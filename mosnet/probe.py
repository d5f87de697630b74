"""Which NIC reaches the gateway? Ask on all of them at once.

Static mode knows the gateway's address but not the port it hangs off. One
AF_PACKET socket per candidate NIC sends an ARP request (or, for IPv6, a
Neighbor Solicitation) for the gateway; the first NIC that hears the gateway
answer wins. All NICs are probed in the same rounds, so the cost is one
round-trip, not one timeout per wrong NIC.

A classic BPF filter per socket keeps everything but the answers we wait for
in the kernel. The kernel holds no address on these NICs yet, which is why we
build the frames ourselves (``mosnet.l2``).

The small socket helpers mirror ``mosnet.dhcp4.sock`` instead of importing
it: that import drags the whole DHCP client onto the static-mode boot path.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from mosnet import l2, log, netif
from mosnet.netif import interface_mac

_log = log.get("probe")

SO_ATTACH_FILTER = 26
SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_AUXDATA = 263, 1, 8
PACKET_MR_MULTICAST = 0
PACKET_OUTGOING = 4
TP_STATUS_CSUMNOTREADY = 8
_AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata
_DRAIN = 32  # frames read per wake-up before looking at the other sockets

# (frame, checksum verifiable) -> the gateway's MAC if this frame is its answer
Matcher = Callable[[bytes, bool], bytes | None]


@dataclass(frozen=True)
class ProbeResult:
    nic: str
    mac: bytes  # the gateway's
    rtt: float  # seconds since the latest request sent on ``nic``


def has_carrier(ifname: str) -> bool:
    """False for no carrier, a down interface and a missing one."""
    return netif.carrier(ifname) is True


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def arp_filter(gateway: IPv4Address) -> bytes:
    """ARP replies whose sender IP is ``gateway``; offsets from the Ethernet header."""
    return b"".join((
        _bpf(0x28, 0, 0, 12),  # ldh [12] ethertype
        _bpf(0x15, 0, 5, l2.ETH_P_ARP),
        _bpf(0x28, 0, 0, 20),  # ldh [20] ARP op
        _bpf(0x15, 0, 3, l2.ARP_REPLY),
        _bpf(0x20, 0, 0, 28),  # ld [28] sender IP
        _bpf(0x15, 0, 1, int(gateway)),
        _bpf(0x06, 0, 0, 0x40000),  # accept
        _bpf(0x06, 0, 0, 0),  # drop
    ))  # fmt: skip


# IPv6, next header ICMPv6 (NDP never carries extension headers), type 136 (NA).
NA_FILTER = b"".join((
    _bpf(0x28, 0, 0, 12),  # ldh [12] ethertype
    _bpf(0x15, 0, 5, l2.ETH_P_IPV6),
    _bpf(0x30, 0, 0, 20),  # ldb [20] next header
    _bpf(0x15, 0, 3, l2.IPPROTO_ICMPV6),
    _bpf(0x30, 0, 0, 54),  # ldb [54] ICMPv6 type
    _bpf(0x15, 0, 1, l2.ICMP6_NA),
    _bpf(0x06, 0, 0, 0x40000),
    _bpf(0x06, 0, 0, 0),
))  # fmt: skip


def attach_filter(sock: socket.socket, program: bytes) -> None:
    buf = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def packet_socket(ifname: str, ethertype: int, program: bytes) -> socket.socket:
    """Non-blocking SOCK_RAW socket on ``ifname`` that sees only ``program``'s frames."""
    # protocol 0 until the filter is attached: no unfiltered frames queue up
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        attach_filter(sock, program)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.bind((ifname, ethertype))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def join_multicast(sock: socket.socket, ifname: str, mac: bytes) -> None:
    """Make the NIC accept frames to ``mac`` even though the kernel has no IPv6 on it."""
    mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), PACKET_MR_MULTICAST, 6, mac)
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)


def _recv(sock: socket.socket) -> tuple[bytes, bool] | None:
    """(frame, checksum verifiable), or None for our own outgoing frames."""
    data, anc, _, addr = sock.recvmsg(2048, socket.CMSG_SPACE(_AUXDATA.size))
    if addr[2] == PACKET_OUTGOING:
        return None
    status = 0
    for level, kind, value in anc:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= _AUXDATA.size:
            status = _AUXDATA.unpack_from(value)[0]
    return data, not status & TP_STATUS_CSUMNOTREADY


@dataclass
class _Nic:
    name: str
    sock: socket.socket
    frame: bytes
    match: Matcher
    sent_at: float = 0.0
    said: set[str] = field(default_factory=set)  # log lines already written

    def once(self, key: str, msg: str, *args: object) -> None:
        if key not in self.said:
            self.said.add(key)
            _log.warning(msg, self.name, *args)

    def send(self) -> None:
        if not has_carrier(self.name):  # autoneg may still be running: try next round
            self.once("carrier", "%s: no carrier, not probing it (yet)")
            return
        try:
            self.sock.send(self.frame)
            self.sent_at = time.monotonic()
        except OSError as exc:
            self.once(f"send{exc.errno}", "%s: send failed: %s", exc)

    def receive(self) -> ProbeResult | None:
        for _ in range(_DRAIN):
            try:
                got = _recv(self.sock)
            except BlockingIOError:
                return None
            mac = None if got is None else self.match(*got)
            if mac is not None:
                return ProbeResult(self.name, mac, time.monotonic() - self.sent_at)
        return None


def _race(nics: list[_Nic], timeout: float, retries: int, interval: float) -> ProbeResult | None:
    """Send to all NICs every ``interval`` s (``retries`` rounds); first answer wins."""
    poller = select.poll()
    live = {nic.sock.fileno(): nic for nic in nics}
    for fd in live:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    next_send, rounds = time.monotonic(), 0
    while live and (now := time.monotonic()) < deadline:
        if rounds < retries and now >= next_send:
            for nic in live.values():
                nic.send()
            rounds, next_send = rounds + 1, now + interval
        wake = min(deadline, next_send) if rounds < retries else deadline
        for fd, _ in poller.poll(math.ceil(max(0.0, wake - time.monotonic()) * 1000)):
            nic = live[fd]
            try:
                result = nic.receive()
            except OSError as exc:  # this NIC is gone; the others carry on
                _log.warning("%s: receive failed, dropping it: %s", nic.name, exc)
                poller.unregister(fd)
                del live[fd]
                continue
            if result is not None:
                return result
    return None


def _open(
    nics: Sequence[str], ethertype: int, program: bytes, build: Callable[[str, bytes], bytes]
) -> list[tuple[str, socket.socket, bytes]]:
    """(name, socket, frame to send) per usable NIC; the others are logged and skipped."""
    opened = []
    for name in nics:
        try:
            mac = interface_mac(name)
            sock = packet_socket(name, ethertype, program)
        except (OSError, ValueError) as exc:
            _log.warning("%s: cannot probe on it: %s", name, exc)
            continue
        opened.append((name, sock, build(name, mac)))
    return opened


def _run(
    opened: list[tuple[str, socket.socket, bytes]],
    match: Matcher,
    timeout: float,
    retries: int,
    interval: float,
) -> ProbeResult | None:
    try:
        nics = [_Nic(name, sock, frame, match) for name, sock, frame in opened]
        return _race(nics, timeout, max(1, retries), interval)
    finally:
        close_later([sock for _, sock, _ in opened])


def close_later(socks: Sequence[socket.socket]) -> None:
    """Close AF_PACKET sockets off the boot path.

    The kernel's packet_release waits for an RCU grace period (~10 ms) per
    socket; three NICs would cost more than the probe itself.
    """
    if socks:
        threading.Thread(target=_close_all, args=(list(socks),), daemon=True).start()


def _close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()


def _report(what: str, names: Sequence[str], result: ProbeResult | None, timeout: float) -> None:
    if result is None:
        _log.warning("no answer from %s on %s within %.1f s", what, ", ".join(names), timeout)
    else:
        _log.info("%s is at %s on %s (rtt %.1f ms)", what, l2.mac_str(result.mac), result.nic,
                  result.rtt * 1000)  # fmt: skip


def find_gateway_nic(
    nics: Sequence[str],
    gateway: IPv4Address,
    *,
    timeout: float = 3.0,
    retries: int = 8,
    interval: float = 0.4,
    sender_ip: IPv4Address | None = None,
) -> ProbeResult | None:
    """The first NIC on which ``gateway`` answers an ARP request, or None.

    ``sender_ip`` should be our configured address: some provider gateways
    ignore RFC 5227 probes from 0.0.0.0 (used when None), and the address is
    ours to announce anyway. NICs must be up already. Never raises for one
    NIC's I/O errors; returns within ``timeout`` seconds.
    """
    sender = l2.ZERO4 if sender_ip is None else sender_ip

    def build(_: str, mac: bytes) -> bytes:
        return l2.arp_request(mac, sender, gateway).frame()

    def match(frame: bytes, _: bool) -> bytes | None:
        with contextlib.suppress(l2.FrameError):
            eth = l2.Ethernet.decode(frame)
            arp = l2.Arp.decode(eth.payload)
            if eth.ethertype == l2.ETH_P_ARP and arp.op == l2.ARP_REPLY and arp.spa == gateway:
                return arp.sha
        return None

    _log.info("ARP for gateway %s on %s (sender %s)", gateway, ", ".join(nics), sender)
    opened = _open(nics, l2.ETH_P_ARP, arp_filter(gateway), build)
    result = _run(opened, match, timeout, retries, interval)
    _report(f"gateway {gateway}", nics, result, timeout)
    return result


def find_gateway_nic6(
    nics: Sequence[str],
    gateway: IPv6Address,
    *,
    timeout: float = 3.0,
    retries: int = 8,
    interval: float = 0.4,
    source: IPv6Address | None = None,
) -> ProbeResult | None:
    """Like ``find_gateway_nic`` with a Neighbor Solicitation for ``gateway``.

    The source is each NIC's EUI-64 link-local address unless ``source`` is
    given; the NA may come back unicast to our MAC or to all-nodes.
    """

    def build(name: str, mac: bytes) -> bytes:
        return l2.ns_frame(mac, source or l2.link_local_eui64(mac), gateway)

    def match(frame: bytes, check_sum: bool) -> bytes | None:
        with contextlib.suppress(l2.FrameError):
            eth = l2.Ethernet.decode(frame)
            if eth.ethertype == l2.ETH_P_IPV6:
                na = l2.parse_na(l2.IPv6.decode(eth.payload), gateway, check_sum=check_sum)
                return na.tllao or eth.src
        return None

    _log.info("Neighbor Solicitation for gateway %s on %s", gateway, ", ".join(nics))
    opened = _open(nics, l2.ETH_P_IPV6, NA_FILTER, build)
    for name, sock, _ in opened:  # all-nodes, for gateways that answer by multicast
        with contextlib.suppress(OSError):
            join_multicast(sock, name, l2.multicast_mac(l2.ALL_NODES))
    result = _run(opened, match, timeout, retries, interval)
    _report(f"gateway {gateway}", nics, result, timeout)
    return result
