"""Keep processes alive: whatever dies is started again, with a backoff (issue 13 §6).

A :class:`Watch` holds :class:`Slot` s, one per process it keeps alive. It
waits on a pidfd per process, so it notices a death at once whether or not
the process is its child (the daemon and the watcher each watch the other,
and the Open vSwitch daemons are children of PID 1). A child is reaped
through its pidfd; anything else is reaped by its parent. A process that
keeps dying young is started again after 1, 2, 4 ... 30 s; one that lived
``stable`` seconds starts the count over. It never gives up.

The loop is pure logic over injected :class:`Ops` (clock, pidfds, poll), so
tests drive it without processes; :data:`REAL` are the system calls.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mosnet.base import log, wake
from mosnet.base.errors import StartFailed

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STABLE = 10.0  # a process that lived this long resets the backoff
PR_SET_PDEATHSIG = 1
POLL_IN = select.POLLIN | select.POLLERR | select.POLLHUP

_log = log.get("supervise")


@dataclass
class Backoff:
    """1, 2, 4 ... ``maximum`` seconds while a process keeps dying young."""

    first: float = FIRST_BACKOFF
    maximum: float = MAX_BACKOFF
    stable: float = STABLE
    current: float = 0.0

    def after(self, lived: float) -> float:
        """The wait before starting again something that ran ``lived`` seconds."""
        if self.current == 0.0 or lived >= self.stable:
            self.current = self.first
        else:
            self.current = min(self.current * 2, self.maximum)
        return self.current


@dataclass
class Slot:
    """One process kept alive: how to start it and what we know of the current one."""

    name: str
    start: Callable[[], int]  # the new pid; raises OSError or StartFailed
    backoff: Backoff = field(default_factory=Backoff)
    pid: int | None = None
    fd: int | None = None  # pidfd of ``pid``
    started: float = 0.0
    due: float | None = None  # when to start it (again)
    restarts: int = 0


class Ops(Protocol):
    """The system calls the loop needs; tests inject a fake."""

    def clock(self) -> float: ...

    def pidfd(self, pid: int) -> int | None:
        """A pidfd of ``pid``, or None if it is gone."""
        ...

    def age(self, pid: int) -> float:
        """Seconds ``pid`` has been running (0 if unknown)."""
        ...

    def reap(self, fd: int) -> str | None:
        """How the process of ``fd`` ended, if it was our child (reaped now)."""
        ...

    def poll(self, fds: Mapping[int, int], timeout: float | None) -> set[int]: ...

    def close(self, fd: int) -> None: ...


def describe(si_code: int, si_status: int) -> str:
    """``waitid`` result as words: ``signal 9`` or ``exit status 1``."""
    if si_code in (os.CLD_KILLED, os.CLD_DUMPED):
        return f"signal {si_status}"
    return f"exit status {si_status}"


class _RealOps:
    def clock(self) -> float:
        return time.monotonic()

    def pidfd(self, pid: int) -> int | None:
        try:
            return os.pidfd_open(pid)
        except ProcessLookupError:
            return None

    def age(self, pid: int) -> float:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
        except (OSError, ValueError, IndexError):
            return 0.0
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)

    def reap(self, fd: int) -> str | None:
        try:
            res = os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
        except OSError:  # ECHILD: not ours, its parent reaps it (EINVAL: Linux 5.3)
            return None
        return None if res is None else describe(res.si_code, res.si_status)

    def poll(self, fds: Mapping[int, int], timeout: float | None) -> set[int]:
        poller = select.poll()
        for fd, events in fds.items():
            poller.register(fd, events)
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        return {fd for fd, _ in poller.poll(ms)}

    def close(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            os.close(fd)


REAL: Ops = _RealOps()


def pidfds_work() -> bool:
    """pidfd_open(2) exists (Linux >= 5.3); without it nothing can be watched."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


class Watch:
    """Start what is due, notice deaths, schedule restarts; one ``step`` at a time."""

    def __init__(
        self,
        slots: Sequence[Slot],
        ops: Ops = REAL,
        on_change: Callable[[Slot], None] = lambda slot: None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.slots = list(slots)
        self.ops = ops
        self.on_change = on_change  # after every start and every death
        self.stopping = stopping  # once true, nothing is started any more

    def adopt(self, slot: Slot, pid: int | None) -> None:
        """Watch an already running ``pid``; None or gone: start one at once."""
        fd = self.ops.pidfd(pid) if pid is not None else None
        if pid is None or fd is None:
            slot.pid, slot.fd, slot.due = None, None, self.ops.clock()
            return
        slot.pid, slot.fd, slot.due = pid, fd, None
        slot.started = self.ops.clock() - self.ops.age(pid)  # adopted: it may be old

    def step(
        self, extra: Mapping[int, int] | None = None, timeout: float | None = None
    ) -> set[int]:
        """Start what is due, then wait for a death, an ``extra`` fd or the next due time.

        ``extra`` maps fds to poll events; returns those of them that are ready.
        """
        extra = extra or {}
        now = self.ops.clock()
        for slot in self.slots:
            if slot.due is not None and slot.due <= now:
                self._start(slot)
        wait = self._until_due(timeout)
        fds = {s.fd: POLL_IN for s in self.slots if s.fd is not None}
        ready = self.ops.poll({**fds, **extra}, wait)
        for slot in self.slots:
            if slot.fd is not None and slot.fd in ready:
                self._ended(slot)
        return {fd for fd in ready if fd in extra}

    def close(self) -> None:
        for slot in self.slots:
            if slot.fd is not None:
                self.ops.close(slot.fd)
                slot.fd = None

    def _until_due(self, timeout: float | None) -> float | None:
        now = self.ops.clock()
        waits = [max(0.0, s.due - now) for s in self.slots if s.due is not None]
        if timeout is not None:
            waits.append(timeout)
        return min(waits) if waits else None

    def _start(self, slot: Slot) -> None:
        if self.stopping():
            slot.due = None
            return
        try:
            pid = slot.start()
        except (OSError, StartFailed) as exc:
            delay = slot.backoff.after(0.0)
            slot.due = self.ops.clock() + delay
            _log.error("cannot start %s: %s; trying again in %.0f s", slot.name, exc, delay)
            return
        self.adopt(slot, pid)
        if slot.fd is None:
            _log.warning("%s (pid %d) ended before it could be watched", slot.name, pid)
        else:
            _log.info("%s started (pid %d)", slot.name, pid)
        self.on_change(slot)

    def _ended(self, slot: Slot) -> None:
        assert slot.fd is not None
        how = self.ops.reap(slot.fd) or "ended"
        self.ops.close(slot.fd)
        now = self.ops.clock()
        lived = now - slot.started
        if self.stopping():  # asked to stop: an end, not a death to make up for
            _log.info("%s (pid %s) %s", slot.name, slot.pid, how)
            slot.pid, slot.fd, slot.due = None, None, None
            return
        delay = slot.backoff.after(lived)
        _log.warning("%s (pid %s) %s after %.1f s; starting it again in %.0f s",
                     slot.name, slot.pid, how, lived, delay)  # fmt: skip
        slot.pid, slot.fd, slot.due = None, None, now + delay
        slot.restarts += 1
        self.on_change(slot)


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """In a fresh child: get ``sig`` when the forking thread ends (PR_SET_PDEATHSIG).

    If the parent is already gone (we were reparented before the call), exit
    at once: an orphan must never run next to its replacement.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def stop_on_sigterm(stop: wake.Waker) -> None:
    """SIGTERM sets ``stop``; the console's and job-control signals are ignored."""
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # children are waited for by pid or pidfd
