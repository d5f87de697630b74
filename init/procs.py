"""Orphans of PID 1: reap them without taking a helper's exit status.

As PID 1 we inherit every orphan and must reap it. Helpers are started by
``mosnet.base.children``, which protects each from this reaper while a
``Popen`` waits for it; ``reap_orphans`` reaps only the exited children
outside that protected set, so a failing helper never looks successful.
Every child of PID 1 must be started through ``children.run`` or
``children.spawn``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from mosnet.base import children
from mosnet.base import log as mlog

_log = mlog.get("init.procs")


@dataclass(frozen=True)
class Reaped:
    pid: int
    exitcode: int  # like Popen.returncode: negative means killed by that signal


def _stat_of(pid: str) -> tuple[int, str] | None:
    """(ppid, state) from /proc/<pid>/stat; comm may hold spaces and ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) < 2:
        return None
    return int(fields[1]), fields[0].decode("ascii", "replace")


def zombie_children() -> list[int] | None:
    """Our zombie children per /proc, or None if /proc is not usable."""
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    zombies = []
    for name in names:
        if name.isdigit():
            info = _stat_of(name)
            if info is not None and info[0] == me and info[1] == "Z":
                zombies.append(int(name))
    return zombies


def _peek() -> int | None:
    """Pid of one exited child without reaping it (waitid WNOWAIT)."""
    try:
        res = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    return None if res is None else res.si_pid


def _reap(pid: int) -> Reaped | None:
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if got == 0:
        return None
    return Reaped(got, os.waitstatus_to_exitcode(status))


def _candidates(owned: frozenset[int]) -> Iterator[int]:
    """Exited children not in ``owned``. Cheap peek first; /proc only if needed."""
    while True:
        pid = _peek()
        if pid is None:
            return
        if pid not in owned:
            yield pid
            continue
        # The peek is stuck on a protected child; find the others via /proc.
        for zombie in zombie_children() or []:
            if zombie not in owned:
                yield zombie
        return


def reap_orphans() -> tuple[Reaped, ...]:
    """Reap every exited child that no ``Popen`` is waiting for. Never blocks.

    Call it from safe points (main loop, between phases), not from a signal
    handler.
    """
    reaped = []
    with children.owned() as owned:
        for pid in _candidates(owned):
            got = _reap(pid)
            if got is None:
                break  # should not happen; never spin
            reaped.append(got)
    for r in reaped:
        _log.debug("reaped orphan %d (exit %d)", r.pid, r.exitcode)
    return tuple(reaped)
