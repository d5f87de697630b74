"""NDP MAC NAT for the Linux-bridge backend, in user space (issue 6 §2-3).

nftables cannot rewrite NDP's link-layer address options (they sit behind
the ICMPv6 checksum, and nft 1.0.6 computes none for raw payload writes), so
``mosnet.macnat.bridgenft`` drops guest NS/NA at the uplink. This relay picks them up
where the guest sent them (a packet socket on all interfaces, keeping frames
received on br-mosnet's guest ports), rewrites the Ethernet source and the
SLLAO/TLLAO to the NIC MAC with a fresh checksum, and sends them out of the
uplink itself. It also learns the guests' addresses (ARP sender, NS source,
NA target) into a ``GuestTable`` that the ARP/NDP proxy answers for.

Pure parts (``rewrite``, ``guest_port``) are separate from the socket loop.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable

from mosnet.base import log, wake
from mosnet.base.names import BRIDGE
from mosnet.l2 import bpf, frames, nd
from mosnet.l2.packet import ETH_P_ALL, PACKET_OUTGOING, send_socket
from mosnet.macnat import guests
from mosnet.proxy.proxyd import TokenBucket

_log = log.get("ndprelay")
RELAY_RATE, RELAY_BURST = 200.0, 400.0
_DRAIN = 64

# ARP (any op), or IPv6 + ICMPv6 type 135/136.
GUEST_FILTER = bpf.program(
    bpf.stmt(bpf.LDH, 12),  # 0 ethertype
    bpf.jump(bpf.JEQ, frames.ETH_P_ARP, 6, 0),  # 1 ARP: accept at 8
    bpf.jump(bpf.JEQ, frames.ETH_P_IPV6, 0, 6),  # 2 IPv6? else drop at 9
    bpf.stmt(bpf.LDB, 20),  # 3 next header
    bpf.jump(bpf.JEQ, nd.IPPROTO_ICMPV6, 0, 4),  # 4
    bpf.stmt(bpf.LDB, 54),  # 5 ICMPv6 type
    bpf.jump(bpf.JEQ, nd.ICMP6_NS, 1, 0),  # 6 NS: accept
    bpf.jump(bpf.JEQ, nd.ICMP6_NA, 0, 1),  # 7 NA: accept, else drop
    bpf.ACCEPT,  # 8
    bpf.DROP,  # 9
)


def _all_interfaces_socket() -> socket.socket:
    """Unbound (every interface); frames that slipped in before the filter are drained."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        bpf.attach(sock, GUEST_FILTER)
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                sock.recv(1)
    except OSError:
        sock.close()
        raise
    return sock


def rewrite(frame: bytes, nat_mac: bytes) -> bytes | None:
    """A guest NS/NA as the provider may see it (NIC MAC inside and out), or None."""
    try:
        eth = frames.Ethernet.decode(frame)
        if eth.ethertype != frames.ETH_P_IPV6:
            return None
        ip6 = nd.IPv6.decode(eth.payload)
        msg = nd.decode_ndp(ip6, check_sum=False)  # the guest's kernel may leave it to offload
    except frames.FrameError:
        return None
    body: nd.NeighborSolicitation | nd.NeighborAdvertisement
    if isinstance(msg, nd.NeighborSolicitation):
        body = nd.NeighborSolicitation(msg.target, nat_mac if msg.sllao else None)
    else:
        body = nd.NeighborAdvertisement(
            msg.target, msg.router, msg.solicited, msg.override, nat_mac if msg.tllao else None
        )
    icmp = body.encode(ip6.src, ip6.dst)
    packet = nd.IPv6(ip6.src, ip6.dst, nd.IPPROTO_ICMPV6, 255, icmp, ip6.traffic_class,
                     ip6.flow_label)  # fmt: skip
    return frames.Ethernet(eth.dst, nat_mac, frames.ETH_P_IPV6, packet.encode()).encode()


def guest_port(ifname: str, uplink: str, sysfs: str = "/sys/class/net") -> bool:
    """Is ``ifname`` a port of br-mosnet other than the uplink?"""
    if ifname == uplink:
        return False
    try:
        master = os.path.basename(os.readlink(f"{sysfs}/{ifname}/master"))
    except OSError:
        return False
    return master == BRIDGE


class Relay:
    """The socket loop; ``table`` is shared with the proxy, which answers from it."""

    def __init__(
        self,
        uplink: str,
        nat_mac: bytes,
        table: guests.GuestTable,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uplink, self.nat_mac, self.table, self.clock = uplink, nat_mac, table, clock
        self.bucket = TokenBucket(RELAY_RATE, RELAY_BURST, clock())
        self.ports: dict[str, tuple[bool, float]] = {}  # ifname -> (guest port?, checked)
        self.relayed = 0

    def _is_guest(self, ifname: str) -> bool:
        cached = self.ports.get(ifname)
        if cached is not None and self.clock() - cached[1] < 5.0:
            return cached[0]
        if len(self.ports) > 4096:
            self.ports.clear()
        verdict = guest_port(ifname, self.uplink)
        self.ports[ifname] = (verdict, self.clock())
        return verdict

    def handle(self, frame: bytes, ifname: str, out: socket.socket) -> None:
        if frame[6:12] == self.nat_mac or not self._is_guest(ifname):
            return
        mac, addresses = guests.frame_addresses(frame)
        for ip in addresses:
            learned = self.table.learn(ip, mac)
            if learned is not None and learned[1]:
                _log.info("guest address %s at %s (%s)", ip, frames.mac_str(mac), ifname)
        if frame[12:14] != b"\x86\xdd" or not self.bucket.take(self.clock()):
            return
        rewritten = rewrite(frame, self.nat_mac)
        if rewritten is not None:
            with contextlib.suppress(OSError):
                out.sendto(rewritten, (self.uplink, frames.ETH_P_IPV6))
                self.relayed += 1

    def run(
        self,
        should_stop: Callable[[], bool],
        wake_fd: int | None = None,
        poll_interval: float | None = None,
    ) -> None:
        """Relay until ``should_stop()``, sleeping until a frame or ``wake_fd``.

        ``poll_interval`` bounds each sleep (for callers without a wake fd);
        nothing here is periodic: the port cache and the guest table age
        lazily, the token bucket refills on use.
        """
        listen = _all_interfaces_socket()
        out = send_socket()
        fds = [listen.fileno()] + ([wake_fd] if wake_fd is not None else [])
        try:
            _log.info("NDP relay: guest NS/NA leave %s as %s", self.uplink,
                      frames.mac_str(self.nat_mac))  # fmt: skip
            while not should_stop():
                if listen.fileno() in wake.wait_readable(fds, poll_interval):
                    self._drain(listen, out)
        finally:
            listen.close()
            out.close()

    def _drain(self, listen: socket.socket, out: socket.socket) -> None:
        for _ in range(_DRAIN):
            try:
                frame, addr = listen.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            if addr[2] != PACKET_OUTGOING:
                self.handle(frame, addr[0], out)
