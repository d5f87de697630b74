"""The ARP/NDP proxy's socket loop, rate limiting and start-up announcements.

One AF_PACKET socket on the NIC; a classic BPF filter keeps everything but
ARP requests and ICMPv6 Neighbor Solicitations in the kernel. ``proxy.decide``
picks the reply; token buckets (one per requester MAC, one global) cap what
we send, and while the global bucket is empty frames are dropped unread, so
a flood of 10k requests/s costs a recv each and no decoding. The socket's
receive buffer bounds the rest: the kernel drops what we do not read.

Linux-bridge path; in OVS mode ``mosnet.ovs.ofcontrol`` gets the same requests
as packet-ins and uses the same ``proxy.decide`` and rate limiter.
``guests`` are learned guest addresses (``mosnet.macnat.ndprelay`` fills them).
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from mosnet.base import log, wake
from mosnet.l2 import bpf, frames, nd
from mosnet.l2.announce import send_rounds
from mosnet.l2.packet import (
    AUXDATA_SPACE,
    ETH_P_ALL,
    PACKET_OUTGOING,
    checksum_ready,
    join_multicast,
    packet_socket,
)
from mosnet.proxy.answers import NO_GUESTS, ProxyConfig, decide

_log = log.get("proxyd")

_DRAIN = 64  # frames per wake-up, then look at should_stop again

# ARP op 1, or IPv6 + next header ICMPv6 + type 135 (NDP has no extension headers).
REQUEST_FILTER = bpf.program(
    bpf.stmt(bpf.LDH, 12),  # 0 ethertype
    bpf.jump(bpf.JEQ, frames.ETH_P_ARP, 0, 2),  # 1 ARP? else 4
    bpf.stmt(bpf.LDH, 20),  # 2 ARP op
    bpf.jump(bpf.JEQ, frames.ARP_REQUEST, 5, 6),  # 3 accept at 9, drop at 10
    bpf.jump(bpf.JEQ, frames.ETH_P_IPV6, 0, 5),  # 4 IPv6? else drop
    bpf.stmt(bpf.LDB, 20),  # 5 next header
    bpf.jump(bpf.JEQ, nd.IPPROTO_ICMPV6, 0, 3),  # 6
    bpf.stmt(bpf.LDB, 54),  # 7 ICMPv6 type
    bpf.jump(bpf.JEQ, nd.ICMP6_NS, 0, 1),  # 8
    bpf.ACCEPT,  # 9
    bpf.DROP,  # 10
)


@dataclass(frozen=True)
class Limits:
    """Replies per second (rate) and in one go (burst)."""

    per_rate: float = 5.0  # a gateway asks for each address at most every few s
    per_burst: float = 20.0  # ...but may ask for the host and all guests at once
    global_rate: float = 100.0
    global_burst: float = 200.0
    max_requesters: int = 4096  # bounded memory under a flood of random MACs


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.stamp)  # a clock going back must not mint tokens
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.stamp = now

    def ready(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> bool:
        if not self.ready(now):
            return False
        self.tokens -= 1.0
        return True


class RateLimiter:
    """A per-requester bucket (LRU-bounded) in front of a global one."""

    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        self.limits, self.clock = limits, clock
        self.overall = TokenBucket(limits.global_rate, limits.global_burst, clock())
        self.requesters: OrderedDict[bytes, TokenBucket] = OrderedDict()

    def exhausted(self) -> bool:
        """No reply could go out now: skip decoding altogether."""
        return not self.overall.ready(self.clock())

    def allow(self, requester: bytes) -> bool:
        now = self.clock()
        if not self.overall.ready(now):
            return False
        bucket = self.requesters.get(requester)
        if bucket is None:
            lim = self.limits
            bucket = self.requesters[requester] = TokenBucket(lim.per_rate, lim.per_burst, now)
            if len(self.requesters) > lim.max_requesters:
                self.requesters.popitem(last=False)
        else:
            self.requesters.move_to_end(requester)
        return bucket.take(now) and self.overall.take(now)


@dataclass
class Counters:
    received: int = 0
    answered: int = 0
    ignored: int = 0  # decide() said no
    limited: int = 0  # rate limit; includes frames dropped unread
    errors: int = 0

    def line(self) -> str:
        return (
            f"{self.received} received, {self.answered} answered, {self.ignored} ignored, "
            f"{self.limited} rate-limited, {self.errors} errors"
        )


@dataclass
class _Loop:
    ifname: str
    cfg: ProxyConfig
    sock: socket.socket
    limiter: RateLimiter
    counters: Counters
    guests: Container[IPv4Address | IPv6Address] = field(default=NO_GUESTS)

    def drain(self) -> bool:
        """Handle queued frames; False after a socket error (caller backs off)."""
        for _ in range(_DRAIN):
            try:
                data, anc, _, addr = self.sock.recvmsg(2048, AUXDATA_SPACE)
            except BlockingIOError:
                return True
            except OSError as exc:  # link down, interface gone: keep trying
                self.counters.errors += 1
                _log.debug("%s: receive failed: %s", self.ifname, exc)
                return False
            if addr[2] != PACKET_OUTGOING:  # our replies and our guests' own DAD
                self.handle(data, checksum_ready(anc))
        return True

    def handle(self, frame: bytes, check_sum: bool) -> None:
        self.counters.received += 1
        if self.limiter.exhausted():
            self.counters.limited += 1
            return
        try:
            reply = decide(frame, self.cfg, check_sum=check_sum, guests=self.guests)
        except Exception:  # decide() is fuzzed never to raise; a bug must not stop the proxy
            self.counters.errors += 1
            _log.exception("%s: proxy decision failed on %s", self.ifname, frame[:80].hex())
            return
        if reply is None:
            self.counters.ignored += 1
        elif not self.limiter.allow(frame[6:12]):  # keyed by the requester's MAC
            self.counters.limited += 1
        else:
            self.send(reply)

    def send(self, reply: bytes) -> None:
        ethertype = int.from_bytes(reply[12:14], "big")
        try:
            self.sock.sendto(reply, (self.ifname, ethertype))
            self.counters.answered += 1
        except OSError as exc:
            self.counters.errors += 1
            _log.debug("%s: reply not sent: %s", self.ifname, exc)


def open_socket(ifname: str, cfg: ProxyConfig) -> socket.socket:
    """The filtered socket, subscribed to each answered address's solicited-node group."""
    sock = packet_socket(ifname, ETH_P_ALL, REQUEST_FILTER)
    try:
        for addr in sorted(cfg.answered6):
            join_multicast(sock, ifname, nd.multicast_mac(nd.solicited_node(addr)))
    except OSError:
        sock.close()
        raise
    return sock


