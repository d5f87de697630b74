"""Sleeping until there is something to do: a stop flag with a pollable fd.

The daemon's and the proxy's loops used to wake every 0.25-1 s only to ask
"should I stop?": under TCG each wake-up of a Python thread costs ~1 ms, and
they were most of the idle CPU. A :class:`Waker` is that flag as an eventfd:
``set()`` (from a SIGTERM handler or another thread) makes the fd readable
for good, so every loop that polls it next to its sockets returns at once and
no loop needs a timeout for stopping. ``wait_readable`` is the one poll call
the loops share.
"""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Iterable

_POLL_IN = select.POLLIN | select.POLLERR | select.POLLHUP


class Waker:
    """A one-way stop flag (like ``threading.Event``) that ``poll()`` sees."""

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._set = False

    def fileno(self) -> int:
        return self._fd

    def set(self) -> None:
        """Never read back: the fd stays readable, so it wakes every poller (threads too)."""
        self._set = True
        with contextlib.suppress(OSError):  # EAGAIN only at 2**64 - 2 writes
            os.eventfd_write(self._fd, 1)

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set (or ``timeout`` s); returns ``is_set()``."""
        if not self._set:
            wait_readable([self._fd], timeout)
        return self._set

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def wait_readable(fds: Iterable[int], timeout: float | None) -> set[int]:
    """The fds of ``fds`` that are readable (or in error) within ``timeout`` s (None: forever).

    A signal handler runs in between (PEP 475 retries with the time left), so
    a SIGTERM whose handler sets a :class:`Waker` in ``fds`` ends the wait.
    """
    poller = select.poll()
    for fd in fds:
        poller.register(fd, _POLL_IN)
    ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    return {fd for fd, _ in poller.poll(ms)}
