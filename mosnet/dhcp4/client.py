"""Drive the state machine over a transport: boot-time acquire and the renew daemon."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass

from mosnet import log
from mosnet.dhcp4 import codec, fsm
from mosnet.dhcp4.lease import Lease
from mosnet.dhcp4.sock import PacketTransport, Transport
from mosnet.netif import carrier

LeaseHook = Callable[[Lease], None]
CarrierProbe = Callable[[], bool | None]  # None: cannot tell


@dataclass(frozen=True)
class ClientConfig:
    machine: fsm.Config = fsm.Config()
    probe_count: int = 2  # ARP probes before using an address (0: skip)
    probe_wait: float = 1.0  # boot budget for the whole probe
    poll: float = 1.0  # run_forever checks should_stop at least this often
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
    ) -> None:
        self.ifname = ifname
        self.config = config
        self.transport: Transport = transport or PacketTransport(ifname)
        self.clock, self._sleep = clock, sleep
        self.machine = fsm.ReverifyMachine(self.transport.mac, xid_gen, clock, config.machine)
        self.log = log.get(f"dhcp4.{ifname}")
        self._errors = 0
        self._pending: list[fsm.Effect] = []
        self._carrier_probe = carrier_probe or (lambda: carrier(ifname))
        self._carrier: bool | None = None  # last seen; None until the first poll

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
    ) -> None:
        """Keep the lease alive until ``should_stop()`` (e.g. ``Event.is_set``).

        Starts from wherever ``acquire`` left the machine; from INIT if nothing.
        ``on_renew`` defaults to ``on_bind`` (re-applying refreshes lifetimes).
        Carrier is polled once per iteration (a sysfs read), so a link flap
        longer than ``config.poll`` triggers :meth:`on_link_change`.
        """
        if self.machine.state is fsm.State.INIT and not self.machine.next_deadline():
            self._pending = self.machine.start()
        while not should_stop():
            self._poll_carrier()
            self._run_effects(on_bind, on_expire, on_renew or on_bind)
            self._wait(self.config.poll)

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
        self.transport.close()

    # ------------------------------------------------------------ internals
    def _poll_carrier(self) -> None:
        now = self._carrier_probe()
        if now is None or now == self._carrier:
            return
        if self._carrier is None:  # first reading: a state, not a change
            self._carrier = now
            return
        self.on_link_change(now)

    def _wait(self, budget: float) -> None:
        """Receive until the next machine deadline (or ``budget``), feeding packets in."""
        deadline = self.machine.next_deadline()
        now = self.clock()
        limit = min(budget, deadline - now) if deadline is not None else budget
        try:
            data = self.transport.recv(max(0.0, limit))
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

    def _transient(self, exc: OSError) -> None:
        """ENETDOWN, EINTR and friends: log, back off, keep going."""
        self._errors += 1
        delay = min(0.25 * (1 << min(self._errors, 8)), self.config.max_error_backoff)
        if exc.errno != errno.EINTR:
            self.log.warning("dhcp4 %s: %s; retrying in %.1f s", self.ifname, exc, delay)
            self._sleep(delay)

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
