"""The DHCPv4 client state machine (RFC 2131 section 4.4), without any I/O.

The machine is driven by three inputs (``start``, ``on_packet``, ``on_timer``
plus ``on_conflict``) and answers with a list of effects for the caller to
perform. Time comes from an injected monotonic clock, so tests can walk a
whole lease lifetime in microseconds and a wall-clock jump changes nothing.
Re-verifying a lease after a link flap is ``mosnet.dhcp4.reverify``.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from ipaddress import IPv4Address

from mosnet.dhcp4 import codec
from mosnet.dhcp4.lease import Lease, LeaseError, from_ack


class State(enum.Enum):
    INIT = "INIT"
    SELECTING = "SELECTING"
    REQUESTING = "REQUESTING"
    BOUND = "BOUND"
    RENEWING = "RENEWING"
    REBINDING = "REBINDING"


@dataclass(frozen=True)
class Config:
    hostname: str | None = None
    select_timeout: float = 60.0  # SELECTING without an OFFER: start over
    request_tries: int = 4  # REQUESTING retransmissions before starting over
    max_backoff: float = 64.0
    min_retransmit: float = 60.0  # RFC 2131 4.4.5; lower it for short test leases
    renew_after: float | None = None  # test hook: override T1 (seconds after bind)
    restart_delay: float = 10.0  # after DECLINE (RFC 2131 3.1.5) or a NAK loop


@dataclass(frozen=True)
class SendBroadcast:
    msg: codec.Message
    src: IPv4Address = codec.ZERO


@dataclass(frozen=True)
class SendUnicast:
    msg: codec.Message
    server: IPv4Address
    src: IPv4Address


@dataclass(frozen=True)
class Bind:
    lease: Lease


@dataclass(frozen=True)
class Renewed:
    lease: Lease


@dataclass(frozen=True)
class Expire:
    lease: Lease
    reason: str


@dataclass(frozen=True)
class Decline:
    lease: Lease


@dataclass(frozen=True)
class Transition:
    old: State
    new: State


@dataclass(frozen=True)
class Log:
    text: str


Effect = SendBroadcast | SendUnicast | Bind | Renewed | Expire | Decline | Transition | Log


def random_xid() -> int:
    return random.getrandbits(32)


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
        self.mac, self.config = mac, config
        self._xid_gen, self._rand = xid_gen, rand
        self._clock = clock or time.monotonic
        self.state = State.INIT
        self.lease: Lease | None = None
        self.xid = 0
        self._offer: codec.Message | None = None
        self._started = 0.0  # begin of the current exchange, for ``secs``
        self._sent_at = 0.0  # last REQUEST: lease times count from here
        self._tries = 0
        self._retx_at: float | None = None
        self._give_up_at: float | None = None
        self._restart_at: float | None = None

    # ------------------------------------------------------------ inputs
    def start(self) -> list[Effect]:
        """Begin (or restart) acquisition from INIT: broadcast a DISCOVER now."""
        now = self._clock()
        fx = self._goto(State.SELECTING)
        self.xid, self._started, self._tries = self._xid_gen() & 0xFFFFFFFF, now, 0
        self._offer, self._restart_at = None, None
        self._give_up_at = now + self.config.select_timeout
        return fx + self._send_discover(now)

    def on_packet(self, msg: codec.Message) -> list[Effect]:
        if msg.op != codec.BOOTREPLY or msg.xid != self.xid or msg.chaddr != self.mac:
            return []
        kind = msg.msg_type
        if kind == codec.OFFER and self.state is State.SELECTING:
            return self._on_offer(msg)
        if kind == codec.ACK and self.state in _WAITING_ACK:
            return self._on_ack(msg)
        if kind == codec.NAK and self.state in _WAITING_ACK:
            return self._on_nak(msg)
        return []

    def on_timer(self) -> list[Effect]:
        now = self._clock()
        lease = self.lease
        if self._restart_at is not None and now >= self._restart_at:
            return self.start()
        if lease is not None and self.state in HOLDING:
            if now >= lease.expires_at:
                return self._lost(lease, "lease expired")
            if self.state is not State.REBINDING and now >= lease.rebind_at():
                return self._begin_renew(State.REBINDING, now)
            if self.state is State.BOUND and now >= lease.renew_at():
                return self._begin_renew(State.RENEWING, now)
        if self._give_up_at is not None and now >= self._give_up_at:
            return [Log(f"no answer in {self.state.value}, starting over")] + self.start()
        if self._retx_at is not None and now >= self._retx_at:
            return self._retransmit(now)
        return []

    def on_conflict(self) -> list[Effect]:
        """The caller's ARP probe found the bound address in use: DECLINE it."""
        lease = self.lease
        if lease is None or self.state is not State.BOUND:
            return []
        self.xid = self._xid_gen() & 0xFFFFFFFF
        msg = codec.decline(self.mac, self.xid, lease.address, lease.server_id)
        fx = self._reset() + [Decline(lease), SendBroadcast(msg)]
        self._restart_at = self._clock() + self.config.restart_delay
        return fx

    def next_deadline(self) -> float | None:
        times = [t for t in (self._restart_at, self._give_up_at, self._retx_at) if t is not None]
        lease = self.lease
        if lease is not None and self.state in HOLDING:
            times.append(lease.expires_at)
            if self.state is not State.REBINDING:
                times.append(lease.rebind_at())
            if self.state is State.BOUND:
                times.append(lease.renew_at())
        return min(times) if times else None

    def release(self) -> list[Effect]:
        """Give the lease back (unicast RELEASE) and go to INIT."""
        lease = self.lease
        if lease is None or self.state not in HOLDING:
            return []
        msg = codec.release(self.mac, self._xid_gen() & 0xFFFFFFFF, lease.address, lease.server_id)
        return [SendUnicast(msg, lease.server_id, lease.address)] + self._reset()

    # ------------------------------------------------------------ handlers
    def _on_offer(self, msg: codec.Message) -> list[Effect]:
        server = msg.server_id
        if msg.yiaddr == codec.ZERO or server is None:
            return [Log("ignoring OFFER without yiaddr or server id")]
        now = self._clock()
        self._offer, self._tries = msg, 0
        self._give_up_at = None
        fx = self._goto(State.REQUESTING)
        fx.append(Log(f"offer {msg.yiaddr} from {server}"))
        return fx + self._send_request(now)

    def _on_ack(self, msg: codec.Message) -> list[Effect]:
        server = msg.server_id
        if self.state is State.REQUESTING and self._offer is not None:
            if server != self._offer.server_id:
                return [Log(f"ignoring ACK from {server}: requested from another server")]
        try:
            lease = from_ack(msg, self._sent_at)
        except LeaseError as exc:
            return [Log(f"ignoring ACK: {exc}")]
        if self.config.renew_after is not None:
            lease = with_t1(lease, self.config.renew_after)
        old, was = self.lease, self.state
        self.lease, self._offer = lease, None
        self._retx_at = self._give_up_at = None
        fx = self._goto(State.BOUND)
        for text in lease.dropped:
            fx.append(Log(f"dropped {text}"))
        if was is State.REQUESTING or old is None:
            return fx + [Bind(lease)]
        if old.address != lease.address or old.prefixlen != lease.prefixlen:
            return fx + [Expire(old, "address changed on renewal"), Bind(lease)]
        return fx + [Renewed(lease)]

    def _on_nak(self, msg: codec.Message) -> list[Effect]:
        server = msg.server_id
        expected = (
            self._offer.server_id
            if self.state is State.REQUESTING and self._offer
            else self.lease.server_id
            if self.lease
            else None
        )
        if server is None or server != expected:
            return [Log(f"ignoring NAK from {server}")]
        text = msg.text(codec.OPT_MESSAGE)
        reason = f"NAK from {server}" + (f": {text!r}" if text else "")
        if self.lease is not None and self.state in HOLDING:
            return self._lost(self.lease, reason)
        return [Log(reason)] + self._reset() + self.start()

    def _lost(self, lease: Lease, reason: str) -> list[Effect]:
        return [Expire(lease, reason)] + self._reset() + self.start()

    def _begin_renew(self, state: State, now: float) -> list[Effect]:
        fx = self._goto(state)
        self.xid, self._started, self._tries = self._xid_gen() & 0xFFFFFFFF, now, 0
        return fx + self._send_request(now)

    def _retransmit(self, now: float) -> list[Effect]:
        self._tries += 1
        if self.state is State.SELECTING:
            return self._send_discover(now)
        if self.state is State.REQUESTING and self._tries >= self.config.request_tries:
            return [Log("no ACK, starting over")] + self._reset() + self.start()
        if self.state in _WAITING_ACK:
            return self._send_request(now)
        self._retx_at = None
        return []

    # ------------------------------------------------------------ sending
    def _send_discover(self, now: float) -> list[Effect]:
        msg = codec.discover(
            self.mac, self.xid, secs=self._secs(now), hostname=self.config.hostname
        )
        self._retx_at = now + self._backoff()
        return [SendBroadcast(msg)]

    def _send_request(self, now: float) -> list[Effect]:
        self._sent_at = now
        secs, host = self._secs(now), self.config.hostname
        if self.state is State.REQUESTING and self._offer is not None:
            msg = codec.request(
                self.mac,
                self.xid,
                form="selecting",
                addr=self._offer.yiaddr,
                server_id=self._offer.server_id,
                secs=secs,
                hostname=host,
            )
            self._retx_at = now + self._backoff()
            return [SendBroadcast(msg)]
        lease = self.lease
        assert lease is not None
        form = "renewing" if self.state is State.RENEWING else "rebinding"
        msg = codec.request(
            self.mac, self.xid, form=form, addr=lease.address, secs=secs, hostname=host
        )
        limit = lease.rebind_at() if self.state is State.RENEWING else lease.expires_at
        self._retx_at = min(limit, now + max(self.config.min_retransmit, (limit - now) / 2))
        if self.state is State.RENEWING:
            return [SendUnicast(msg, lease.server_id, lease.address)]
        return [SendBroadcast(msg, lease.address)]

    # ------------------------------------------------------------ helpers
    def _backoff(self) -> float:
        base = min(4.0 * (1 << min(self._tries, 10)), self.config.max_backoff)
        return max(0.0, base + self._rand() * 2 - 1)  # RFC 2131 4.1: +-1 s jitter

    def _secs(self, now: float) -> int:
        return max(0, min(0xFFFF, int(now - self._started)))

    def _goto(self, state: State) -> list[Effect]:
        old, self.state = self.state, state
        return [Transition(old, state)] if old is not state else []

    def _reset(self) -> list[Effect]:
        fx = self._goto(State.INIT)
        self.lease = self._offer = None
        self._retx_at = self._give_up_at = self._restart_at = None
        return fx


_WAITING_ACK = (State.REQUESTING, State.RENEWING, State.REBINDING)
# Public for reverify.ReverifyMachine, which extends this machine.
HOLDING = (State.BOUND, State.RENEWING, State.REBINDING)


def with_t1(lease: Lease, t1: float) -> Lease:
    """``lease`` with T1 at ``t1`` seconds (the ``renew_after`` test hook), below T2."""
    t1 = max(0.001, min(t1, lease.t2 * 0.999))
    return replace(lease, t1=t1)
