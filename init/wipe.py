"""Empty the initramfs before switch_root: everything on its device, nothing else.

The wipe walks directory fds and never crosses a mount point or follows a
symlink, so a mistake in the plan cannot reach the new root or any other
mounted filesystem.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from mosnet.base import log as mlog

_log = mlog.get("init.switchroot")


@dataclass(frozen=True)
class WipeReport:
    files: int
    dirs: int
    skipped_mounts: tuple[str, ...]
    errors: tuple[str, ...]


class _Wipe:
    """Mutable tallies for one wipe; frozen into a WipeReport at the end."""

    def __init__(self, root_dev: int) -> None:
        self.root_dev = root_dev
        self.files = 0
        self.dirs = 0
        self.skipped: list[str] = []
        self.errors: list[str] = []

    def error(self, path: str, exc: OSError) -> None:
        self.errors.append(f"{path}: {exc.strerror or exc}")
        _log.warning("wipe: cannot remove %s: %s", path, exc.strerror or exc)


def _wipe_entry(w: _Wipe, dir_fd: int, name: str, path: str) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as e:
        w.error(path, e)
        return
    if st.st_dev != w.root_dev:
        w.skipped.append(path)  # a mount point (the new root among them): hands off
        return
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.unlink(name, dir_fd=dir_fd)
            w.files += 1
        except OSError as e:
            w.error(path, e)
        return
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError as e:
        w.error(path, e)
        return
    try:
        if os.fstat(fd).st_dev != w.root_dev:  # it changed under us: leave it
            w.skipped.append(path)
            return
        _wipe_dir(w, fd, path)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=dir_fd)
        w.dirs += 1
    except OSError as e:
        w.error(path, e)


def _wipe_dir(w: _Wipe, dir_fd: int, path: str) -> None:
    try:
        with os.scandir(dir_fd) as it:
            names = [entry.name for entry in it]
    except OSError as e:
        w.error(path, e)
        return
    for name in names:
        _wipe_entry(w, dir_fd, name, f"{path.rstrip('/')}/{name}")


def wipe_tree(dir_fd: int, root_dev: int, *, path: str = "/") -> WipeReport:
    """Delete everything below ``dir_fd`` that lives on device ``root_dev``.

    Never follows symlinks (they are unlinked) and never enters an entry on
    another device (a mount point). Best effort: failures are counted and
    logged, never raised. ``path`` only names entries in the report.
    """
    w = _Wipe(root_dev)
    _wipe_dir(w, dir_fd, path)
    return WipeReport(w.files, w.dirs, tuple(w.skipped), tuple(w.errors))
