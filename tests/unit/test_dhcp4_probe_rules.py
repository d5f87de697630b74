"""The parallel DHCP probe on fake NICs and a fake clock: early-stop rules."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from mosnet.dhcp4 import codec
from mosnet.uplink.offers import ProbeResult, ProbeTransport, Waiter, is_private, probe


class Clock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Server:
    yiaddr: str
    delay: float  # seconds from DISCOVER to OFFER
    kind: int = codec.OFFER
    server: str = "192.0.2.1"
    xid_delta: int = 0  # a reply for someone else's exchange
    other_mac: bool = False


@dataclass
class FakeNic:
    clock: Clock
    mac: bytes
    servers: list[Server] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)  # DISCOVER times
    queue: list[tuple[float, bytes]] = field(default_factory=list)
    fail_send: bool = False
    fail_recv: bool = False
    closed: bool = False

    def fileno(self) -> int:
        return -1

    def send_broadcast(self, payload: bytes, src: IPv4Address) -> None:
        if self.fail_send:
            raise OSError(100, "Network is down")
        msg = codec.decode(payload)
        assert msg.msg_type == codec.DISCOVER and src == codec.ZERO
        self.sent.append(self.clock.t)
        for s in self.servers:
            self.queue.append((self.clock.t + s.delay, codec.encode(offer(msg, s))))

    def recv(self, timeout: float) -> bytes | None:
        if self.fail_recv:
            raise OSError(100, "Network is down")
        due = sorted(q for q in self.queue if q[0] <= self.clock.t)
        if not due:
            return None
        self.queue.remove(due[0])
        return due[0][1]

    def close(self) -> None:
        self.closed = True


def offer(req: codec.Message, s: Server) -> codec.Message:
    opts = (
        (53, bytes((s.kind,))),
        (54, IPv4Address(s.server).packed),
        (51, struct.pack("!I", 600)),
    )
    mac = b"\x02" * 6 if s.other_mac else req.chaddr
    return codec.Message(
        codec.BOOTREPLY, req.xid + s.xid_delta, mac, opts, yiaddr=IPv4Address(s.yiaddr)
    )


def waiter(clock: Clock) -> Waiter:
    """Advance the fake clock to the next packet (or by ``timeout``)."""

    def wait(transports: Sequence[ProbeTransport], timeout: float) -> list[int]:
        nics = [t for t in transports if isinstance(t, FakeNic)]
        times = [q[0] for n in nics if not n.fail_recv for q in n.queue] + [
            clock.t for n in nics if n.fail_recv
        ]
        nxt = min(times, default=None)
        if nxt is None or nxt > clock.t + timeout:
            clock.t += timeout
            return []
        clock.t = max(clock.t, nxt)
        return [
            i for i, n in enumerate(nics) if n.fail_recv or any(q[0] <= clock.t for q in n.queue)
        ]

    return wait


def run(
    nics: list[FakeNic],
    clock: Clock,
    *,
    timeout: float = 10.0,
    grace: float = 1.5,
    prefer_private: bool = True,
) -> ProbeResult | None:
    names = [f"eth{i}" for i in range(len(nics))]
    xids = iter(range(1000, 2000))
    return probe(
        names,
        clock=clock,
        transports=nics,
        wait=waiter(clock),
        timeout=timeout,
        grace=grace,
        prefer_private=prefer_private,
        xid_gen=lambda: next(xids),
    )


def make(clock: Clock, *servers: list[Server]) -> list[FakeNic]:
    return [FakeNic(clock, bytes((2, 0, 0, 0, 0, i + 1)), list(s)) for i, s in enumerate(servers)]


def test_private_offer_wins_at_once() -> None:
    clock = Clock()
    nics = make(clock, [], [], [Server("10.1.0.5", 0.2)])
    res = run(nics, clock, timeout=10.0)
    assert res is not None and res.ifname == "eth2" and res.yiaddr == IPv4Address("10.1.0.5")
    assert res.mac == nics[2].mac and res.server_id == IPv4Address("192.0.2.1")
    assert abs(res.elapsed - 0.2) < 1e-9  # not one timeout per dead NIC
    assert [n.sent for n in nics] == [[500.0]] * 3  # one DISCOVER each, all at t=0
    assert res.offers_seen == (("eth2", IPv4Address("10.1.0.5"), True),)


def test_public_offer_waits_grace_for_private() -> None:
    clock = Clock()
    nics = make(clock, [Server("198.18.0.5", 0.1)], [Server("192.168.7.9", 0.9)])
    res = run(nics, clock, timeout=10.0, grace=1.5)
    assert res is not None and res.ifname == "eth1" and abs(res.elapsed - 0.9) < 1e-9
    assert [s[0] for s in res.offers_seen] == ["eth0", "eth1"]


def test_public_offer_taken_after_grace() -> None:
    clock = Clock()
    nics = make(clock, [Server("198.18.0.5", 0.1)], [Server("172.16.0.9", 3.0)])
    res = run(nics, clock, timeout=10.0, grace=1.5)
    assert res is not None and res.ifname == "eth0"
    assert abs(res.elapsed - 1.6) < 1e-9
    assert res.offers_seen == (("eth0", IPv4Address("198.18.0.5"), False),)
    assert nics[0].sent == [500.0]  # an offered NIC is not asked again
    assert nics[1].sent == [500.0, 501.0]  # the silent one is, with backoff


def test_prefer_public() -> None:
    clock = Clock()
    nics = make(clock, [Server("10.0.0.5", 0.1)], [Server("198.18.0.5", 0.5)])
    res = run(nics, clock, timeout=10.0, prefer_private=False)
    assert res is not None and res.ifname == "eth1" and abs(res.elapsed - 0.5) < 1e-9
    clock = Clock()
    nics = make(clock, [Server("10.0.0.5", 0.1)], [])
    res = run(nics, clock, timeout=10.0, prefer_private=False, grace=1.0)
    assert res is not None and res.ifname == "eth0" and abs(res.elapsed - 1.1) < 1e-9


def test_grace_never_outlasts_timeout() -> None:
    clock = Clock()
    nics = make(clock, [Server("198.18.0.5", 2.5)])
    res = run(nics, clock, timeout=3.0, grace=1.5)
    assert res is not None and abs(res.elapsed - 3.0) < 1e-9


def test_tie_goes_to_first_received() -> None:
    clock = Clock()
    nics = make(clock, [Server("10.0.0.5", 0.3)], [Server("10.0.1.5", 0.2)])
    res = run(nics, clock)
    assert res is not None and res.ifname == "eth1"
    clock = Clock()
    nics = make(clock, [Server("198.18.0.5", 0.2)], [Server("198.19.0.5", 0.3)])
    res = run(nics, clock, grace=1.0)
    assert res is not None and res.ifname == "eth0" and len(res.offers_seen) == 2


def test_timeout_in_total_with_backoff() -> None:
    clock = Clock()
    nics = make(clock, [], [])
    assert run(nics, clock, timeout=10.0) is None
    assert clock.t == 510.0
    for n in nics:  # 1, 2, 4, 8 s gaps, all NICs in step
        assert [t - 500.0 for t in n.sent] == [0.0, 1.0, 3.0, 7.0]


def test_bad_replies_are_ignored() -> None:
    clock = Clock()
    junk = [
        Server("10.0.0.5", 0.1, xid_delta=1),
        Server("10.0.0.6", 0.1, other_mac=True),
        Server("10.0.0.7", 0.1, kind=codec.ACK),
        Server("0.0.0.0", 0.1),
        Server("224.0.0.1", 0.1),
        Server("198.18.0.9", 0.4),
    ]
    res = run(make(clock, junk), clock, timeout=2.0, grace=0.5)
    assert res is not None and res.yiaddr == IPv4Address("198.18.0.9")
    assert len(res.offers_seen) == 1


def test_socket_errors_drop_only_that_nic() -> None:
    clock = Clock()
    nics = make(
        clock, [Server("10.0.0.5", 0.1)], [Server("10.0.0.6", 0.5)], [Server("10.0.0.7", 0.1)]
    )
    nics[0].fail_send = True
    nics[2].fail_recv = True
    res = run(nics, clock, timeout=5.0)
    assert res is not None and res.ifname == "eth1"
    clock = Clock()
    nics = make(clock, [Server("10.0.0.5", 0.1)])
    nics[0].fail_send = True
    assert run(nics, clock, timeout=5.0) is None and clock.t == 500.0


def test_no_nics_and_real_open_failure() -> None:
    assert probe([], timeout=1.0) is None
    assert probe(["mosnet-no-such0"], timeout=1.0) is None  # opening fails: logged, skipped


def test_private_ranges() -> None:
    for a in ("10.1.2.3", "172.16.0.1", "172.31.255.1", "192.168.1.1"):
        assert is_private(IPv4Address(a))
    for a in ("172.32.0.1", "198.18.0.1", "100.64.0.1", "8.8.8.8", "192.0.2.1"):
        assert not is_private(IPv4Address(a))
