"""Which NIC reaches the gateway? Ask on all of them at once.

Static mode knows the gateway's address but not the port it hangs off. One
AF_PACKET socket per candidate NIC sends an ARP request (or, for IPv6, a
Neighbor Solicitation) for the gateway; the first NIC that hears the gateway
answer wins. All NICs are probed in the same rounds, so the cost is one
round-trip, not one timeout per wrong NIC.

A classic BPF filter per socket keeps everything but the answers we wait for
in the kernel. The kernel holds no address on these NICs yet, which is why we
build the frames ourselves (``mosnet.l2.frames``, ``mosnet.l2.nd``). The
sockets are ``mosnet.l2.packet``'s, as the DHCPv4 client's are.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from mosnet.base import log, netif
from mosnet.base.netif import interface_mac
from mosnet.l2 import bpf, frames, nd
from mosnet.l2.packet import (
    AUXDATA_SPACE,
    PACKET_OUTGOING,
    checksum_ready,
    close_later,
    join_multicast,
    packet_socket,
)

_log = log.get("probe")

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


def arp_filter(gateway: IPv4Address) -> bytes:
    """ARP replies whose sender IP is ``gateway``; offsets from the Ethernet header."""
    return bpf.program(
        bpf.stmt(bpf.LDH, 12),  # ethertype
        bpf.jump(bpf.JEQ, frames.ETH_P_ARP, 0, 5),
        bpf.stmt(bpf.LDH, 20),  # ARP op
        bpf.jump(bpf.JEQ, frames.ARP_REPLY, 0, 3),
        bpf.stmt(bpf.LD, 28),  # sender IP
        bpf.jump(bpf.JEQ, int(gateway), 0, 1),
        bpf.ACCEPT,
        bpf.DROP,
    )


# IPv6, next header ICMPv6 (NDP never carries extension headers), type 136 (NA).
NA_FILTER = bpf.program(
    bpf.stmt(bpf.LDH, 12),  # ethertype
    bpf.jump(bpf.JEQ, frames.ETH_P_IPV6, 0, 5),
    bpf.stmt(bpf.LDB, 20),  # next header
    bpf.jump(bpf.JEQ, nd.IPPROTO_ICMPV6, 0, 3),
    bpf.stmt(bpf.LDB, 54),  # ICMPv6 type
    bpf.jump(bpf.JEQ, nd.ICMP6_NA, 0, 1),
    bpf.ACCEPT,
    bpf.DROP,
)


def _recv(sock: socket.socket) -> tuple[bytes, bool] | None:
    """(frame, checksum verifiable), or None for our own outgoing frames."""
    data, anc, _, addr = sock.recvmsg(2048, AUXDATA_SPACE)
    if addr[2] == PACKET_OUTGOING:
        return None
    return data, checksum_ready(anc)


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


def _report(what: str, names: Sequence[str], result: ProbeResult | None, timeout: float) -> None:
    if result is None:
        _log.warning("no answer from %s on %s within %.1f s", what, ", ".join(names), timeout)
    else:
        _log.info("%s is at %s on %s (rtt %.1f ms)", what, frames.mac_str(result.mac), result.nic,
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
    sender = frames.ZERO4 if sender_ip is None else sender_ip

    def build(_: str, mac: bytes) -> bytes:
        return frames.arp_request(mac, sender, gateway).frame()

    def match(frame: bytes, _: bool) -> bytes | None:
        with contextlib.suppress(frames.FrameError):
            eth = frames.Ethernet.decode(frame)
            arp = frames.Arp.decode(eth.payload)
            if (
                eth.ethertype == frames.ETH_P_ARP
                and arp.op == frames.ARP_REPLY
                and arp.spa == gateway
            ):
                return arp.sha
        return None

    _log.info("ARP for gateway %s on %s (sender %s)", gateway, ", ".join(nics), sender)
    opened = _open(nics, frames.ETH_P_ARP, arp_filter(gateway), build)
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
        return nd.ns_frame(mac, source or nd.link_local_eui64(mac), gateway)

    def match(frame: bytes, check_sum: bool) -> bytes | None:
        with contextlib.suppress(frames.FrameError):
            eth = frames.Ethernet.decode(frame)
            if eth.ethertype == frames.ETH_P_IPV6:
                na = nd.parse_na(nd.IPv6.decode(eth.payload), gateway, check_sum=check_sum)
                return na.tllao or eth.src
        return None

    _log.info("Neighbor Solicitation for gateway %s on %s", gateway, ", ".join(nics))
    opened = _open(nics, frames.ETH_P_IPV6, NA_FILTER, build)
    for name, sock, _ in opened:  # all-nodes, for gateways that answer by multicast
        with contextlib.suppress(OSError):
            join_multicast(sock, name, nd.multicast_mac(nd.ALL_NODES))
    result = _run(opened, match, timeout, retries, interval)
    _report(f"gateway {gateway}", nics, result, timeout)
    return result
