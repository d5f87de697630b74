"""The renew loop sleeps until there is something to do (issue 7: idle CPU).

A fake transport records every wait (timeout and wake fds) on a fake clock;
a fake link source stands in for rtnetlink. An idle bound client must wait
exactly until T1, carrier changes must arrive as events (a flap shorter than
any poll period included), and a stop fd must be in every wait.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address

from mosnet.dhcp4 import codec, fsm
from mosnet.dhcp4.client import Client, ClientConfig
from mosnet.dhcp4.lease import Lease

MAC = bytes.fromhex("020000000002")
SERVER = IPv4Address("10.98.0.1")
ADDR = IPv4Address("10.98.0.10")
LEASE = 3600
STOP_FD, LINK_FD = 900, 901


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def reply(xid: int, kind: int) -> codec.Message:
    opts = (
        (53, bytes((kind,))),
        (1, b"\xff\xff\xff\0"),
        (51, struct.pack("!I", LEASE)),
        (54, SERVER.packed),
    )
    return codec.Message(codec.BOOTREPLY, xid, MAC, opts, yiaddr=ADDR)


class Transport:
    """Answers DISCOVER/REQUEST (broadcast or unicast) at once; records waits."""

    mac = MAC

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[codec.Message] = []
        self.inbox: list[codec.Message] = []
        self.waits: list[tuple[float | None, tuple[int, ...]]] = []
        # a test hook: something that makes a wake fd readable while we sleep
        self.wake: Callable[[], None] | None = None

    def _answer(self, payload: bytes) -> None:
        msg = codec.decode(payload)
        self.sent.append(msg)
        kind = {codec.DISCOVER: codec.OFFER, codec.REQUEST: codec.ACK}.get(msg.msg_type or 0)
        if kind is not None:
            self.inbox.append(reply(msg.xid, kind))

    def send_broadcast(self, payload: bytes, src: IPv4Address) -> None:
        self._answer(payload)

    def send_unicast(self, payload: bytes, server: IPv4Address, src: IPv4Address) -> None:
        self._answer(payload)

    def recv(self, timeout: float | None, wake: Sequence[int] = ()) -> bytes | None:
        self.waits.append((timeout, tuple(wake)))
        if self.inbox:
            return codec.encode(self.inbox.pop(0))
        if self.wake is not None:  # woken early: no time passes
            early_wake, self.wake = self.wake, None
            early_wake()
            return None
        assert timeout is not None, "an idle fake would sleep forever"
        self.clock.t += timeout
        return None

    def probe(self, addr: IPv4Address, count: int, wait: float) -> bool:
        return False

    def close(self) -> None:
        pass


class Link:
    def __init__(self) -> None:
        self.script: list[list[bool | None]] = []
        self.closed = False

    def fileno(self) -> int:
        return LINK_FD

    def changes(self) -> list[bool | None]:
        return self.script.pop(0) if self.script else []

    def close(self) -> None:
        self.closed = True


QUIET = ClientConfig(probe_count=0)


def client(config: ClientConfig = QUIET) -> tuple[Client, Transport, Link]:
    clock = Clock()
    tr, link = Transport(clock), Link()
    c = Client("eth9", transport=tr, clock=clock, sleep=lambda s: None, config=config,
               carrier_probe=lambda: True, link_events=lambda: link)  # fmt: skip
    assert c.acquire(5.0) is not None
    tr.waits.clear()
    return c, tr, link


def test_idle_bound_client_sleeps_until_t1_and_renews() -> None:
    c, tr, link = client()
    lease = c.lease
    assert lease is not None
    renewed: list[Lease] = []
    c.run_forever(lambda _: None, lambda _: None, lambda: bool(renewed), renewed.append,
                  wake_fd=STOP_FD)  # fmt: skip
    # one sleep to T1 (nothing polled in between), one to receive the ACK
    first = tr.waits[0]
    assert first == (lease.renew_at() - 1000.0, (STOP_FD, LINK_FD)), tr.waits
    assert len(tr.waits) == 2 and [m.msg_type for m in tr.sent][-1] == codec.REQUEST
    assert renewed and c.machine.state is fsm.State.BOUND and link.closed


def test_short_flap_seen_as_events_reverifies_at_once() -> None:
    c, tr, link = client()
    lease = c.lease
    assert lease is not None

    def flap() -> None:  # down and up again, shorter than any poll period
        link.script.append([False, True])

    tr.wake = flap
    renewed: list[Lease] = []
    c.run_forever(lambda _: None, lambda _: None, lambda: bool(renewed), renewed.append,
                  wake_fd=STOP_FD)  # fmt: skip
    req = tr.sent[-1]
    assert req.msg_type == codec.REQUEST and req.server_id is None  # INIT-REBOOT
    assert req.opt(codec.OPT_REQUESTED_IP) == ADDR.packed
    assert len(renewed) == 1 and c.clock() == 1000.0 < lease.renew_at()
    assert len(tr.waits) == 2  # slept, woken by the link fd, then the ACK


def test_same_state_and_first_reading_are_not_changes() -> None:
    c, tr, link = client()
    link.script = [[True, True], [None, True]]  # repeated up; removed interface: cannot tell
    stop: list[int] = []
    tr.wake = lambda: stop.append(1)
    c.run_forever(lambda _: None, lambda _: None, lambda: bool(stop), wake_fd=STOP_FD)
    assert [m.msg_type for m in tr.sent] == [codec.DISCOVER, codec.REQUEST]  # only acquire's
    assert link.script == [] and c.clock() == 1000.0


def test_without_wake_fd_poll_bounds_the_sleep() -> None:
    c, tr, link = client(ClientConfig(probe_count=0, poll=0.5))
    loops = iter(range(3))
    c.run_forever(lambda _: None, lambda _: None, lambda: next(loops) >= 2)
    assert tr.waits == [(0.5, (LINK_FD,)), (0.5, (LINK_FD,))] and c.clock() == 1001.0


def test_no_netlink_falls_back_to_polling_sysfs() -> None:
    clock = Clock()
    tr = Transport(clock)
    readings = iter([True, True, False, True] + [True] * 5)

    def no_netlink() -> Link:
        raise OSError(97, "EAFNOSUPPORT")

    c = Client("eth9", transport=tr, clock=clock, sleep=lambda s: None,
               config=ClientConfig(probe_count=0, carrier_poll=2.0),
               carrier_probe=lambda: next(readings), link_events=no_netlink)  # fmt: skip
    assert c.acquire(5.0) is not None
    tr.waits.clear()
    renewed: list[Lease] = []
    c.run_forever(lambda _: None, lambda _: None, lambda: bool(renewed), renewed.append,
                  wake_fd=STOP_FD)  # fmt: skip
    assert tr.waits[0] == (2.0, (STOP_FD,))
    assert len(renewed) == 1 and tr.sent[-1].server_id is None  # the flap's INIT-REBOOT


def test_stop_fd_readable_ends_the_loop_without_waiting_for_t1() -> None:
    c, tr, link = client()
    stop: list[int] = []
    tr.wake = lambda: stop.append(1)  # SIGTERM's handler sets the Waker while we sleep
    c.run_forever(lambda _: None, lambda _: None, lambda: bool(stop), wake_fd=STOP_FD)
    assert len(tr.waits) == 1 and c.clock() == 1000.0 and link.closed
