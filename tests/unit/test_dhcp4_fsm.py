"""The state machine, walked through a whole lease lifetime on a fake clock."""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from ipaddress import IPv4Address
from unittest import mock

import pytest

from mosnet.dhcp4 import codec, fsm
from mosnet.dhcp4.client import Client, ClientConfig
from mosnet.dhcp4.lease import Lease
from tests.unit.helpers.fresh import fresh

MAC = bytes.fromhex("020000000001")
SERVER = IPv4Address("10.99.0.1")
OTHER = IPv4Address("10.99.0.2")
ADDR = IPv4Address("10.99.0.10")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


DEFAULT = fsm.Config()


def make(cfg: fsm.Config = DEFAULT) -> tuple[fsm.Machine, Clock]:
    clock = Clock()
    xids = iter(range(100, 10_000))
    return fsm.Machine(MAC, lambda: next(xids), clock, cfg, rand=lambda: 0.5), clock


def reply(
    m: fsm.Machine,
    kind: int,
    *,
    server: IPv4Address | None = SERVER,
    yiaddr: IPv4Address = ADDR,
    xid: int | None = None,
    mac: bytes = MAC,
    lease: int = 1000,
) -> codec.Message:
    opts = [(53, bytes((kind,))), (1, b"\xff\xff\xff\0"), (51, struct.pack("!I", lease))]
    if server is not None:
        opts.append((54, server.packed))
    return codec.Message(
        codec.BOOTREPLY, m.xid if xid is None else xid, mac, tuple(opts), yiaddr=yiaddr
    )


def kinds(fx: list[fsm.Effect]) -> list[str]:
    return [type(e).__name__ for e in fx if not isinstance(e, (fsm.Log, fsm.Transition))]


def bound(cfg: fsm.Config = DEFAULT) -> tuple[fsm.Machine, Clock, Lease]:
    m, clock = make(cfg)
    m.start()
    m.on_packet(reply(m, codec.OFFER))
    fx = m.on_packet(reply(m, codec.ACK))
    binds = [e for e in fx if isinstance(e, fsm.Bind)]
    assert m.state is fsm.State.BOUND and binds
    return m, clock, binds[0].lease


def test_full_lifecycle() -> None:
    m, clock = make()
    fx = m.start()
    assert m.state is fsm.State.SELECTING and kinds(fx) == ["SendBroadcast"]
    assert isinstance(fx[-1], fsm.SendBroadcast) and fx[-1].msg.msg_type == codec.DISCOVER
    fx = m.on_packet(reply(m, codec.OFFER))
    assert fresh(m).state is fsm.State.REQUESTING
    req = fx[-1]
    assert isinstance(req, fsm.SendBroadcast) and req.msg.opt(54) == SERVER.packed
    fx = m.on_packet(reply(m, codec.ACK))
    lease = next(e.lease for e in fx if isinstance(e, fsm.Bind))
    assert fresh(m).state is fsm.State.BOUND and lease.acquired_at == 1000.0
    assert m.next_deadline() == 1500.0  # T1
    clock.t = 1500.0
    fx = m.on_timer()
    assert fresh(m).state is fsm.State.RENEWING
    uni = fx[-1]
    assert isinstance(uni, fsm.SendUnicast) and uni.server == SERVER and uni.src == ADDR
    assert uni.msg.ciaddr == ADDR and uni.msg.opt(50) is None
    # retransmit at half the time to T2 (1875), but at least 60 s
    assert m.next_deadline() == 1500.0 + 187.5
    clock.t = 1875.0
    fx = m.on_timer()
    assert fresh(m).state is fsm.State.REBINDING
    reb = fx[-1]
    assert isinstance(reb, fsm.SendBroadcast) and reb.src == ADDR and reb.msg.ciaddr == ADDR
    clock.t = 2000.0
    fx = m.on_timer()
    assert kinds(fx)[:2] == ["Expire", "SendBroadcast"] and m.state is fsm.State.SELECTING


def test_renewal_ack_renews() -> None:
    m, clock, lease = bound()
    clock.t = 1500.0
    m.on_timer()
    clock.t = 1510.0
    fx = m.on_packet(reply(m, codec.ACK))
    renewed = [e.lease for e in fx if isinstance(e, fsm.Renewed)]
    assert renewed and renewed[0].acquired_at == 1500.0 and m.state is fsm.State.BOUND


