"""mosnet-init: PID 1 of the mosnet initramfs (compiled by Nuitka).

The boot is imported under a guard: a module missing from the image, an
exception or a MemoryError at import time, or ``boot.main`` ever returning
must not end PID 1 (the kernel would panic). The guard cannot count on
``init.pid1`` or ``mosnet.base.log``, which may be what failed to import, so it
only uses the interpreter's own modules: it writes to /dev/kmsg (which the
kernel echoes on the console; the console itself if kmsg fails) with
os.write and keeps a shell on the console, respawned ever more slowly while
it dies at once, reaping every child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from types import TracebackType
from typing import NoReturn

RESCUE_SHELL = "/bin/sh"
FIRST_DELAY = 1.0  # s before the first respawn; doubles while shells die at once
MAX_DELAY = 30.0
STEADY = 10.0  # s: a shell that lived this long resets the delay
MAX_FRAMES = 12
_AS_PID1 = os.getpid() == 1  # the forked shell child logs as PID 1 does


def _to_kmsg(line: bytes) -> bool:
    if not _AS_PID1:  # a run by hand stays out of the kernel log: stderr only
        return False
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        fd = os.open("/dev/kmsg", flags)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        return False
    return True


def _say(text: str, prio: int = 2) -> None:
    """One line to /dev/kmsg (the kernel echoes it on the console), else to fd 2."""
    data = text.encode("utf-8", "backslashreplace")[:900]
    if not _to_kmsg(b"<%d>mosnet-init: %s\n" % (prio, data)):
        with contextlib.suppress(OSError):
            os.write(2, b"mosnet-init: %s\n" % data)


def _frames(tb: TracebackType | None) -> list[str]:
    """The traceback without the traceback module (it may be what is broken)."""
    lines = []
    while tb is not None:
        code = tb.tb_frame.f_code
        lines.append(f"  at {code.co_filename}:{tb.tb_lineno} in {code.co_name}")
        tb = tb.tb_next
    return lines[-MAX_FRAMES:]


def _report(exc: BaseException) -> None:
    try:
        _say(f"boot failed to start: {type(exc).__name__}: {exc}")
        for line in _frames(exc.__traceback__):
            _say(line)
    except BaseException:  # even formatting may fail (MemoryError)
        with contextlib.suppress(BaseException):
            os.write(2, b"mosnet-init: boot failed to start\n")


def _exec_shell(shell: str) -> NoReturn:
    """In the forked child: a session of its own on the console, then the shell."""
    try:
        for sig in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)  # Python's own settings must not leak
        try:
            os.login_tty(0)  # setsid + the console as controlling tty, if it can be
        except OSError:  # no tty there: a session of its own all the same
            with contextlib.suppress(OSError):
                os.setsid()
        os.execv(shell, [shell])
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            _say(f"cannot exec {shell}: {exc}")
    os._exit(127)


def _wait_for(pid: int) -> int:
    """Reap every child until ``pid`` is gone; its wait status (-1 if lost)."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return -1
        if got == pid:
            return status


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _shell_once(shell: str) -> None:
    try:
        pid = os.fork()
        if pid == 0:
            _exec_shell(shell)
        _say(f"rescue shell {shell} on the console (pid {pid})")
        status = _wait_for(pid)
        _say(f"rescue shell exited (wait status {status:#x}); respawning", 4)
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            _say(f"rescue shell: {exc!r}")


def rescue_forever(shell: str = RESCUE_SHELL) -> NoReturn:
    """PID 1 with nothing else left: a respawned shell; never returns."""
    with contextlib.suppress(BaseException):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # no KeyboardInterrupt from here on
    delay = FIRST_DELAY
    while True:
        started = time.monotonic()
        _shell_once(shell)
        with contextlib.suppress(BaseException):
            if time.monotonic() - started >= STEADY:
                delay = FIRST_DELAY
            time.sleep(delay)  # a shell that dies at once must not spin
            _reap()
            delay = min(delay * 2, MAX_DELAY)


def main() -> NoReturn:
    try:
        from init import boot

        run: Callable[[], object] = boot.main  # NoReturn by its type; PID 1 trusts no type
        run()
        _say("boot.main returned")
    except BaseException as exc:  # PID 1 must not unwind, whatever failed
        _report(exc)
    if not _AS_PID1:  # run by hand: an exit code is the right answer
        os._exit(1)
    rescue_forever()


if __name__ == "__main__":
    main()
