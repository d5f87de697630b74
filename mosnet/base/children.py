"""Child processes: the one way mosnet and init run helper programs, safe under PID 1.

``run`` starts a program from a list argv (never a shell), in a process group
of its own, feeds it optional stdin text (else /dev/null), and returns a
frozen ``Ran``: the exit status with stdout and stderr as text, or why it did
not run to its end (the binary is missing, it ran past its timeout and was
killed with its whole group, another OSError). It never raises for those and
logs nothing: what a failure means is the caller's to say.

Safe under PID 1: as init we inherit every orphan and must reap it, but a
blanket ``waitpid(-1)`` would also steal the exit status of a child that
``subprocess.Popen`` is waiting for: ``Popen.wait()`` then sees ECHILD and
reports 0, so a failing helper looks successful. Every child started here is
therefore registered in a protected set for as long as a ``Popen`` owns it,
and ``init.procs.reap_orphans`` reaps only zombies outside that set
(``owned``). Children that outlive one call (the rescue shell) use
``spawn`` and ``release``; no child of PID 1 starts any other way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Failure = Literal["missing", "timeout", "oserror"]

# Held while forking + registering and while reaping, so a child can never be
# reaped in the window between fork and registration.
_lock = threading.RLock()
_protected: set[int] = set()


@dataclass(frozen=True)
class Ran:
    """How a helper ended: its exit status and output, or why it did not finish."""

    argv: tuple[str, ...]
    returncode: int | None = None  # None: it did not run to its end, see ``failure``
    stdout: str = ""
    stderr: str = ""
    failure: Failure | None = None
    error: str = ""  # the failure as text: the OSError, or the timeout

    @property
    def ok(self) -> bool:
        return self.failure is None and self.returncode == 0

    @property
    def said(self) -> str:
        """What the helper said about itself: stderr, else stdout, stripped."""
        return (self.stderr or self.stdout).strip()


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
    """Pids of the children a ``Popen`` is waiting for right now."""
    with _lock:
        return frozenset(_protected)


@contextlib.contextmanager
def owned() -> Iterator[frozenset[int]]:
    """Hold off new children and give the protected pids: reap only others meanwhile."""
    with _lock:
        yield frozenset(_protected)


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    executable: str | None = None,
    cwd: str | None = None,
) -> Ran:
    """Run ``argv`` to its end (or ``timeout`` seconds); never raises for a failed run.

    ``stdin`` is UTF-8 text (bytes that were not, as surrogates, pass as they
    were); ``env`` replaces the environment (None: ours); ``executable`` is the
    program to start when it is not ``argv[0]`` (argv[0] is then its name);
    ``cwd`` must exist (a missing one would read as a missing program).
    """
    args = tuple(argv)
    # Before the fork: a str that will not encode must not leave a child behind.
    data = None if stdin is None else stdin.encode("utf-8", "surrogateescape")
    try:
        proc = spawn(
            args,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=None if env is None else dict(env),
            executable=executable,
            cwd=cwd,
            process_group=0,  # so a timeout kills whatever it started too
        )
    except FileNotFoundError as exc:
        return Ran(args, failure="missing", error=str(exc))
    except OSError as exc:
        return Ran(args, failure="oserror", error=str(exc))
    try:
        return _finish(proc, args, data, timeout)
    finally:
        release(proc)


def _finish(
    proc: subprocess.Popen[bytes], args: tuple[str, ...], data: bytes | None, timeout: float
) -> Ran:
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = _collect_after_kill(proc)
        why = str(subprocess.TimeoutExpired(list(args), timeout))
        return Ran(args, None, _text(out), _text(err), "timeout", why)
    except OSError as exc:
        _kill_group(proc)
        _collect_after_kill(proc)
        return Ran(args, failure="oserror", error=str(exc))
    except BaseException:
        _kill_group(proc)
        raise
    return Ran(args, proc.returncode, _text(out), _text(err))


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)  # the helper's own children too
    with contextlib.suppress(OSError):
        proc.kill()


def _collect_after_kill(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    try:
        out, err = proc.communicate(timeout=2.0)
        return out or b"", err or b""
    except (OSError, ValueError, subprocess.TimeoutExpired):
        # Someone outside the group still holds our pipes; stop reading.
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return b"", b""
