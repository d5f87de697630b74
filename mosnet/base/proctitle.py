"""Rename the running process as ``ps`` and systemd see it.

systemd's shutdown and switch-root kill sweeps spare processes whose
``argv[0][0] == '@'`` (docs/ROOT_STORAGE_DAEMONS.md). A daemon forked from
PID 1 inherits PID 1's argv, so we overwrite the argv area the kernel reports
in /proc/self/cmdline, and set comm for ``top``.
"""

from __future__ import annotations

import ctypes

PR_SET_NAME = 15


def _arg_area() -> tuple[int, int]:
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    # Fields after the ")" of comm start at field 3; arg_start/arg_end are 48/49.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[48 - 3]), int(fields[49 - 3])


def set_title(title: str) -> bool:
    """Overwrite argv in place; False if the area is too small or unreadable."""
    try:
        start, end = _arg_area()
    except (OSError, ValueError, IndexError):
        return False
    size = end - start
    data = title.encode()
    if size < 2 or len(data) >= size:
        return False
    # Zero the rest but keep the final NUL, else the kernel treats the area
    # as a setproctitle() string and may read past it.
    ctypes.memmove(start, data + b"\0" * (size - len(data)), size)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, title.lstrip("@").encode()[:15], 0, 0, 0)
    return True


def read_cmdline(pid: int | str = "self") -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
