"""Follow PID 1 out of the initramfs into the real root, from any mosnet process.

The daemon and its watcher (and any replacement either forks) each move
their own root: a process left in the emptied initramfs would find none of
the real system. What wakes a :class:`Follower`:

* PID 1's hand-over pipe: PID 1 writes one byte and closes it once it has
  entered the new root (switch_root) or right before it execs a distro
  init (chain mode). Every process holds a copy of the read end, so every
  one sees the end of file, whoever read the byte.
* chain mode only: a change of the mount table (``/proc/self/mountinfo``
  polls with POLLPRI) and a slow tick, because a distro init switches root
  without a word; ``mosnet.daemon.chainfollow`` does the work there, including
  binding /run/mosnet into the distro's /run.

In switch_root mode only PID 1's root is compared (``/proc/1/root``), never
its /run: nothing is ever bound there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
from collections.abc import Iterator

from mosnet.base import log
from mosnet.daemon import chainfollow

MOUNT_EVENTS = select.POLLPRI | select.POLLERR
PIPE_EVENTS = select.POLLIN | select.POLLERR | select.POLLHUP
TICK = chainfollow.TICK_MS / 1000
LOCK = ".follow.lock"

_log = log.get("follow")


class Follower:
    """Where a process stands: still in the initramfs, or followed PID 1 out of it."""

    def __init__(self, notify_fd: int | None, run_fd: int, chain: bool) -> None:
        root = os.stat("/")
        self.state = chainfollow.Follow(run_fd, (root.st_dev, root.st_ino))
        self.notify_fd = notify_fd
        self.chain = chain
        self.attached = False
        self.done = notify_fd is None and not chain  # nobody will ever say a word
        self._mounts: int | None = None
        self.reopen()

    def reopen(self) -> None:
        """Own the mount-table watch; call in a freshly forked child (the poll state is
        per open file, so parent and child must not share one)."""
        if self._mounts is not None:
            with contextlib.suppress(OSError):
                os.close(self._mounts)
            self._mounts = None
        if self.chain and not self.done:
            try:
                self._mounts = os.open(chainfollow.MOUNTINFO, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                _log.warning("cannot watch %s (%s); ticking only", chainfollow.MOUNTINFO, exc)

    def fds(self) -> dict[int, int]:
        """What to poll (fd: events) until we followed."""
        if self.done:
            return {}
        out = {} if self.notify_fd is None else {self.notify_fd: PIPE_EVENTS}
        if self._mounts is not None:
            out[self._mounts] = MOUNT_EVENTS
        return out

    def timeout(self) -> float | None:
        return TICK if self.chain and not self.done else None

    def check(self, ready: set[int] | frozenset[int] = frozenset()) -> bool:
        """Look again (something in ``ready`` woke us, or a tick); True once we just
        entered the real root."""
        if self.done:
            return False
        spoke = self._read_notify(ready)
        if self.chain:
            with self._one_at_a_time():  # the daemon and its watcher: one bind, not two
                self.attached, finished = chainfollow.step(self.state, self.attached)
            return self._finish(finished, entered=finished)
        if not spoke:
            return False
        if not chainfollow.root_changed(self.state):
            _log.info("PID 1 stays in the initramfs: so do we")
            return self._finish(True, entered=False)
        try:
            chainfollow.enter_root(self.state)
        except OSError as exc:
            _log.error("cannot enter the real root: %s", exc)
            return self._finish(True, entered=False)
        return self._finish(True, entered=True)

    @contextlib.contextmanager
    def _one_at_a_time(self) -> Iterator[None]:
        """flock on a file in mosnet's /run/mosnet (best effort)."""
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(LOCK, flags, 0o600, dir_fd=self.state.run_fd)
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_notify(self, ready: set[int] | frozenset[int]) -> bool:
        """True once PID 1 spoke (its byte or the end of file)."""
        fd = self.notify_fd
        if fd is None or fd not in ready:
            return False
        try:
            data = os.read(fd, 1)
        except OSError:
            data = b""
        if not data:  # end of file: PID 1 closed its end; never poll it again
            with contextlib.suppress(OSError):
                os.close(fd)
            self.notify_fd = None
        return True

    def _finish(self, finished: bool, entered: bool) -> bool:
        if not finished:
            return False
        self.done = True
        for fd in (self.notify_fd, self._mounts):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.notify_fd = self._mounts = None
        return entered

    def run(self, stop_fd: int) -> bool:
        """Block (a thread's body) until followed or ``stop_fd`` is readable; True if entered."""
        poller_fds = {stop_fd: PIPE_EVENTS}
        entered = self.check() if self.chain else False
        while not self.done:
            poller = select.poll()
            for fd, events in {**poller_fds, **self.fds()}.items():
                poller.register(fd, events)
            timeout = self.timeout()
            ready = {fd for fd, _ in poller.poll(None if timeout is None else int(timeout * 1000))}
            if stop_fd in ready:
                return False
            entered = self.check(ready)
        return entered