def test_backoff_and_select_timeout() -> None:
    m, clock = make(fsm.Config(select_timeout=100))
    m.start()
    deadlines = []
    for _ in range(4):
        d = m.next_deadline()
        assert d is not None
        deadlines.append(d - clock.t)
        clock.t = d
        assert kinds(m.on_timer()) == ["SendBroadcast"]
    assert deadlines == [4.0, 8.0, 16.0, 32.0]  # rand 0.5 -> jitter 0
    clock.t = 1000.0 + 100
    fx = m.on_timer()
    assert any(isinstance(e, fsm.Log) and "starting over" in e.text for e in fx)


def test_backoff_caps_at_64() -> None:
    m, clock = make(fsm.Config(select_timeout=10_000))
    m.start()
    for _ in range(10):
        d = m.next_deadline()
        assert d is not None
        gap, clock.t = d - clock.t, d
        m.on_timer()
    assert gap == 64.0


def test_wrong_xid_chaddr_op_kind_state_ignored() -> None:
    m, _ = make()
    m.start()
    assert m.on_packet(reply(m, codec.OFFER, xid=m.xid + 1)) == []
    assert m.on_packet(reply(m, codec.OFFER, mac=b"\x02" * 6)) == []
    assert m.on_packet(reply(m, codec.ACK)) == []  # ACK in SELECTING
    bad_op = codec.Message(
        codec.BOOTREQUEST, m.xid, MAC, ((53, b"\x02"), (54, SERVER.packed)), yiaddr=ADDR
    )
    assert m.on_packet(bad_op) == []
    assert m.state is fsm.State.SELECTING
    m.on_packet(reply(m, codec.OFFER))
    assert m.on_packet(reply(m, codec.OFFER)) == []  # OFFER in REQUESTING


def test_offer_and_ack_without_yiaddr_or_server_ignored() -> None:
    m, _ = make()
    m.start()
    m.on_packet(reply(m, codec.OFFER, server=None))
    m.on_packet(reply(m, codec.OFFER, yiaddr=codec.ZERO))
    assert m.state is fsm.State.SELECTING
    m.on_packet(reply(m, codec.OFFER))
    m.on_packet(reply(m, codec.ACK, yiaddr=codec.ZERO))
    m.on_packet(reply(m, codec.ACK, server=None))
    m.on_packet(reply(m, codec.ACK, server=OTHER))
    m.on_packet(reply(m, codec.ACK, lease=0))
    assert fresh(m).state is fsm.State.REQUESTING and m.lease is None


def test_nak_only_from_our_server() -> None:
    m, _ = make()
    m.start()
    m.on_packet(reply(m, codec.OFFER))
    m.on_packet(reply(m, codec.NAK, server=OTHER))
    m.on_packet(reply(m, codec.NAK, server=None))
    assert m.state is fsm.State.REQUESTING
    fx = m.on_packet(reply(m, codec.NAK))
    assert fresh(m).state is fsm.State.SELECTING and kinds(fx) == ["SendBroadcast"]
    m2, clock, _ = bound()
    clock.t = 1500.0
    m2.on_timer()
    m2.on_packet(reply(m2, codec.NAK, server=OTHER))
    assert m2.state is fsm.State.RENEWING
    fx = m2.on_packet(reply(m2, codec.NAK))
    assert kinds(fx)[0] == "Expire" and fresh(m2).state is fsm.State.SELECTING


def test_requesting_gives_up() -> None:
    m, clock = make(fsm.Config(request_tries=3))
    m.start()
    m.on_packet(reply(m, codec.OFFER))
    for _ in range(3):
        d = m.next_deadline()
        assert d is not None
        clock.t = d
        m.on_timer()
    assert m.state is fsm.State.SELECTING


def test_conflict_declines_and_restarts_later() -> None:
    m, clock, lease = bound()
    fx = m.on_conflict()
    assert kinds(fx) == ["Decline", "SendBroadcast"]
    dec = fx[-1]
    assert isinstance(dec, fsm.SendBroadcast) and dec.msg.msg_type == codec.DECLINE
    assert dec.msg.opt(50) == ADDR.packed and dec.msg.opt(54) == SERVER.packed
    assert m.state is fsm.State.INIT and m.next_deadline() == clock.t + 10
    clock.t += 10
    assert kinds(m.on_timer()) == ["SendBroadcast"] and fresh(m).state is fsm.State.SELECTING


