"""The daemon's side of chain mode: follow a distro init into the real root.

In chain mode PID 1 execs a distro's /init, which tells mosnet nothing. An
initramfs-tools init mounts a fresh tmpfs on /run (hiding /run/mosnet), moves
it into the real root (``mount --move /run $rootmnt/run``) and switches root
with its own run-init. The daemon therefore keeps a descriptor of mosnet's
/run/mosnet (opened by PID 1 before the fork, so it is the right one) and
watches the mount table: polling /proc/self/mountinfo wakes on every mount
change, with a slow tick as a safety net.

* When PID 1's /run is another filesystem than mosnet's, /run/mosnet is bound
  into it, so it travels into the real root with the distro's move.
* When PID 1's root changes, the daemon chroots there (via /proc/1/root) and
  binds /run/mosnet again if the first bind was missed.

A distro init that moves mosnet's own /run (no fresh tmpfs) needs no bind:
the checks compare device and inode, not paths.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mosnet.base import log

MS_BIND = 4096
PROC_ROOT = "/proc/1/root"
MOUNTINFO = "/proc/self/mountinfo"
TICK_MS = 1000

_log = log.get("daemon.chain")


@dataclass
class Follow:
    """What the follower knows and has done; ``events`` go to state.json."""

    run_fd: int  # O_PATH descriptor of mosnet's /run/mosnet
    root: tuple[int, int]  # (st_dev, st_ino) of the initramfs root
    proc_root: str = PROC_ROOT
    events: list[str] = field(default_factory=list)
    failures: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)

    def note(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:.3f}s {what}")
        _log.info("chain: %s", what)


def _ident(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def bind(source_fd: int, target: str) -> None:
    """mount --bind of an open directory onto ``target``; raises OSError."""
    libc = ctypes.CDLL(None, use_errno=True)
    src = f"/proc/self/fd/{source_fd}".encode()
    if libc.mount(src, target.encode(), None, MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def attach_run(f: Follow, run: str) -> bool:
    """Make ``<run>/mosnet`` mosnet's directory; True when it is (bound or already)."""
    ours = _ident(os.fstat(f.run_fd))
    target = os.path.join(run, "mosnet")
    try:
        if _ident(os.stat(target)) == ours:
            return True
    except FileNotFoundError:
        os.mkdir(target, 0o755)
    bind(f.run_fd, target)
    return _ident(os.stat(target)) == ours


def fresh_run(f: Follow) -> bool:
    """True when PID 1's /run is not mosnet's tmpfs (the distro mounted its own)."""
    try:
        return os.stat(os.path.join(f.proc_root, "run")).st_dev != os.fstat(f.run_fd).st_dev
    except OSError:
        return False


def root_changed(f: Follow) -> bool:
    try:
        return _ident(os.stat(f.proc_root)) != f.root
    except OSError:
        return False


def enter_root(f: Follow) -> None:
    """chroot into PID 1's root; raises OSError."""
    fd = os.open(f.proc_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(fd)
        os.chroot(".")
        os.chdir("/")
    finally:
        os.close(fd)


def _try_attach(f: Follow, run: str, what: str) -> bool:
    """attach_run with one log line per outcome (a failure repeats every tick)."""
    try:
        ok = attach_run(f, run)
        detail = what if ok else f"{what}: still not mosnet's directory"
    except OSError as exc:
        ok, detail = False, f"{what}: {exc.strerror or exc}"
    if ok or detail not in f.failures:
        f.note(detail)
    if not ok:
        f.failures.add(detail)
    return ok


def step(f: Follow, attached: bool) -> tuple[bool, bool]:
    """One look at PID 1; returns (attached, done). Never raises.

    ``done`` is also true when entering the root failed: the daemon then
    keeps serving from the initramfs, which is all it can do.
    """
    if not attached and fresh_run(f):
        attached = _try_attach(
            f, os.path.join(f.proc_root, "run"), "bound /run/mosnet into the distro's /run"
        )
    if not root_changed(f):
        return attached, False
    try:
        enter_root(f)
    except OSError as exc:
        f.note(f"cannot enter PID 1's root: {exc.strerror or exc}")
        return attached, True
    f.note("followed PID 1 into the real root")
    return _try_attach(f, "/run", "/run/mosnet in the real root is mosnet's"), True


def follow(f: Follow, entered: Callable[[Follow], None], tick_ms: int = TICK_MS) -> None:
    """Block until PID 1 left the initramfs and we followed; then call ``entered``."""
    poller = select.poll()
    with contextlib.ExitStack() as stack:
        try:
            mounts = stack.enter_context(open(MOUNTINFO, "rb"))  # noqa: SIM115
            poller.register(mounts, select.POLLPRI | select.POLLERR)
        except OSError as exc:
            _log.warning("chain: cannot watch %s (%s); ticking only", MOUNTINFO, exc)
        attached = False
        while True:
            attached, done = step(f, attached)
            if done:
                break
            poller.poll(tick_ms)
    entered(f)
