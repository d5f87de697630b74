"""One logger for PID 1, the daemon and the CLI.

Lines go to /dev/kmsg as ``<prio>mosnet: ...`` (so they land in dmesg and
survive switch_root in the journal) and to the console. A console that blocks
never stalls boot: writes are non-blocking and dropped on EAGAIN.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator

PREFIX = "mosnet"
_KMSG_PRIO = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def uptime() -> float:
    """Seconds since boot (CLOCK_BOOTTIME), the clock dmesg uses."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class _FdHandler(logging.Handler):
    """Write formatted records to a raw fd without ever blocking or raising."""

    def __init__(self, fd: int, kmsg: bool) -> None:
        super().__init__()
        self.fd = fd
        self.kmsg = kmsg

    def text(self, record: logging.LogRecord) -> str:
        """The formatted line; a record with bad arguments still shows its message."""
        try:
            return self.format(record)
        except Exception:  # noqa: BLE001 - a log call must never break the boot
            try:
                return f"{record.msg} (unformattable arguments {record.args!r})"
            except Exception:  # noqa: BLE001
                return "(unprintable log record)"

    def write(self, line: str, limit: int) -> None:
        """One line, cut at ``limit`` bytes on a character boundary, newline kept."""
        # backslashreplace: a stray surrogate shows as \udcNN instead of "?"
        data = line.encode("utf-8", "backslashreplace")
        if len(data) > limit:
            data = data[: limit - 4].decode("utf-8", "ignore").encode() + "…\n".encode()
        with contextlib.suppress(OSError):
            os.write(self.fd, data)

    def emit(self, record: logging.LogRecord) -> None:
        text = self.text(record)
        if self.kmsg:
            prio = _KMSG_PRIO.get(record.levelno, 6)
            self.write(f"<{prio}>{PREFIX}: {text}\n", 1000)
        else:
            self.write(f"[{uptime():9.3f}] {PREFIX}: {text}\n", 1000)


def _open_nonblocking(path: str) -> int | None:
    try:
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None


def setup(
    *,
    kmsg: bool = False,
    console: str | None = None,
    stderr: bool = True,
    level: int = logging.INFO,
) -> None:
    """Route the ``mosnet`` logger to kmsg and/or a console device or stderr.

    ``console=None`` writes to stderr unless ``stderr=False``. Calling it
    again replaces the handlers.
    """
    root = logging.getLogger(PREFIX)
    for handler in list(root.handlers):
        if isinstance(handler, _FileHandler):
            continue  # the boot log file stays (add_file owns it)
        root.removeHandler(handler)
        if isinstance(handler, _FdHandler) and handler.fd > 2:
            with contextlib.suppress(OSError):
                os.close(handler.fd)
    root.setLevel(level)
    root.propagate = False
    kmsg_fd = _open_nonblocking("/dev/kmsg") if kmsg else None
    if kmsg_fd is not None:
        root.addHandler(_FdHandler(kmsg_fd, kmsg=True))
    out_fd = _open_nonblocking(console) if console else None
    # Never silent: without kmsg and console, stderr is the last resort.
    want_stderr = stderr and console is None or kmsg_fd is None
    if out_fd is None and want_stderr:
        out_fd = os.dup(sys.stderr.fileno()) if _stderr_ok() else None
    if out_fd is not None:
        root.addHandler(_FdHandler(out_fd, kmsg=False))


def add_file(path: str) -> None:
    """Also append every line to ``path`` (plain text, uptime-stamped).

    Forked processes (the daemon) inherit the handler and keep appending.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    root = logging.getLogger(PREFIX)
    for handler in list(root.handlers):
        if isinstance(handler, _FileHandler):
            root.removeHandler(handler)
            with contextlib.suppress(OSError):
                os.close(handler.fd)
    root.addHandler(_FileHandler(fd))


class _FileHandler(_FdHandler):
    """The boot log file: time-stamped like the console, with the level."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd, kmsg=False)

    def emit(self, record: logging.LogRecord) -> None:
        text = self.text(record)
        self.write(f"[{uptime():9.3f}] {record.levelname.lower():7} {text}\n", 2000)


def _stderr_ok() -> bool:
    try:
        os.fstat(sys.stderr.fileno())
        return True
    except (OSError, ValueError, AttributeError):
        return False


def get(name: str) -> logging.Logger:
    """A child of the ``mosnet`` logger, e.g. ``get("init.switchroot")``."""
    return logging.getLogger(f"{PREFIX}.{name}")


@contextlib.contextmanager
def step(
    logger: logging.Logger, what: str, timings: dict[str, float] | None = None
) -> Iterator[None]:
    """Log the start and the duration of one boot phase; record it in ``timings``."""
    start = time.monotonic()
    logger.info("%s ... (uptime %.3f s)", what, uptime())
    try:
        yield
    except BaseException:
        logger.error("%s failed after %.0f ms", what, (time.monotonic() - start) * 1000)
        raise
    elapsed = time.monotonic() - start
    if timings is not None:
        timings[what] = elapsed
    logger.info("%s done in %.0f ms", what, elapsed * 1000)
