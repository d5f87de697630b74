"""Child processes for PID 1: run helpers and reap orphans without mixing them up.

As PID 1 we inherit every orphan and must reap it, but a blanket
``waitpid(-1)`` would also steal the exit status of a helper that
``subprocess.Popen`` is waiting for: ``Popen.wait()`` then sees ECHILD and
reports 0, so a failing helper looks successful. Children we spawn are
therefore registered in a protected set for as long as ``Popen`` owns them,
and ``reap_orphans`` only reaps zombies outside that set.

Every child of PID 1 must be started through ``run`` or ``spawn``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mosnet import log as mlog
from mosnet.errors import MosnetError

_log = mlog.get("init.procs")

# Held while forking + registering and while reaping, so a child can never be
# reaped in the window between fork and registration.
_lock = threading.RLock()
_protected: set[int] = set()


class RunTimeout(MosnetError):
    """A helper ran past its timeout; it and its process group were killed."""

    def __init__(self, argv: Sequence[str], timeout: float, stdout: bytes, stderr: bytes) -> None:
        self.argv = list(argv)
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"{argv[0]}: killed after {timeout:g} s")


@dataclass(frozen=True)
class Reaped:
    pid: int
    exitcode: int  # like Popen.returncode: negative means killed by that signal


def spawn(argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a protected child; ``release`` it once it has been waited for."""
    if not argv:
        raise ValueError("empty argv")
    popen_kwargs["shell"] = False
    popen_kwargs.setdefault("close_fds", True)
    with _lock:
        proc = subprocess.Popen(list(argv), **popen_kwargs)
        _protected.add(proc.pid)
    return proc


def release(proc: subprocess.Popen[bytes]) -> None:
    """Stop protecting ``proc``; reap it first if it is still unwaited."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        proc.wait(timeout=0)
    with _lock:
        _protected.discard(proc.pid)


def protected() -> frozenset[int]:
    with _lock:
        return frozenset(_protected)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)  # the helper's own children too
    with contextlib.suppress(OSError):
        proc.kill()


def _collect_after_kill(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    try:
        out, err = proc.communicate(timeout=2.0)
        return out or b"", err or b""
    except subprocess.TimeoutExpired:
        # Someone outside the group still holds our pipes; stop reading.
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return b"", b""


def run(
    argv: Sequence[str],
    timeout: float,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    capture: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run a helper to completion and return its real exit status.

    Never a shell, stdin is /dev/null, and the helper gets its own process
    group so a timeout kills everything it started. Raises ``RunTimeout`` on
    timeout and ``OSError`` if it cannot be started.
    """
    pipe = subprocess.PIPE if capture else None
    proc = spawn(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=pipe,
        stderr=pipe,
        env=None if env is None else dict(env),
        cwd=cwd,
        process_group=0,
    )
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = _collect_after_kill(proc)
            _log.warning("%s: timed out after %g s, killed", argv[0], timeout)
            raise RunTimeout(argv, timeout, out, err) from None
        except BaseException:
            _kill_group(proc)
            raise
    finally:
        release(proc)
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


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


def _candidates() -> Iterator[int]:
    """Unprotected exited children. Cheap peek first; /proc only if needed."""
    while True:
        pid = _peek()
        if pid is None:
            return
        if pid not in _protected:
            yield pid
            continue
        # The peek is stuck on a protected child; find the others via /proc.
        for zombie in zombie_children() or []:
            if zombie not in _protected:
                yield zombie
        return


def reap_orphans() -> tuple[Reaped, ...]:
    """Reap every exited child that no ``Popen`` is waiting for. Never blocks.

    Call it from safe points (main loop, between phases), not from a signal
    handler.
    """
    reaped = []
    with _lock:
        for pid in _candidates():
            got = _reap(pid)
            if got is None:
                break  # should not happen; never spin
            reaped.append(got)
    for r in reaped:
        _log.debug("reaped orphan %d (exit %d)", r.pid, r.exitcode)
    return tuple(reaped)
