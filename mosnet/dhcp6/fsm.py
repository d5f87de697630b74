"""The DHCPv6 client state machine (RFC 8415 18), without any I/O.

Stateful (IA_NA): SOLICIT -> ADVERTISE -> REQUEST -> REPLY -> BOUND, RENEW at
T1 (with the server id), REBIND at T2 (without), expiry at the valid lifetime.
Stateless (RA with only O set): INFORMATION-REQUEST -> REPLY, refreshed after
the information refresh time. Same shape as ``mosnet.dhcp4.fsm``: inputs
``start``/``start_info``/``on_packet``/``on_timer``, effects out, injected clock.
All messages go to ff02::1:2; we never honour Server Unicast (RFC 8415 18.2.10).
What a reply means as a lease is ``mosnet.dhcp6.lease``.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from mosnet.dhcp6 import codec
from mosnet.dhcp6.lease import Info, Lease6, lease_from


class State(enum.Enum):
    INIT = "INIT"
    SOLICITING = "SOLICITING"
    REQUESTING = "REQUESTING"
    BOUND = "BOUND"
    RENEWING = "RENEWING"
    REBINDING = "REBINDING"
    INFORMING = "INFORMING"
    INFORMED = "INFORMED"


@dataclass(frozen=True)
class Config:
    iaid: int = 1
    sol_max_rt: float = 3600.0  # RFC 8415 7.6 SOL_MAX_RT / INF_MAX_RT
    collect_adverts: bool = True  # wait one RT for a better ADVERTISE (18.2.1)
    renew_after: float | None = None  # test hook: override T1 (seconds after bind)
    info_refresh_min: float = 600.0  # IRT_MINIMUM (21.23)


# (IRT, MRT, MRC) per message, RFC 8415 7.6; MRD comes from the lease times.
_PARAMS = {
    codec.SOLICIT: (1.0, 3600.0, 0),
    codec.REQUEST: (1.0, 30.0, 10),
    codec.RENEW: (10.0, 600.0, 0),
    codec.REBIND: (10.0, 600.0, 0),
    codec.INFORMATION_REQUEST: (1.0, 3600.0, 0),
}
ORO = codec.oro(codec.OPT_DNS_SERVERS, codec.OPT_DOMAIN_LIST)
ORO_INFO = codec.oro(codec.OPT_DNS_SERVERS, codec.OPT_DOMAIN_LIST, codec.OPT_INFO_REFRESH_TIME)


@dataclass(frozen=True)
class Send:
    msg: codec.Message


@dataclass(frozen=True)
class Bind:
    lease: Lease6


@dataclass(frozen=True)
class Renewed:
    lease: Lease6


@dataclass(frozen=True)
class Expire:
    lease: Lease6
    reason: str


@dataclass(frozen=True)
class Informed:
    info: Info


@dataclass(frozen=True)
class Transition:
    old: State
    new: State


@dataclass(frozen=True)
class Log:
    text: str


Effect = Send | Bind | Renewed | Expire | Informed | Transition | Log


def random_xid() -> int:
    return random.getrandbits(24)


class Machine:
    def __init__(
        self,
        mac: bytes,
        xid_gen: Callable[[], int] = random_xid,
        clock: Callable[[], float] | None = None,
        config: Config = Config(),
        rand: Callable[[], float] = random.random,
    ) -> None:
        if len(mac) != 6:
            raise ValueError("mac must be 6 bytes")
        self.duid, self.config = codec.duid_ll(mac), config
        self._xid_gen, self._rand = xid_gen, rand
        self._clock = clock or time.monotonic
        self.state = State.INIT
        self.lease: Lease6 | None = None
        self.info: Info | None = None
        self.xid = 0
        self._kind = 0  # message type of the current exchange
        self._best: codec.Message | None = None  # best ADVERTISE so far
        self._server: bytes | None = None  # REQUEST target
        self._hint: tuple[codec.IaAddr, ...] = ()
        self._started = self._sent_at = 0.0
        self._rt = 0.0
        self._tries = 0
        self._retx_at: float | None = None
        self._refresh_at: float | None = None

    # ------------------------------------------------------------ inputs
    def start(self) -> list[Effect]:
        """Stateful: SOLICIT for an IA_NA now."""
        self._best, self._refresh_at = None, None
        return self._goto(State.SOLICITING) + self._begin(codec.SOLICIT)

    def start_info(self) -> list[Effect]:
        """Stateless: INFORMATION-REQUEST for DNS only."""
        self._refresh_at = None
        return self._goto(State.INFORMING) + self._begin(codec.INFORMATION_REQUEST)

    def on_packet(self, msg: codec.Message) -> list[Effect]:
        if msg.xid != self.xid or msg.server_id is None:
            return []
        if msg.client_id != self.duid and self.state is not State.INFORMING:
            return []  # 16.3/16.10; INFORMATION-REQUEST replies may omit it
        if msg.msg_type == codec.ADVERTISE and self.state is State.SOLICITING:
            return self._on_advertise(msg)
        if msg.msg_type == codec.REPLY and self.state is State.INFORMING:
            return self._on_info(msg)
        if msg.msg_type == codec.REPLY and self.state in _WAITING_REPLY:
            return self._on_reply(msg)
        return []

    def on_timer(self) -> list[Effect]:
        now = self._clock()
        lease = self.lease
        if self._refresh_at is not None and now >= self._refresh_at:
            return self.start_info()
        if lease is not None and self.state in _HOLDING:
            if now >= lease.expires_at:
                return self._lost(lease, "valid lifetime over")
            if self.state is not State.REBINDING and now >= lease.rebind_at():
                return self._goto(State.REBINDING) + self._begin(codec.REBIND)
            if self.state is State.BOUND and now >= lease.renew_at():
                return self._goto(State.RENEWING) + self._begin(codec.RENEW)
        if self._retx_at is not None and now >= self._retx_at:
            if self.state is State.SOLICITING and self._best is not None:
                return self._request_from(self._best)
            return self._retransmit(now)
        return []

    def next_deadline(self) -> float | None:
        times = [t for t in (self._retx_at, self._refresh_at) if t is not None]
        lease = self.lease
        if lease is not None and self.state in _HOLDING:
            times.append(lease.expires_at)
            if self.state is not State.REBINDING:
                times.append(lease.rebind_at())
            if self.state is State.BOUND:
                times.append(lease.renew_at())
        return min(times) if times else None

    def release(self) -> list[Effect]:
        """Give the address back (one RELEASE, no retransmission) and go to INIT."""
        lease = self.lease
        if lease is None or self.state not in _HOLDING:
            return []
        self.xid = self._xid_gen() & 0xFFFFFF
        ia = codec.IaNa(lease.iaid, 0, 0, (codec.IaAddr(lease.address, 0, 0),))
        opts = (
            (codec.OPT_CLIENTID, self.duid),
            (codec.OPT_SERVERID, lease.server_id),
            codec.elapsed(0),
            (codec.OPT_IA_NA, codec.ia_na(ia)),
        )
        return [Send(codec.Message(codec.RELEASE, self.xid, opts))] + self._reset()

    # ------------------------------------------------------------ handlers
    def _on_advertise(self, msg: codec.Message) -> list[Effect]:
        got = lease_from(msg, self.config.iaid, self._clock())
        if isinstance(got, str):
            return [Log(f"ignoring ADVERTISE: {got}")]  # 18.2.9: keep soliciting
        if msg.preference == 255 or not self.config.collect_adverts:
            return self._request_from(msg)
        if self._best is None or msg.preference > self._best.preference:
            self._best = msg
        return []

    def _request_from(self, advert: codec.Message) -> list[Effect]:
        self._server = advert.server_id
        ia = next(i for i in advert.ia_nas if i.iaid == self.config.iaid)
        self._hint = tuple(codec.IaAddr(a.address, 0, 0) for a in ia.addrs)
        fx = self._goto(State.REQUESTING)
        return (
            fx
            + [Log(f"advertised {self._hint[0].address} (preference {advert.preference})")]
            + self._begin(codec.REQUEST)
        )

    def _on_reply(self, msg: codec.Message) -> list[Effect]:
        status = msg.status
        if self.state is not State.REQUESTING and status and status.code != codec.SUCCESS:
            return [Log(f"REPLY status {status}; retrying")]  # 18.2.10: keep the lease
        got = lease_from(msg, self.config.iaid, self._sent_at)
        old, was = self.lease, self.state
        if isinstance(got, str):
            return self._bad_reply(got, old, was)
        if self.config.renew_after is not None:
            got = replace(got, t1=max(0.001, min(self.config.renew_after, got.t2 * 0.999)))
        self.lease, self._retx_at = got, None
        fx = self._goto(State.BOUND)
        if old is None:
            return fx + [Bind(got)]
        if old.address != got.address:
            return fx + [Expire(old, "server moved us to another address"), Bind(got)]
        return fx + [Renewed(got)]

    def _bad_reply(self, why: str, old: Lease6 | None, was: State) -> list[Effect]:
        if old is not None and "NoBinding" in why:
            # 18.2.10.1: the server forgot us, REQUEST the same address again
            self._server, self._hint = old.server_id, (codec.IaAddr(old.address, 0, 0),)
            return (
                [Log("server has no binding, requesting again")]
                + self._goto(State.REQUESTING)
                + self._begin(codec.REQUEST)
            )
        if old is not None:
            return self._lost(old, why)
        return [Log(f"REPLY in {was.value}: {why}, starting over")] + self._reset() + self.start()

    def _on_info(self, msg: codec.Message) -> list[Effect]:
        refresh = float(msg.info_refresh or 86400)  # IRT_DEFAULT
        if refresh != float(codec.INFINITY):
            refresh = max(refresh, self.config.info_refresh_min)
            self._refresh_at = self._clock() + refresh
        self.info = Info(msg.dns, msg.domains, refresh)
        self._retx_at = None
        return self._goto(State.INFORMED) + [Informed(self.info)]

    def _lost(self, lease: Lease6, reason: str) -> list[Effect]:
        return [Expire(lease, reason)] + self._reset() + self.start()

    # ------------------------------------------------------------ sending
    def _begin(self, kind: int) -> list[Effect]:
        """A new exchange: fresh xid, elapsed time from 0, first RT (15)."""
        now = self._clock()
        self.xid, self._kind = self._xid_gen() & 0xFFFFFF, kind
        self._started, self._tries = now, 0
        irt = _PARAMS[kind][0]
        rand = self._rand() * 0.1 if kind == codec.SOLICIT else self._jitter()  # RAND > 0
        self._rt = irt + rand * irt
        return self._send(now)

    def _retransmit(self, now: float) -> list[Effect]:
        self._tries += 1
        _, mrt, mrc = _PARAMS[self._kind]
        if self._kind in (codec.SOLICIT, codec.INFORMATION_REQUEST):
            mrt = min(mrt, self.config.sol_max_rt)
        if mrc and self._tries >= mrc:
            if self.lease is not None:
                return self._lost(self.lease, "no REPLY to REQUEST")
            return [Log("no REPLY to REQUEST, starting over")] + self._reset() + self.start()
        self._rt = 2 * self._rt + self._jitter() * self._rt
        if self._rt > mrt:
            self._rt = mrt + self._jitter() * mrt
        return self._send(now)

    def _send(self, now: float) -> list[Effect]:
        self._sent_at = now
        limit = self._mrd()
        self._retx_at = now + self._rt if limit is None else min(limit, now + self._rt)
        centis = int((now - self._started) * 100) if self._tries else 0
        opts: list[tuple[int, bytes]] = [(codec.OPT_CLIENTID, self.duid), codec.elapsed(centis)]
        if self._kind == codec.INFORMATION_REQUEST:
            return [Send(codec.Message(self._kind, self.xid, tuple(opts + [ORO_INFO])))]
        server, hint = self._target()
        if server is not None:
            opts.append((codec.OPT_SERVERID, server))
        ia = codec.IaNa(self.config.iaid, 0, 0, hint)
        opts += [(codec.OPT_IA_NA, codec.ia_na(ia)), ORO]
        return [Send(codec.Message(self._kind, self.xid, tuple(opts)))]

    def _target(self) -> tuple[bytes | None, tuple[codec.IaAddr, ...]]:
        lease = self.lease
        if self._kind == codec.REQUEST:
            return self._server, self._hint
        if lease is not None and self._kind in (codec.RENEW, codec.REBIND):
            addr = (codec.IaAddr(lease.address, 0, 0),)
            return (lease.server_id if self._kind == codec.RENEW else None), addr
        return None, ()

    def _mrd(self) -> float | None:
        lease = self.lease
        if lease is None or self._kind not in (codec.RENEW, codec.REBIND):
            return None
        return lease.rebind_at() if self._kind == codec.RENEW else lease.expires_at

    # ------------------------------------------------------------ helpers
    def _jitter(self) -> float:
        return self._rand() * 0.2 - 0.1  # RAND in [-0.1, 0.1] (15)

    def _goto(self, state: State) -> list[Effect]:
        old, self.state = self.state, state
        return [Transition(old, state)] if old is not state else []

    def _reset(self) -> list[Effect]:
        fx = self._goto(State.INIT)
        self.lease = self._best = None
        self._retx_at = self._refresh_at = None
        return fx


_WAITING_REPLY = (State.REQUESTING, State.RENEWING, State.REBINDING)
_HOLDING = (State.BOUND, State.RENEWING, State.REBINDING)
