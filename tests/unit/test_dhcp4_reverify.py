"""Link flaps: INIT-REBOOT re-verification in the fsm and carrier polling in the client."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from ipaddress import IPv4Address

from mosnet.dhcp4 import codec, fsm, reverify
from mosnet.dhcp4.client import Client, ClientConfig
from mosnet.dhcp4.lease import Lease

MAC = bytes.fromhex("020000000001")
SERVER = IPv4Address("10.99.0.1")
ADDR = IPv4Address("10.99.0.10")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def reply(
    xid: int,
    kind: int,
    *,
    server: IPv4Address = SERVER,
    yiaddr: IPv4Address = ADDR,
    lease: int = 1000,
) -> codec.Message:
    opts = (
        (53, bytes((kind,))),
        (1, b"\xff\xff\xff\0"),
        (51, struct.pack("!I", lease)),
        (54, server.packed),
    )
    return codec.Message(codec.BOOTREPLY, xid, MAC, opts, yiaddr=yiaddr)


def bound() -> tuple[reverify.ReverifyMachine, Clock, Lease]:
    clock = Clock()
    xids = iter(range(100, 10_000))
    m = reverify.ReverifyMachine(MAC, lambda: next(xids), clock, rand=lambda: 0.5)
    m.start()
    m.on_packet(reply(m.xid, codec.OFFER))
    fx = m.on_packet(reply(m.xid, codec.ACK))
    lease = next(e.lease for e in fx if isinstance(e, fsm.Bind))
    return m, clock, lease


def sent(fx: list[fsm.Effect]) -> list[codec.Message]:
    return [e.msg for e in fx if isinstance(e, (fsm.SendBroadcast, fsm.SendUnicast))]


def state(m: fsm.Machine) -> fsm.State:
    return m.state  # not narrowed by an earlier assert


def test_reverify_ack_keeps_lease_with_fresh_times() -> None:
    m, clock, lease = bound()
    clock.t += 300
    fx = m.reverify()
    (req,) = sent(fx)
    assert isinstance(fx[-1], fsm.SendBroadcast) and fx[-1].src == codec.ZERO
    # RFC 2131 table 5, INIT-REBOOT: option 50, no server id, ciaddr 0
    assert req.msg_type == codec.REQUEST and req.ciaddr == codec.ZERO
    assert req.opt(codec.OPT_REQUESTED_IP) == ADDR.packed and req.server_id is None
    assert req.xid != m.xid  # its own exchange
    clock.t += 0.1
    # any server may answer INIT-REBOOT (the segment may have a new one)
    fx = m.on_packet(reply(req.xid, codec.ACK, server=IPv4Address("10.99.0.2")))
    renewed = [e.lease for e in fx if isinstance(e, fsm.Renewed)]
    assert renewed and renewed[0].acquired_at == 1300.0 and m.lease == renewed[0]
    assert m.state is fsm.State.BOUND and m.next_deadline() == 1300.0 + lease.t1


def test_reverify_nak_restarts_from_init() -> None:
    m, clock, lease = bound()
    (req,) = sent(m.reverify())
    fx = m.on_packet(reply(req.xid, codec.NAK, server=IPv4Address("10.5.0.1")))
    assert [type(e) for e in fx if isinstance(e, fsm.Expire)] == [fsm.Expire]
    assert m.state is fsm.State.SELECTING and m.lease is None
    assert [msg.msg_type for msg in sent(fx)] == [codec.DISCOVER]


def test_reverify_silence_keeps_lease_and_normal_renewal() -> None:
    m, clock, lease = bound()
    times = [clock.t]
    sent(m.reverify())
    while (deadline := m.next_deadline()) is not None and deadline < lease.renew_at():
        clock.t = deadline
        if sent(m.on_timer()):
            times.append(clock.t)
    assert [t - times[0] for t in times] == [0.0, 2.0, 6.0]  # three tries, 2 s then 4 s
    assert m.state is fsm.State.BOUND and m.lease == lease
    clock.t = lease.renew_at()
    (renew,) = sent(m.on_timer())
    assert state(m) is fsm.State.RENEWING and renew.ciaddr == ADDR


def test_reverify_without_lease() -> None:
    clock = Clock()
    m = reverify.ReverifyMachine(MAC, lambda: 7, clock)
    assert m.reverify() == []  # INIT: nothing to verify, nothing running
    m.start()
    clock.t += 30
    fx = m.reverify()  # SELECTING: ask now rather than after the backoff
    assert [msg.msg_type for msg in sent(fx)] == [codec.DISCOVER]


def test_link_down_cancels_and_stale_replies_are_ignored() -> None:
    m, clock, lease = bound()
    (req,) = sent(m.reverify())
    m.link_down()
    assert m.on_packet(reply(req.xid, codec.NAK)) == []
    assert m.lease == lease and m.next_deadline() == lease.renew_at()


class FakeTransport:
    mac = MAC

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[codec.Message] = []
        self.inbox: list[codec.Message] = []

    def send_broadcast(self, payload: bytes, src: IPv4Address) -> None:
        msg = codec.decode(payload)
        self.sent.append(msg)
        if msg.msg_type == codec.DISCOVER:
            self.inbox.append(reply(msg.xid, codec.OFFER))
        elif msg.msg_type == codec.REQUEST:
            self.inbox.append(reply(msg.xid, codec.ACK))

    def send_unicast(self, payload: bytes, server: IPv4Address, src: IPv4Address) -> None:
        self.sent.append(codec.decode(payload))

    def recv(self, timeout: float | None, wake: Sequence[int] = ()) -> bytes | None:
        if self.inbox:
            return codec.encode(self.inbox.pop(0))
        assert timeout is not None, "an idle fake would sleep forever"
        self.clock.t += timeout
        return None

    def probe(self, addr: IPv4Address, count: int, wait: float) -> bool:
        return False

    def close(self) -> None:
        pass


def test_client_polls_carrier_and_reverifies() -> None:
    clock = Clock()
    tr = FakeTransport(clock)
    states = iter([True, True, False, False, True] + [True] * 20)
    client = Client(
        "eth9",
        transport=tr,
        clock=clock,
        sleep=lambda s: None,
        config=ClientConfig(probe_count=0, poll=0.5),
        carrier_probe=lambda: next(states),
    )
    assert client.acquire(5.0) is not None
    renewed: list[Lease] = []
    loops = iter(range(12))
    client.run_forever(
        lambda lease: None,
        lambda lease: None,
        should_stop=lambda: next(loops) >= 10,
        on_renew=renewed.append,
    )
    reqs = [m for m in tr.sent if m.msg_type == codec.REQUEST]
    assert len(reqs) == 2 and reqs[1].server_id is None  # selecting, then INIT-REBOOT
    assert reqs[1].opt(codec.OPT_REQUESTED_IP) == ADDR.packed
    assert len(renewed) == 1 and client.machine.state is fsm.State.BOUND