def test_min_retransmit_and_renew_after_hooks() -> None:
    m, clock, lease = bound(fsm.Config(renew_after=2.0, min_retransmit=2.0))
    assert lease.t1 == 2.0 and m.next_deadline() == 1002.0
    clock.t = 1002.0
    m.on_timer()
    assert m.next_deadline() == 1002.0 + (lease.rebind_at() - 1002.0) / 2


def test_wall_clock_jump_changes_nothing() -> None:
    runs = []
    for jump in (0.0, 365 * 86400.0, -365 * 86400.0):
        real = time.time()
        with mock.patch("time.time", lambda j=jump, r=real: r + j):
            m, clock, lease = bound()
            clock.t = 1499.0
            before = kinds(m.on_timer())
            runs.append((before, m.state, m.next_deadline(), lease.expires_at))
    assert runs[0] == runs[1] == runs[2] and runs[0][1] is fsm.State.BOUND


class FakeTransport:
    mac = MAC

    def __init__(self, script: list[codec.Message | OSError], clock: Clock) -> None:
        self.sent: list[tuple[str, codec.Message]] = []
        self.script, self.clock = script, clock

    def send_broadcast(self, payload: bytes, src: IPv4Address) -> None:
        self.sent.append(("bcast", codec.decode(payload)))

    def send_unicast(self, payload: bytes, server: IPv4Address, src: IPv4Address) -> None:
        self.sent.append(("ucast", codec.decode(payload)))

    def recv(self, timeout: float | None, wake: Sequence[int] = ()) -> bytes | None:
        if not self.script:
            assert timeout is not None, "an idle fake would sleep forever"
            self.clock.t += timeout  # time passes while nothing arrives
            return None
        item = self.script.pop(0)
        if isinstance(item, OSError):
            raise item
        return codec.encode(item)

    def probe(self, addr: IPv4Address, count: int, wait: float) -> bool:
        return False

    def close(self) -> None:
        pass


def test_client_acquire_with_fake_transport_and_enetdown(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    xid = 4242
    mk = fsm.Machine(MAC, lambda: xid, clock)
    script: list[codec.Message | OSError] = [
        OSError(100, "ENETDOWN"),
        reply(mk, codec.OFFER, xid=xid),
    ]
    tr = FakeTransport(script, clock)
    sleeps: list[float] = []
    c = Client(
        "eth0",
        transport=tr,
        clock=clock,
        sleep=sleeps.append,
        xid_gen=lambda: xid,
        config=ClientConfig(probe_count=1),
    )
    orig = tr.recv

    def recv(timeout: float | None, wake: Sequence[int] = ()) -> bytes | None:
        if tr.sent and tr.sent[-1][1].msg_type == codec.REQUEST and not tr.script:
            tr.script.append(reply(mk, codec.ACK, xid=xid))
        return orig(timeout, wake)

    monkeypatch.setattr(tr, "recv", recv)
    lease = c.acquire(timeout=30)
    assert lease is not None and lease.address == ADDR and sleeps
    assert [codec.MSG_NAMES[m.msg_type or 0] for _, m in tr.sent] == ["DISCOVER", "REQUEST"]


def test_client_acquire_times_out_and_run_forever_renews_unicast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    tr = FakeTransport([], clock)
    c = Client("eth0", transport=tr, clock=clock, sleep=lambda s: None, xid_gen=lambda: 9)
    assert c.acquire(timeout=20) is None and 1020 <= clock.t < 1030
    clock2 = Clock()
    mk = fsm.Machine(MAC, lambda: 9, clock2)
    tr2 = FakeTransport([reply(mk, codec.OFFER, xid=9), reply(mk, codec.ACK, xid=9)], clock2)
    c2 = Client("eth0", transport=tr2, clock=clock2, sleep=lambda s: None, xid_gen=lambda: 9)
    assert c2.acquire(timeout=5) is not None
    renewed: list[Lease] = []
    orig = tr2.send_unicast

    def send_unicast(payload: bytes, server: IPv4Address, src: IPv4Address) -> None:
        orig(payload, server, src)
        tr2.script.append(reply(mk, codec.ACK, xid=9))

    monkeypatch.setattr(tr2, "send_unicast", send_unicast)
    c2.run_forever(
        lambda lease: None, lambda lease: None, lambda: bool(renewed), on_renew=renewed.append
    )
    assert tr2.sent[-1][0] == "ucast" and renewed[0].acquired_at == 1500.0
