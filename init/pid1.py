"""PID 1 survival kit: signals, phase guards, idle, halt and emergency shell.

If PID 1 exits or dies the kernel panics. CPython turns SIGINT into
KeyboardInterrupt and lets SIGTERM/SIGHUP/... keep their default actions,
and any stray exception unwinds to the top level, so this module makes sure
none of that can end the process: signals are only recorded, phases run
under ``guard``, and the terminal states (``idle_forever``, ``halt``,
``emergency_shell``) never return.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import termios
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn, ParamSpec, TypeVar

from init import procs
from mosnet.base import children
from mosnet.base import log as mlog
from mosnet.base.errors import MosnetError

_log = mlog.get("init.pid1")

P = ParamSpec("P")
T = TypeVar("T")

CAD_PATH = "/proc/sys/kernel/ctrl-alt-del"
RECORDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGQUIT,
    signal.SIGPWR,
)
# <linux/reboot.h>; glibc's reboot() adds the magic numbers itself.
LINUX_REBOOT_CMD_HALT = 0xCDEF0123
LINUX_REBOOT_CMD_POWER_OFF = 0x4321FEDC
LINUX_REBOOT_CMD_CAD_OFF = 0x00000000
# A shell that keeps dying at once is respawned ever more slowly, so its log
# lines do not push the boot's own story out of the kernel ring buffer.
SHELL_STEADY = 10.0  # s: a shell that lived this long resets the delay
SHELL_MAX_DELAY = 30.0

_libc = ctypes.CDLL(None, use_errno=True)
_libc.reboot.argtypes = [ctypes.c_int]

# deque append/popleft are atomic, so the handler never needs a lock.
_pending: collections.deque[int] = collections.deque()
_child_exited = False
_ctrl_alt_del = False


def _record(signum: int, frame: FrameType | None) -> None:
    """Only remember the signal. Must never raise: that would unwind PID 1."""
    global _ctrl_alt_del
    _pending.append(signum)
    if signum == signal.SIGINT:
        _ctrl_alt_del = True


def _on_sigchld(signum: int, frame: FrameType | None) -> None:
    global _child_exited
    _child_exited = True


def _disable_cad_reboot(cad_path: str | None) -> None:
    """Make Ctrl-Alt-Del send us SIGINT instead of an instant hard reboot."""
    if cad_path is None:
        return
    try:
        with open(cad_path, "w", encoding="ascii") as f:
            f.write("0\n")
        return
    except OSError as e:
        err = e.strerror
    # /proc may not be mounted yet; reboot(CAD_OFF) sets the same switch.
    if os.getpid() == 1 and libc_reboot(LINUX_REBOOT_CMD_CAD_OFF) == 0:
        return
    _log.warning("cannot write %s (%s); Ctrl-Alt-Del may hard-reboot", cad_path, err)


def install_signal_handlers(*, cad_path: str | None = CAD_PATH) -> None:
    """Record the usual init signals, flag SIGCHLD and ignore SIGPIPE.

    ``cad_path=None`` leaves the (global, not namespaced) Ctrl-Alt-Del
    setting alone, which tests need.
    """
    _disable_cad_reboot(cad_path)
    for sig in RECORDED_SIGNALS:
        signal.signal(sig, _record)
    signal.signal(signal.SIGCHLD, _on_sigchld)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def pending_signals() -> tuple[int, ...]:
    """Signals received since the last call, oldest first; clears them."""
    got = []
    while True:
        try:
            got.append(_pending.popleft())
        except IndexError:
            return tuple(got)


def child_exited() -> bool:
    """True if SIGCHLD arrived since the last call; clears the flag."""
    global _child_exited
    flag, _child_exited = _child_exited, False
    return flag


def reboot_requested() -> bool:
    """True once Ctrl-Alt-Del (SIGINT) arrived; acted on after early boot."""
    return _ctrl_alt_del


def log_pending_signals() -> tuple[int, ...]:
    sigs = pending_signals()
    for sig in sigs:
        if sig == signal.SIGINT:
            _log.warning("ctrl-alt-del: ignored during early boot")
        else:
            _log.info("received %s; ignored", signal.Signals(sig).name)
    return sigs


def guard(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | BaseException:
    """Run one phase; any exception, even SystemExit, comes back as a value."""
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:  # PID 1 must never unwind
        with contextlib.suppress(BaseException):
            name = getattr(fn, "__qualname__", repr(fn))
            # Our own errors explain themselves; anything else needs its traceback.
            trace = None if isinstance(exc, MosnetError) else exc
            _log.error("%s failed: %s", name, exc if trace is None else repr(exc), exc_info=trace)
        return exc


def _idle_tick(tick: float) -> None:
    time.sleep(tick)
    procs.reap_orphans()
    log_pending_signals()


def idle_forever(tick: float = 5.0) -> NoReturn:
    """The state after a fatal failure: sleep, reap, log signals; forever."""
    _log.critical("idling forever (reaping orphans every %g s)", tick)
    while True:
        try:
            _idle_tick(tick)
        except BaseException as exc:  # nothing may end this loop
            with contextlib.suppress(BaseException):
                _log.error("idle loop: %r", exc)


def libc_reboot(cmd: int) -> int:
    """reboot(2) via libc; returns -1 with errno set if not allowed."""
    return int(_libc.reboot(ctypes.c_int(cmd).value))


def _int32(cmd: int) -> int:
    return ctypes.c_int(cmd).value  # the commands do not fit a signed int


def halt(
    reason: str,
    *,
    reboot: Callable[[int], int] = libc_reboot,
    cmd: int = LINUX_REBOOT_CMD_HALT,
    idle: Callable[[], NoReturn] = idle_forever,
) -> NoReturn:
    """Sync and halt the machine; if the kernel refuses, idle forever.

    Never exits: PID 1 exiting would panic the kernel.
    """
    with contextlib.suppress(BaseException):
        _log.critical("halting: %s", reason)
        os.sync()
        ret = reboot(_int32(cmd))
        _log.critical(
            "reboot(%#x) returned %d (%s); idling instead",
            cmd,
            ret,
            os.strerror(ctypes.get_errno()),
        )
    idle()


def real_console(console: str = "/dev/console") -> str:
    """/dev/console cannot be a controlling tty; find the tty behind it."""
    if console != "/dev/console":
        return console
    try:
        with open("/sys/class/tty/console/active", encoding="ascii") as f:
            name = f.read().split()[-1]
        if name == "tty0":  # the foreground virtual console
            with open("/sys/class/tty/tty0/active", encoding="ascii") as f:
                name = f.read().split()[-1]
    except (OSError, IndexError):
        return console
    path = f"/dev/{name}"
    return path if os.path.exists(path) else console


def _take_ctty() -> None:
    """preexec_fn, after setsid: make stdin (the console) our controlling tty."""
    with contextlib.suppress(OSError):
        fcntl.ioctl(0, termios.TIOCSCTTY, 1)


def _spawn_shell(shell: str, console: str) -> subprocess.Popen[bytes]:
    tty = real_console(console)
    fd = os.open(tty, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        return children.spawn(
            [shell],
            stdin=fd,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
            preexec_fn=_take_ctty,
            env={"PATH": "/sbin:/bin:/usr/sbin:/usr/bin", "TERM": "linux", "HOME": "/"},
        )
    finally:
        os.close(fd)


def _shell_session(shell: str, console: str, tick: float) -> None:
    proc = _spawn_shell(shell, console)
    _log.critical("emergency shell %s on %s (pid %d)", shell, console, proc.pid)
    try:
        while proc.poll() is None:
            time.sleep(tick)
            procs.reap_orphans()
            log_pending_signals()
    finally:
        children.release(proc)
    _log.warning("emergency shell exited; respawning (status %s)", proc.returncode)


def emergency_shell(
    shell: str = "/bin/sh",
    console: str = "/dev/console",
    *,
    tick: float = 0.5,
    respawn_delay: float = 1.0,
) -> NoReturn:
    """A shell on the console, respawned whenever it exits. Never returns.

    The delay before a respawn doubles (up to SHELL_MAX_DELAY) while shells
    die within SHELL_STEADY seconds, and starts again at ``respawn_delay``.
    """
    delay = respawn_delay
    while True:
        started = time.monotonic()
        try:
            _shell_session(shell, console, tick)
        except BaseException as exc:  # e.g. the console or shell is missing
            with contextlib.suppress(BaseException):
                _log.error("emergency shell: %r", exc)
        if time.monotonic() - started >= SHELL_STEADY:
            delay = respawn_delay
        # Also keeps a shell that dies at once from spinning the CPU.
        with contextlib.suppress(BaseException):
            time.sleep(delay)
            procs.reap_orphans()
        delay = min(delay * 2, max(SHELL_MAX_DELAY, respawn_delay))
