"""Replace a file so readers see the old or the new content, never half of it.

State files under /run/mosnet and resolv.conf are read by the real system
at any moment, and PID 1 may lose power mid-write. A full file system (ENOSPC,
EDQUOT), an I/O error or a short write must not leave a truncated file
behind either: every ``write()`` is checked, and on any failure before the
rename the temporary file is removed, the file at ``path`` is left exactly as
it was and ``OSError`` (naming ``path``) is raised for the caller to log.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

Writer = Callable[[int, memoryview], int]
Syncer = Callable[[int], None]


def write_all(fd: int, data: bytes, write: Writer = os.write) -> None:
    """Write every byte or raise: short writes are continued, no progress is an error."""
    view = memoryview(data)
    while view:
        n = write(fd, view)
        if n <= 0:  # a regular file only does this when it cannot take more
            raise OSError(errno.ENOSPC, f"write() stored nothing with {len(view)} bytes left")
        view = view[n:]


def _tmp_name(path: str) -> str:
    # pid and thread: the daemon's IPv4 and IPv6 threads both write resolv.conf.
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.tmp.{os.getpid()}.{threading.get_native_id()}")


def _fill(tmp: str, data: bytes, mode: int, write: Writer, fsync: Syncer) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(tmp, flags, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not narrow it
        write_all(fd, data, write)
        fsync(fd)  # a delayed write error (EIO, ENOSPC on some fs) shows up here
    finally:
        os.close(fd)


def _sync_dir(directory: str) -> None:
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_bytes(
    path: str,
    data: bytes,
    mode: int = 0o644,
    *,
    write: Writer = os.write,
    fsync: Syncer = os.fsync,
) -> None:
    """tmp file in the same directory + checked writes + fsync + rename(2) + fsync of the dir.

    rename(2) replaces a symlink at ``path`` instead of writing through it,
    and O_NOFOLLOW keeps a planted link at the tmp name from redirecting us.
    Only the directory fsync comes after the rename: if that fails, the new
    content is in place but may not survive a power loss, and OSError is
    raised all the same. ``write``/``fsync`` are seams for tests.
    """
    tmp = _tmp_name(path)
    try:
        _fill(tmp, data, mode, write, fsync)
        os.replace(tmp, path)
    except BaseException as exc:  # MemoryError too: never leave the tmp file
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # name the file the caller asked for, not the tmp
            raise OSError(exc.errno, exc.strerror or str(exc), path) from exc
        raise
    _sync_dir(os.path.dirname(os.path.abspath(path)))


def write_json(path: str, obj: Any) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
    write_bytes(path, json.dumps(obj, indent=1).encode())


def record_json(path: str, obj: Any, logger: logging.Logger) -> bool:
    """``write_json`` for a record whose loss is not fatal: False and a log line on failure.

    The previous file stays as it was (a full /run keeps the old lease file).
    """
    try:
        write_json(path, obj)
    except OSError as exc:
        logger.error("%s not written: %s", path, exc.strerror or exc)
        return False
    return True
