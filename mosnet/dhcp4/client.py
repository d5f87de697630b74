"""Drive the state machine over a transport: boot-time acquire and the renew daemon."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mosnet.base import log
from mosnet.base.netif import carrier
from mosnet.base.wake import wait_readable
from mosnet.dhcp4 import codec, fsm, reverify
from mosnet.dhcp4.lease import Lease
from mosnet.dhcp4.sock import PacketTransport, Transport
from mosnet.l2.linkwatch import LinkWatch

LeaseHook = Callable[[Lease], None]
CarrierProbe = Callable[[], bool | None]  # None: cannot tell


class LinkEvents(Protocol):
    """Carrier notifications (``mosnet.l2.linkwatch.LinkWatch``); tests inject a fake."""

    def fileno(self) -> int: ...

    def changes(self) -> list[bool | None]:
        """Carrier states seen since the last call, oldest first; never blocks."""
        ...

    def close(self) -> None: ...


LinkFactory = Callable[[], LinkEvents]


@dataclass(frozen=True)
class ClientConfig:
    machine: fsm.Config = fsm.Config()
    probe_count: int = 2  # ARP probes before using an address (0: skip)
    probe_wait: float = 1.0  # boot budget for the whole probe
    # Longest sleep of run_forever. None: until the next deadline, a packet, a
    # link change or the wake fd; set it when should_stop() turns true by itself.
    poll: float | None = None
    carrier_poll: float = 1.0  # sysfs polling, only if link notifications are unavailable
    max_error_backoff: float = 16.0


class Client:
    """One DHCPv4 client on one interface."""

    def __init__(
        self,
        ifname: str,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        config: ClientConfig = ClientConfig(),
        xid_gen: Callable[[], int] = fsm.random_xid,
        carrier_probe: CarrierProbe | None = None,
        link_events: LinkFactory | None = None,
    ) -> None:
        self.ifname = ifname
        self.config = config
        self.transport: Transport = transport or PacketTransport(ifname)
        self.clock, self._sleep = clock, sleep
        self.machine = reverify.ReverifyMachine(self.transport.mac, xid_gen, clock, config.machine)
        self.log = log.get(f"dhcp4.{ifname}")
        self._errors = 0
        self._pending: list[fsm.Effect] = []
        self._carrier_probe = carrier_probe or (lambda: carrier(ifname))
        self._carrier: bool | None = None  # last seen; None until the first reading
        self._link_factory = link_events or (lambda: LinkWatch(ifname))
        self._link: LinkEvents | None = None
        self._wake_fd: int | None = None  # run_forever's stop fd: ends error backoffs too

    @property
    def lease(self) -> Lease | None:
        return self.machine.lease

    def acquire(self, timeout: float) -> Lease | None:
        """Get a lease within ``timeout`` seconds (probe included) or return None."""
        end = self.clock() + timeout
        self._pending = self.machine.start()
        while True:
            lease = self._run_effects(on_bind=None, on_expire=None, on_renew=None)
            if lease is not None:
                return lease
            left = end - self.clock()
            if left <= 0:
                self.log.warning("dhcp4 %s: no lease within %.1f s", self.ifname, timeout)
                return None
            self._wait(left)

    def run_forever(
        self,
        on_bind: LeaseHook,
        on_expire: LeaseHook,
        should_stop: Callable[[], bool],
        on_renew: LeaseHook | None = None,
        *,
        wake_fd: int | None = None,
    ) -> None:
        """Keep the lease alive until ``should_stop()`` (e.g. ``Waker.is_set``).

        Starts from wherever ``acquire`` left the machine; from INIT if nothing.
        ``on_renew`` defaults to ``on_bind`` (re-applying refreshes lifetimes).
        Sleeps until the machine's next deadline, a DHCP packet, a carrier
        change (rtnetlink, :meth:`on_link_change`) or ``wake_fd`` turning
        readable (a :class:`mosnet.base.wake.Waker`: stop at once); without
        ``wake_fd``, ``config.poll`` bounds the sleep so ``should_stop`` is seen.
        """
        if self.machine.state is fsm.State.INIT and not self.machine.next_deadline():
            self._pending = self.machine.start()
        self._open_link()
        self._wake_fd = wake_fd
        try:
            while True:
                self._check_carrier()
                self._run_effects(on_bind, on_expire, on_renew or on_bind)
                if should_stop():  # after the effects: a renewal's hooks are not left pending
                    break
                self._wait(self._sleep_cap(), wake_fd)
        finally:
            self._wake_fd = None
            self._close_link()

    def resume(self, lease: Lease) -> fsm.State:
        """Take over ``lease`` from the process that held it (a restarted daemon).

        The machine goes to BOUND and its timer decides at once: past T1 it
        renews (unicast), past T2 it rebinds, past expiry it loses the lease
        and starts over. No DISCOVER while the lease is valid. The effects run
        with ``run_forever``'s hooks.
        """
        self.machine.lease, self.machine.state = lease, fsm.State.BOUND
        self._pending += self.machine.on_timer()
        if self.lease is None:  # expired: on_timer started over
            self.log.info("dhcp4 %s: recorded lease %s has expired", self.ifname, lease.address)
        else:
            self.log.info("dhcp4 %s: took over %s from %s in %s, %.0f s left", self.ifname,
                          lease.address, lease.server_id, self.machine.state.value,
                          lease.remaining(self.clock()))  # fmt: skip
        return self.machine.state

    def release(self) -> None:
        """Send RELEASE for the current lease (best effort) and forget it."""
        self._pending += self.machine.release()
        self._run_effects(None, None, None)

    def on_link_change(self, up: bool) -> None:
        """Carrier lost or regained; call from the thread that runs the client.

        Down: only noted, the lease and its timers stay (a flap is usually a
        cable or switch reboot). Up: RFC 2131 3.2 INIT-REBOOT re-verification
        (ACK keeps the lease, NAK restarts from INIT, silence keeps the lease
        until T2/expiry); without a lease a DISCOVER goes out at once.
        """
        self.log.info("dhcp4 %s: link %s", self.ifname, "up" if up else "down")
        self._carrier = up
        self._pending += self.machine.reverify() if up else self.machine.link_down()

    def close(self) -> None:
        self._close_link()
        self.transport.close()

    # ------------------------------------------------------------ internals
    def _open_link(self) -> None:
        """Subscribe first, then read sysfs: a change in between is not lost."""
        if self._link is None:
            try:
                self._link = self._link_factory()
            except OSError as exc:
                self.log.warning("dhcp4 %s: no link notifications (%s); polling carrier every "
                                 "%.0f s", self.ifname, exc, self.config.carrier_poll)  # fmt: skip
        self._note_carrier(self._carrier_probe())

    def _close_link(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def _sleep_cap(self) -> float | None:
        cap = self.config.poll
        if self._link is None:  # polling sysfs for the carrier
            cap = self.config.carrier_poll if cap is None else min(cap, self.config.carrier_poll)
        return cap

    def _check_carrier(self) -> None:
        if self._link is None:
            self._note_carrier(self._carrier_probe())
            return
        try:
            states = self._link.changes()
        except OSError as exc:  # should not happen; fall back to polling sysfs
            self.log.warning("dhcp4 %s: link notifications failed (%s)", self.ifname, exc)
            self._close_link()
            states = [self._carrier_probe()]
        for now in states:
            self._note_carrier(now)

    def _note_carrier(self, now: bool | None) -> None:
        if now is None or now == self._carrier:
            return
        if self._carrier is None:  # first reading: a state, not a change
            self._carrier = now
            return
        self.on_link_change(now)

    def _wait(self, budget: float | None, wake_fd: int | None = None) -> None:
        """Receive until the next machine deadline, ``budget`` or a wake-up, feeding packets in."""
        deadline = self.machine.next_deadline()
        limit = budget
        if deadline is not None:
            left = deadline - self.clock()
            limit = left if limit is None else min(limit, left)
        wake = tuple(fd for fd in (wake_fd, self._link_fd()) if fd is not None)
        try:
            data = self.transport.recv(None if limit is None else max(0.0, limit), wake)
            self._errors = 0
        except OSError as exc:
            self._transient(exc)
            return
        if data:
            try:
                msg = codec.decode(data)
            except codec.DecodeError as exc:
                self.log.debug("dhcp4 %s: dropped packet: %s", self.ifname, exc)
                return
            self._pending += self.machine.on_packet(msg)
        deadline = self.machine.next_deadline()
        if deadline is not None and self.clock() >= deadline:
            self._pending += self.machine.on_timer()

    def _link_fd(self) -> int | None:
        return self._link.fileno() if self._link is not None else None

    def _transient(self, exc: OSError) -> None:
        """ENETDOWN, EINTR and friends: log, back off, keep going."""
        self._errors += 1
        delay = min(0.25 * (1 << min(self._errors, 8)), self.config.max_error_backoff)
        if exc.errno != errno.EINTR:
            self.log.warning("dhcp4 %s: %s; retrying in %.1f s", self.ifname, exc, delay)
            if self._wake_fd is None:
                self._sleep(delay)
            else:  # SIGTERM must not wait out a backoff
                wait_readable([self._wake_fd], delay)

    def _run_effects(
        self, on_bind: LeaseHook | None, on_expire: LeaseHook | None, on_renew: LeaseHook | None
    ) -> Lease | None:
        bound: Lease | None = None
        while self._pending:
            effect = self._pending.pop(0)
            if isinstance(effect, fsm.Bind):
                if self._conflict(effect.lease):
                    self._pending += self.machine.on_conflict()
                    continue
                bound = effect.lease
                self.log.info(
                    "dhcp4 %s: bound %s/%d from %s, lease %.0f s",
                    self.ifname,
                    bound.address,
                    bound.prefixlen,
                    bound.server_id,
                    bound.lease_time,
                )
                if on_bind:
                    on_bind(bound)
            elif isinstance(effect, fsm.Renewed):
                bound = effect.lease
                self.log.info(
                    "dhcp4 %s: renewed %s for %.0f s", self.ifname, bound.address, bound.lease_time
                )
                if on_renew:
                    on_renew(bound)
            elif isinstance(effect, fsm.Expire):
                self.log.warning(
                    "dhcp4 %s: lost %s: %s", self.ifname, effect.lease.address, effect.reason
                )
                if on_expire:
                    on_expire(effect.lease)
            else:
                self._other(effect)
        return bound

    def _other(self, effect: fsm.Effect) -> None:
        if isinstance(effect, fsm.Transition):
            self.log.info("dhcp4 %s: %s -> %s", self.ifname, effect.old.value, effect.new.value)
        elif isinstance(effect, fsm.Log):
            self.log.info("dhcp4 %s: %s", self.ifname, effect.text)
        elif isinstance(effect, fsm.Decline):
            self.log.warning("dhcp4 %s: %s is in use, declining", self.ifname, effect.lease.address)
        elif isinstance(effect, (fsm.SendBroadcast, fsm.SendUnicast)):
            self._send(effect)

    def _send(self, effect: fsm.SendBroadcast | fsm.SendUnicast) -> None:
        payload = codec.encode(effect.msg)
        kind = codec.MSG_NAMES.get(effect.msg.msg_type or 0, "?")
        try:
            if isinstance(effect, fsm.SendUnicast):
                self.log.debug("dhcp4 %s: %s unicast to %s", self.ifname, kind, effect.server)
                self.transport.send_unicast(payload, effect.server, effect.src)
            else:
                self.log.debug("dhcp4 %s: %s broadcast", self.ifname, kind)
                self.transport.send_broadcast(payload, effect.src)
        except OSError as exc:
            # the machine's retransmit timer covers a lost send
            self._transient(exc)

    def _conflict(self, lease: Lease) -> bool:
        if self.config.probe_count <= 0:
            return False
        try:
            return self.transport.probe(
                lease.address, self.config.probe_count, self.config.probe_wait
            )
        except OSError as exc:
            self.log.warning("dhcp4 %s: ARP probe failed (%s); using the address", self.ifname, exc)
            return False
