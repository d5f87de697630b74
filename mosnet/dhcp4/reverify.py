"""Link-flap re-verification (issue 4 section 1): INIT-REBOOT after the carrier returns.

``ReverifyMachine`` is ``fsm.Machine`` plus RFC 2131 3.2 INIT-REBOOT: when the
link comes back, a REQUEST with option 50 and no server id asks whoever owns
the segment now whether the lease still holds. A subclass of its own so the
core machine stays the RFC 2131 4.4 diagram; fold it in (as a REBOOTING
state) whenever convenient.
"""

from __future__ import annotations

from dataclasses import dataclass

from mosnet.dhcp4 import codec
from mosnet.dhcp4.fsm import (
    HOLDING,
    Bind,
    Effect,
    Expire,
    Log,
    Machine,
    Renewed,
    SendBroadcast,
    State,
    with_t1,
)
from mosnet.dhcp4.lease import Lease, LeaseError, from_ack

REVERIFY_TRIES = 3  # INIT-REBOOT REQUESTs before keeping the lease unconfirmed
REVERIFY_GAP = 2.0  # first retransmission gap, doubled after each try


@dataclass
class _Reverify:
    xid: int
    started: float  # first REQUEST: lease times count from here (conservative)
    next_at: float
    tries: int = 1


class ReverifyMachine(Machine):
    """Machine plus RFC 2131 3.2 INIT-REBOOT after the carrier comes back.

    The REQUEST carries option 50 and no server id, so whichever server owns
    the segment now answers: ACK keeps the lease (with fresh times), NAK starts
    over from INIT, silence leaves the lease and its T1/T2 timers untouched.
    """

    _rv: _Reverify | None = None

    def link_down(self) -> list[Effect]:
        self._rv = None
        return []

    def reverify(self) -> list[Effect]:
        lease, now = self.lease, self._clock()
        if lease is None or self.state not in HOLDING:
            if self.state is State.SELECTING:  # do not sit out a long DISCOVER backoff
                return [Log("link up: DISCOVER now")] + self.start()
            return []
        self._rv = _Reverify(self._xid_gen() & 0xFFFFFFFF, now, now + REVERIFY_GAP)
        return [Log(f"link up: re-verifying {lease.address}"), self._rv_request(lease, now)]

    def on_packet(self, msg: codec.Message) -> list[Effect]:
        rv = self._rv
        if rv is None or msg.xid != rv.xid or msg.op != codec.BOOTREPLY or msg.chaddr != self.mac:
            return super().on_packet(msg)
        lease = self.lease
        if lease is None or self.state not in HOLDING:
            self._rv = None
            return []
        if msg.msg_type == codec.NAK:
            # any server may NAK: INIT-REBOOT asks whoever owns this segment now
            self._rv = None
            text = msg.text(codec.OPT_MESSAGE)
            why = f"NAK from {msg.server_id} after link up" + (f": {text!r}" if text else "")
            return self._lost(lease, why)
        if msg.msg_type == codec.ACK:
            return self._rv_ack(msg, lease, rv)
        return []

    def on_timer(self) -> list[Effect]:
        rv, now = self._rv, self._clock()
        fx: list[Effect] = []
        if rv is not None and now >= rv.next_at:
            lease = self.lease
            if lease is None or self.state not in HOLDING:
                self._rv = None
            elif rv.tries >= REVERIFY_TRIES:
                self._rv = None
                fx.append(Log(f"link up: no answer about {lease.address}; keeping it"))
            else:
                rv.next_at = now + REVERIFY_GAP * (1 << rv.tries)
                rv.tries += 1
                fx.append(self._rv_request(lease, now))
        return fx + super().on_timer()

    def next_deadline(self) -> float | None:
        base = super().next_deadline()
        if self._rv is None:
            return base
        return self._rv.next_at if base is None else min(base, self._rv.next_at)

    def _rv_request(self, lease: Lease, now: float) -> SendBroadcast:
        assert self._rv is not None
        secs = max(0, min(0xFFFF, int(now - self._rv.started)))
        msg = codec.request(
            self.mac,
            self._rv.xid,
            form="init-reboot",
            addr=lease.address,
            secs=secs,
            hostname=self.config.hostname,
        )
        return SendBroadcast(msg)

    def _rv_ack(self, msg: codec.Message, old: Lease, rv: _Reverify) -> list[Effect]:
        try:
            new = from_ack(msg, rv.started)
        except LeaseError as exc:
            return [Log(f"ignoring ACK: {exc}")]
        if self.config.renew_after is not None:
            new = with_t1(new, self.config.renew_after)
        self._rv, self.lease = None, new
        self._retx_at = self._give_up_at = None  # a renewal in flight is answered too
        fx = self._goto(State.BOUND) + [Log(f"link up: {new.address} confirmed")]
        if old.address != new.address or old.prefixlen != new.prefixlen:
            return fx + [Expire(old, "address changed after link up"), Bind(new)]
        return fx + [Renewed(new)]
