"""The DHCPv6 machine over a whole lease lifetime with a fake clock."""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import Any

import pytest

from mosnet.dhcp6 import codec, fsm
from mosnet.dhcp6.lease import Lease6
from tests.unit.helpers.fresh import fresh

pytestmark = pytest.mark.unit

MAC = bytes.fromhex("020000000001")
DUID = codec.duid_ll(MAC)
SERVER = bytes.fromhex("000100012a2b2c2d020000000099")
ADDR = IPv6Address("fd00:90::123")
DNS = IPv6Address("fd00:90::53")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _machine(clock: Clock, **cfg: Any) -> fsm.Machine:
    xids = iter(range(0x10, 0x1000))
    return fsm.Machine(
        MAC,
        lambda: next(xids),
        clock,
        fsm.Config(**cfg),
        rand=lambda: 0.5,
    )


def _sent(fx: list[fsm.Effect]) -> list[codec.Message]:
    return [e.msg for e in fx if isinstance(e, fsm.Send)]


def _answer(
    kind: int,
    to: codec.Message,
    *,
    t1: int = 100,
    t2: int = 160,
    valid: int = 200,
    pref: int = 0,
    status: codec.Status | None = None,
    ia_status: codec.Status | None = None,
    addr: IPv6Address = ADDR,
) -> codec.Message:
    addrs = () if ia_status else (codec.IaAddr(addr, valid, valid),)
    ia = codec.IaNa(1, t1, t2, addrs, ia_status)
    opts: list[tuple[int, bytes]] = [
        (codec.OPT_CLIENTID, DUID),
        (codec.OPT_SERVERID, SERVER),
        (codec.OPT_IA_NA, codec.ia_na(ia)),
        (codec.OPT_DNS_SERVERS, DNS.packed),
    ]
    if pref:
        opts.append((codec.OPT_PREFERENCE, bytes((pref,))))
    if status:
        opts.append(codec.status_option(status))
    return codec.Message(kind, to.xid, tuple(opts))


def _bind(m: fsm.Machine, clock: Clock) -> tuple[Lease6, codec.Message]:
    solicit = _sent(m.start())[0]
    assert m.on_packet(_answer(codec.ADVERTISE, solicit)) == []  # collecting adverts
    clock.now = m.next_deadline() or 0
    fx = m.on_timer()
    request = _sent(fx)[0]
    assert request.msg_type == codec.REQUEST and request.server_id == SERVER
    assert request.ia_nas[0].addrs[0].address == ADDR
    fx = m.on_packet(_answer(codec.REPLY, request))
    binds = [e for e in fx if isinstance(e, fsm.Bind)]
    assert len(binds) == 1 and m.state is fsm.State.BOUND
    return binds[0].lease, request


def test_full_lifetime() -> None:
    clock = Clock()
    m = _machine(clock)
    lease, request = _bind(m, clock)
    assert lease.address == ADDR and lease.dns == (DNS,) and lease.valid == 200
    assert (lease.t1, lease.t2) == (100, 160) and lease.acquired_at == clock.now
    start = clock.now
    # T1: RENEW with the server id, the bound address
    clock.now = start + 100
    renew = _sent(m.on_timer())[0]
    assert m.state is fsm.State.RENEWING and renew.msg_type == codec.RENEW
    assert renew.server_id == SERVER and renew.ia_nas[0].addrs[0].address == ADDR
    assert renew.xid != request.xid and renew.client_id == DUID
    assert renew.opt(codec.OPT_ELAPSED_TIME) == b"\0\0"
    # a retransmission carries elapsed time, never past T2
    clock.now = m.next_deadline() or 0
    again = _sent(m.on_timer())[0]
    assert again.xid == renew.xid and again.opt(codec.OPT_ELAPSED_TIME) != b"\0\0"
    # T2: REBIND without server id
    clock.now = start + 160
    rebind = _sent(m.on_timer())[0]
    assert fresh(m).state is fsm.State.REBINDING and rebind.msg_type == codec.REBIND
    assert rebind.server_id is None
    # valid lifetime over: Expire and start soliciting again
    clock.now = start + 200
    fx = m.on_timer()
    expired = [e for e in fx if isinstance(e, fsm.Expire)]
    assert expired and expired[0].lease == lease and m.lease is None
    assert fresh(m).state is fsm.State.SOLICITING and _sent(fx)[0].msg_type == codec.SOLICIT


def test_renew_reply_refreshes() -> None:
    clock = Clock()
    m = _machine(clock)
    _bind(m, clock)
    clock.now += 100
    renew = _sent(m.on_timer())[0]
    fx = m.on_packet(_answer(codec.REPLY, renew, valid=300))
    renewed = [e for e in fx if isinstance(e, fsm.Renewed)]
    assert renewed and renewed[0].lease.valid == 300 and m.state is fsm.State.BOUND
    assert m.lease is not None and m.lease.acquired_at == clock.now


def test_rebind_reply_with_other_address() -> None:
    clock = Clock()
    m = _machine(clock)
    _bind(m, clock)
    clock.now += 160
    rebind = _sent(m.on_timer())[0]  # past T2 already: straight to REBINDING
    assert m.state is fsm.State.REBINDING and rebind.msg_type == codec.REBIND
    other = IPv6Address("fd00:90::456")
    fx = m.on_packet(_answer(codec.REPLY, rebind, addr=other))
    assert [type(e) for e in fx if not isinstance(e, fsm.Transition)] == [fsm.Expire, fsm.Bind]
    assert m.lease is not None and m.lease.address == other


