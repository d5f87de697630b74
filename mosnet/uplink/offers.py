"""Ask every candidate NIC at once which one has a DHCP server (issue 4 section 1).

Probing NICs one after another costs a whole timeout per dead NIC (dracut: about
a minute per interface, see prior-art section 4). Here a DISCOVER goes out on every
NIC at the same moment, one select loop collects the OFFERs, and collection ends
as soon as the choice cannot change any more. Nothing is REQUESTed: the caller
builds the bridge and asks again on ``mos``, which carries the winner's MAC.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from mosnet.base import log
from mosnet.dhcp4 import codec, fsm
from mosnet.dhcp4.sock import PacketTransport

_log = log.get("dhcp4.probe")

# Not IPv4Address.is_private: that also counts 198.18/15, 192.0.2/24 and more.
RFC1918 = tuple(IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
FIRST_GAP, MAX_GAP = 1.0, 8.0  # DISCOVER retransmission: 1 s, 2 s, 4 s, 8 s, 8 s...
GRACE = 1.5  # how long a non-preferred offer waits for a preferred one


class ProbeTransport(Protocol):
    """The part of :class:`PacketTransport` the probe uses; tests inject fakes."""

    mac: bytes

    def fileno(self) -> int: ...

    def send_broadcast(self, payload: bytes, src: IPv4Address) -> None: ...

    def recv(self, timeout: float) -> bytes | None: ...

    def close(self) -> None: ...


# (transports, timeout) -> indices of the transports with something to read
Waiter = Callable[[Sequence[ProbeTransport], float], Sequence[int]]
OfferSeen = tuple[str, IPv4Address, bool]  # (ifname, yiaddr, private)


@dataclass(frozen=True)
class ProbeResult:
    ifname: str
    offer: codec.Message
    mac: bytes
    elapsed: float  # seconds from the first DISCOVER to the decision
    offers_seen: tuple[OfferSeen, ...]

    @property
    def yiaddr(self) -> IPv4Address:
        return self.offer.yiaddr

    @property
    def server_id(self) -> IPv4Address:
        return self.offer.server_id or codec.ZERO  # never ZERO: checked on receipt


@dataclass
class _Nic:
    ifname: str
    transport: ProbeTransport
    xid: int
    next_send: float
    gap: float = FIRST_GAP
    sent: int = 0
    offered: bool = False  # stop retransmitting; keep listening for a better server
    dead: bool = False  # a socket error: left out from then on


def is_private(addr: IPv4Address) -> bool:
    return any(addr in net for net in RFC1918)


def select_waiter(transports: Sequence[ProbeTransport], timeout: float) -> list[int]:
    fds = [t.fileno() for t in transports]
    try:
        ready, _, _ = select.select(fds, [], [], max(0.0, timeout))
    except (OSError, ValueError):
        # a broken socket: report them all readable, recv() names the culprit
        return list(range(len(fds)))
    return [i for i, fd in enumerate(fds) if fd in ready]


def offer_problem(msg: codec.Message, xid: int, mac: bytes) -> str | None:
    """Why ``msg`` is not a usable OFFER for this NIC (the fsm's rules), or None."""
    if msg.op != codec.BOOTREPLY or msg.xid != xid or msg.chaddr != mac:
        return "not for us"
    if msg.msg_type != codec.OFFER:
        return f"{codec.MSG_NAMES.get(msg.msg_type or 0, '?')}, not OFFER"
    addr = msg.yiaddr
    if msg.server_id is None:
        return "OFFER without server id"
    bad = addr.is_unspecified or addr.is_multicast or addr.is_loopback or addr.is_reserved
    if bad or addr == IPv4Address("255.255.255.255"):
        return f"OFFER of unusable address {addr}"
    return None


class _Choice:
    """The early-stop rules: the first preferred offer wins at once, the first
    other one waits ``grace`` seconds for a preferred one."""

    def __init__(self, prefer_private: bool, grace: float) -> None:
        self.prefer_private, self.grace = prefer_private, grace
        self.best: tuple[_Nic, codec.Message] | None = None
        self.fallback: tuple[_Nic, codec.Message] | None = None
        self.fallback_until: float | None = None
        self.seen: list[OfferSeen] = []

    def add(self, nic: _Nic, msg: codec.Message, now: float) -> None:
        private = is_private(msg.yiaddr)
        self.seen.append((nic.ifname, msg.yiaddr, private))
        if private == self.prefer_private:
            self.best = self.best or (nic, msg)
        elif self.fallback is None:
            self.fallback, self.fallback_until = (nic, msg), now + self.grace

    def final(self, now: float) -> bool:
        until = self.fallback_until
        return self.best is not None or (until is not None and now >= until)

    def winner(self) -> tuple[_Nic, codec.Message] | None:
        return self.best or self.fallback


def probe(
    ifnames: Sequence[str],
    *,
    timeout: float = 10.0,
    prefer_private: bool = True,
    clock: Callable[[], float] = time.monotonic,
    transports: Sequence[ProbeTransport] | None = None,
    grace: float = GRACE,
    wait: Waiter = select_waiter,
    xid_gen: Callable[[], int] = fsm.random_xid,
    hostname: str | None = None,
) -> ProbeResult | None:
    """DISCOVER on all ``ifnames`` at once; the winning OFFER, or None.

    ``timeout`` bounds the whole probe, not each NIC. ``transports`` (same order
    as ``ifnames``) replaces the AF_PACKET sockets; the caller closes those.
    """
    start = clock()
    opened = transports is None
    nics = _open(ifnames, transports, xid_gen, start)
    try:
        if not nics:
            _log.warning("DHCP probe: no usable NIC among %s", ", ".join(ifnames) or "none")
            return None
        _log.info(
            "DHCP probe: DISCOVER on %s at once (%.1f s in total, prefer %s)",
            ", ".join(n.ifname for n in nics),
            timeout,
            "private" if prefer_private else "public",
        )
        choice = _Choice(prefer_private, grace)
        _collect(nics, choice, start + timeout, clock, wait, start, hostname)
        return _result(choice, clock() - start, timeout)
    finally:
        if opened:
            for nic in nics:
                nic.transport.close()


def _open(
    ifnames: Sequence[str],
    transports: Sequence[ProbeTransport] | None,
    xid_gen: Callable[[], int],
    now: float,
) -> list[_Nic]:
    if transports is not None and len(transports) != len(ifnames):
        raise ValueError("one transport per interface name")
    nics: list[_Nic] = []
    for i, name in enumerate(ifnames):
        try:
            tr = transports[i] if transports is not None else PacketTransport(name)
        except OSError as exc:
            _log.warning("DHCP probe: skipping %s: %s", name, exc)
            continue
        nics.append(_Nic(name, tr, xid_gen() & 0xFFFFFFFF, now))
    return nics


def _collect(
    nics: list[_Nic],
    choice: _Choice,
    deadline: float,
    clock: Callable[[], float],
    wait: Waiter,
    start: float,
    hostname: str | None,
) -> None:
    """Send due DISCOVERs and read OFFERs until the choice is final or time is up."""
    while True:
        now = clock()
        if choice.final(now) or now >= deadline:
            return
        for nic in [n for n in nics if not n.dead and not n.offered and now >= n.next_send]:
            _send(nic, now, start, hostname)
        live = [n for n in nics if not n.dead]
        if not live:
            return
        wake = [deadline] + [n.next_send for n in live if not n.offered]
        if choice.fallback_until is not None:
            wake.append(choice.fallback_until)
        for i in wait([n.transport for n in live], max(0.0, min(wake) - clock())):
            _read(live[i], choice, clock())


def _send(nic: _Nic, now: float, start: float, hostname: str | None) -> None:
    secs = max(0, min(0xFFFF, int(now - start)))
    payload = codec.encode(codec.discover(nic.transport.mac, nic.xid, secs=secs, hostname=hostname))
    try:
        nic.transport.send_broadcast(payload, codec.ZERO)
    except OSError as exc:
        _drop(nic, exc)
        return
    nic.sent += 1
    _log.debug("DHCP probe: %s: DISCOVER #%d at +%.2f s", nic.ifname, nic.sent, now - start)
    nic.next_send = now + nic.gap
    nic.gap = min(nic.gap * 2, MAX_GAP)


def _drop(nic: _Nic, exc: OSError) -> None:
    """One NIC's socket error never ends the probe: forget that NIC."""
    _log.warning("DHCP probe: dropping %s: %s", nic.ifname, exc)
    nic.dead = True


def _read(nic: _Nic, choice: _Choice, now: float) -> None:
    try:
        data = nic.transport.recv(0.0)
    except OSError as exc:
        _drop(nic, exc)
        return
    if not data:
        return
    try:
        msg = codec.decode(data)
    except codec.DecodeError as exc:
        _log.debug("DHCP probe: %s: dropped packet: %s", nic.ifname, exc)
        return
    problem = offer_problem(msg, nic.xid, nic.transport.mac)
    if problem is not None:
        _log.debug("DHCP probe: %s: ignored: %s", nic.ifname, problem)
        return
    nic.offered = True
    _log.info("DHCP probe: %s: offer %s from %s", nic.ifname, msg.yiaddr, msg.server_id)
    choice.add(nic, msg, now)


def _result(choice: _Choice, elapsed: float, timeout: float) -> ProbeResult | None:
    won = choice.winner()
    if won is None:
        _log.warning("DHCP probe: no offer on any NIC within %.1f s", timeout)
        return None
    nic, msg = won
    _log.info(
        "DHCP probe: chose %s (%s from %s) after %.2f s, %d offer(s) seen",
        nic.ifname,
        msg.yiaddr,
        msg.server_id,
        elapsed,
        len(choice.seen),
    )
    return ProbeResult(nic.ifname, msg, nic.transport.mac, elapsed, tuple(choice.seen))