def run(
    ifname: str,
    cfg: ProxyConfig,
    should_stop: Callable[[], bool],
    *,
    clock: Callable[[], float] = time.monotonic,
    limits: Limits = Limits(),
    wake_fd: int | None = None,
    poll_interval: float | None = None,
    error_backoff: float = 0.25,
    stats_every: float = 60.0,
    guests: Container[IPv4Address | IPv6Address] = NO_GUESTS,
) -> Counters:
    """Answer for ``cfg``'s addresses on ``ifname`` until ``should_stop()``.

    Sleeps until a frame arrives or ``wake_fd`` (a ``mosnet.base.wake.Waker``)
    turns readable; ``poll_interval`` bounds the sleep for callers without
    one. Nothing here is periodic: the buckets refill and guest bindings age
    when a frame asks. Raises OSError only if the socket cannot be opened;
    nothing received makes it raise. Returns the counters, which are also
    logged at debug level after a wake-up at least ``stats_every`` s after
    the last line (idle, they do not change).
    """
    sock = open_socket(ifname, cfg)
    counters = Counters()
    loop = _Loop(ifname, cfg, sock, RateLimiter(limits, clock), counters, guests)
    addrs = ", ".join([*map(str, sorted(cfg.answered4)), *map(str, sorted(cfg.answered6))])
    _log.info("%s: ARP/NDP proxy for %s at %s", ifname, addrs, frames.mac_str(cfg.nat_mac))
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    if wake_fd is not None:
        poller.register(wake_fd, select.POLLIN)
    timeout_ms = None if poll_interval is None else int(poll_interval * 1000)
    next_stats = clock() + stats_every
    try:
        while not should_stop():
            # the wake fd alone: drain() finds nothing and should_stop() is true
            if poller.poll(timeout_ms) and not loop.drain():
                # an erroring socket polls ready: do not spin (but still stop at once)
                _pause(wake_fd, error_backoff)
            if clock() >= next_stats:
                next_stats = clock() + stats_every
                _log.debug("%s: proxy: %s", ifname, counters.line())
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    _log.info("%s: ARP/NDP proxy stopped: %s", ifname, counters.line())
    return counters


def _pause(wake_fd: int | None, seconds: float) -> None:
    if wake_fd is None:
        time.sleep(seconds)
    else:
        wake.wait_readable([wake_fd], seconds)


def announcement_frames(cfg: ProxyConfig) -> list[tuple[int, bytes]]:
    """(ethertype, frame): gratuitous ARP request + reply, unsolicited NA (O=1)."""
    mac = cfg.nat_mac
    out = [
        (frames.ETH_P_ARP, arp.frame())
        for addr in sorted(cfg.answered4)
        for arp in frames.gratuitous_arps(mac, addr)
    ]
    out += [(frames.ETH_P_IPV6, nd.unsolicited_na_frame(mac, a)) for a in sorted(cfg.answered6)]
    return out


def announce_all(ifname: str, cfg: ProxyConfig, *, count: int = 2, interval: float = 0.2) -> int:
    """Announce every configured address (never a gateway); returns frames sent.

    Best effort, never raises: a failed announcement only delays the moment
    neighbours learn the NAT MAC until they ask, which the proxy answers.
    """
    sent = send_rounds(ifname, announcement_frames(cfg), count, interval)
    naddrs = len(cfg.answered4) + len(cfg.answered6)
    _log.info("%s: announced %d addresses at %s (%d frames)", ifname, naddrs,
              frames.mac_str(cfg.nat_mac), sent)  # fmt: skip
    return sent