def test_preference_255_requests_at_once_and_bad_adverts_are_ignored() -> None:
    clock = Clock()
    m = _machine(clock)
    solicit = _sent(m.start())[0]
    assert solicit.opt(codec.OPT_ORO) == b"\x00\x17\x00\x18"
    no_addrs = _answer(codec.ADVERTISE, solicit, ia_status=codec.Status(codec.NO_ADDRS_AVAIL))
    assert isinstance(m.on_packet(no_addrs)[0], fsm.Log) and m.state is fsm.State.SOLICITING
    wrong_xid = codec.Message(
        codec.ADVERTISE, solicit.xid ^ 1, _answer(codec.ADVERTISE, solicit).options
    )
    assert m.on_packet(wrong_xid) == []
    fx = m.on_packet(_answer(codec.ADVERTISE, solicit, pref=255))
    assert fresh(m).state is fsm.State.REQUESTING and _sent(fx)[0].msg_type == codec.REQUEST


def test_other_client_id_ignored() -> None:
    clock = Clock()
    m = _machine(clock, collect_adverts=False)
    solicit = _sent(m.start())[0]
    adv = _answer(codec.ADVERTISE, solicit)
    foreign = tuple(
        (k, codec.duid_ll(b"\x02" * 6) if k == codec.OPT_CLIENTID else v) for k, v in adv.options
    )
    assert m.on_packet(codec.Message(codec.ADVERTISE, solicit.xid, foreign)) == []


def test_request_gives_up_after_mrc() -> None:
    clock = Clock()
    m = _machine(clock, collect_adverts=False)
    solicit = _sent(m.start())[0]
    m.on_packet(_answer(codec.ADVERTISE, solicit))
    for _ in range(9):
        clock.now = m.next_deadline() or 0
        assert _sent(m.on_timer())[0].msg_type == codec.REQUEST
    clock.now = m.next_deadline() or 0
    assert _sent(m.on_timer())[0].msg_type == codec.SOLICIT and m.state is fsm.State.SOLICITING


def test_solicit_backoff_caps_at_sol_max_rt() -> None:
    clock = Clock()
    m = _machine(clock, sol_max_rt=8.0)
    m.start()
    gaps = []
    for _ in range(6):
        before = clock.now
        clock.now = m.next_deadline() or 0
        gaps.append(clock.now - before)
        m.on_timer()
    assert gaps[0] == pytest.approx(1.05) and gaps[1] == pytest.approx(2.1)
    assert max(gaps) <= 8.0 * 1.1


def test_no_binding_on_renew_requests_again() -> None:
    clock = Clock()
    m = _machine(clock)
    _bind(m, clock)
    clock.now += 100
    renew = _sent(m.on_timer())[0]
    fx = m.on_packet(_answer(codec.REPLY, renew, ia_status=codec.Status(codec.NO_BINDING)))
    req = _sent(fx)[0]
    assert m.state is fsm.State.REQUESTING and req.msg_type == codec.REQUEST
    assert req.server_id == SERVER and req.ia_nas[0].addrs[0].address == ADDR
    fx = m.on_packet(_answer(codec.REPLY, req))
    assert any(isinstance(e, fsm.Renewed) for e in fx)


def test_zero_t1_t2_use_fractions_of_preferred_and_renew_hook() -> None:
    clock = Clock()
    m = _machine(clock)
    solicit = _sent(m.start())[0]
    m.on_packet(_answer(codec.ADVERTISE, solicit, pref=255))
    fx = m.on_packet(_answer(codec.REPLY, codec.Message(3, m.xid), t1=0, t2=0, valid=1000))
    lease = next(e.lease for e in fx if isinstance(e, fsm.Bind))
    assert (lease.t1, lease.t2) == (500, 800)
    m2 = _machine(clock, renew_after=3.0, collect_adverts=False)
    m2.on_packet(_answer(codec.ADVERTISE, _sent(m2.start())[0]))
    m2.on_packet(_answer(codec.REPLY, codec.Message(3, m2.xid)))
    assert m2.lease is not None and m2.lease.t1 == 3.0


def test_information_request() -> None:
    clock = Clock()
    m = _machine(clock, info_refresh_min=60.0)
    info_req = _sent(m.start_info())[0]
    assert info_req.msg_type == codec.INFORMATION_REQUEST and not info_req.ia_nas
    reply = codec.Message(
        codec.REPLY,
        info_req.xid,
        (
            (codec.OPT_SERVERID, SERVER),
            (codec.OPT_DNS_SERVERS, DNS.packed),
            (codec.OPT_INFO_REFRESH_TIME, (120).to_bytes(4, "big")),
        ),
    )
    fx = m.on_packet(reply)
    info = next(e.info for e in fx if isinstance(e, fsm.Informed))
    assert info.dns == (DNS,) and m.state is fsm.State.INFORMED
    assert m.next_deadline() == clock.now + 120
    clock.now += 120
    assert _sent(m.on_timer())[0].msg_type == codec.INFORMATION_REQUEST


def test_release() -> None:
    clock = Clock()
    m = _machine(clock)
    _bind(m, clock)
    rel = _sent(m.release())[0]
    assert rel.msg_type == codec.RELEASE and rel.server_id == SERVER and m.lease is None
    assert m.state is fsm.State.INIT and m.next_deadline() is None
