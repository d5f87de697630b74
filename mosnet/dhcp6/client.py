"""Drive the DHCPv6 machine over a transport: boot-time acquire/inform and the daemon loop."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from mosnet.base import log
from mosnet.dhcp6 import codec, fsm
from mosnet.dhcp6.lease import Info, Lease6
from mosnet.dhcp6.sock import Transport, UdpTransport

LeaseHook = Callable[[Lease6], None]
InfoHook = Callable[[Info], None]
T = TypeVar("T")


@dataclass(frozen=True)
class ClientConfig:
    machine: fsm.Config = fsm.Config()
    dad_wait: float = 3.0  # link-local DAD before binding port 546
    poll: float = 1.0  # run_forever checks should_stop at least this often
    max_error_backoff: float = 16.0


@dataclass
class _Hooks:
    on_bind: LeaseHook | None = None
    on_expire: LeaseHook | None = None
    on_renew: LeaseHook | None = None
    on_info: InfoHook | None = None


class Client:
    """One DHCPv6 client on one interface (stateful IA_NA or stateless)."""

    def __init__(
        self,
        ifname: str,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        config: ClientConfig = ClientConfig(),
        xid_gen: Callable[[], int] = fsm.random_xid,
    ) -> None:
        self.ifname, self.config = ifname, config
        self.transport: Transport = transport or UdpTransport(ifname, config.dad_wait)
        self.clock, self._sleep = clock, sleep
        self.machine = fsm.Machine(self.transport.mac, xid_gen, clock, config.machine)
        self.log = log.get(f"dhcp6.{ifname}")
        self._errors = 0
        self._pending: list[fsm.Effect] = []

    @property
    def lease(self) -> Lease6 | None:
        return self.machine.lease

    def acquire(self, timeout: float) -> Lease6 | None:
        """Stateful: an IA_NA lease within ``timeout`` seconds, or None."""
        self._pending = self.machine.start()
        return self._until(timeout, lambda: self.machine.lease)

    def inform(self, timeout: float) -> Info | None:
        """Stateless: DNS via INFORMATION-REQUEST within ``timeout`` seconds, or None."""
        self._pending = self.machine.start_info()
        return self._until(timeout, lambda: self.machine.info)

    def _until(self, timeout: float, result: Callable[[], T | None]) -> T | None:
        end = self.clock() + timeout
        while True:
            self._run_effects(_Hooks())
            got = result()
            if got is not None:
                return got
            left = end - self.clock()
            if left <= 0:
                self.log.warning("dhcp6 %s: nothing within %.1f s", self.ifname, timeout)
                return None
            self._wait(left)

    def run_forever(
        self,
        on_bind: LeaseHook,
        on_expire: LeaseHook,
        should_stop: Callable[[], bool],
        on_renew: LeaseHook | None = None,
        on_info: InfoHook | None = None,
    ) -> None:
        """Keep the lease (or the stateless info) fresh until ``should_stop()``.

        Starts from wherever ``acquire``/``inform`` left the machine; a machine
        that never started solicits. ``on_renew`` defaults to ``on_bind``.
        """
        if self.machine.state is fsm.State.INIT:
            self._pending = self.machine.start()
        hooks = _Hooks(on_bind, on_expire, on_renew or on_bind, on_info)
        while not should_stop():
            self._run_effects(hooks)
            self._wait(self.config.poll)

    def release(self) -> None:
        self._pending += self.machine.release()
        self._run_effects(_Hooks())

    def close(self) -> None:
        self.transport.close()

    # ------------------------------------------------------------ internals
    def _wait(self, budget: float) -> None:
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
                self.log.debug("dhcp6 %s: dropped packet: %s", self.ifname, exc)
                return
            self._pending += self.machine.on_packet(msg)
        deadline = self.machine.next_deadline()
        if deadline is not None and self.clock() >= deadline:
            self._pending += self.machine.on_timer()

    def _transient(self, exc: OSError) -> None:
        self._errors += 1
        delay = min(0.25 * (1 << min(self._errors, 8)), self.config.max_error_backoff)
        if exc.errno != errno.EINTR:
            self.log.warning("dhcp6 %s: %s; retrying in %.1f s", self.ifname, exc, delay)
            self._sleep(delay)

    def _run_effects(self, hooks: _Hooks) -> None:
        while self._pending:
            effect = self._pending.pop(0)
            if isinstance(effect, fsm.Bind):
                lease = effect.lease
                self.log.info(
                    "dhcp6 %s: bound %s, valid %.0f s", self.ifname, lease.address, lease.valid
                )
                if hooks.on_bind:
                    hooks.on_bind(lease)
            elif isinstance(effect, fsm.Renewed):
                self.log.info("dhcp6 %s: renewed %s", self.ifname, effect.lease.address)
                if hooks.on_renew:
                    hooks.on_renew(effect.lease)
            elif isinstance(effect, fsm.Expire):
                self.log.warning(
                    "dhcp6 %s: lost %s: %s", self.ifname, effect.lease.address, effect.reason
                )
                if hooks.on_expire:
                    hooks.on_expire(effect.lease)
            elif isinstance(effect, fsm.Informed):
                self.log.info(
                    "dhcp6 %s: dns %s", self.ifname, " ".join(map(str, effect.info.dns)) or "-"
                )
                if hooks.on_info:
                    hooks.on_info(effect.info)
            else:
                self._other(effect)

    def _other(self, effect: fsm.Effect) -> None:
        if isinstance(effect, fsm.Transition):
            self.log.info("dhcp6 %s: %s -> %s", self.ifname, effect.old.value, effect.new.value)
        elif isinstance(effect, fsm.Log):
            self.log.info("dhcp6 %s: %s", self.ifname, effect.text)
        elif isinstance(effect, fsm.Send):
            kind = codec.MSG_NAMES.get(effect.msg.msg_type, "?")
            self.log.debug("dhcp6 %s: %s xid %06x", self.ifname, kind, effect.msg.xid)
            try:
                self.transport.send(codec.encode(effect.msg))
            except OSError as exc:
                self._transient(exc)  # the retransmit timer covers a lost send
