"""The API filesystems PID 1 mounts before anything else."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from init import syscalls as sc


@dataclass(frozen=True)
class ApiMount:
    source: str
    target: str
    fstype: str
    flags: int
    data: str | None = None


# Order matters: /dev/pts lives inside /dev. They move into the real root at
# switch_root, so the real system finds them already mounted.
API_MOUNTS = (
    ApiMount("proc", "/proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC),
    ApiMount("sysfs", "/sys", "sysfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC),
    ApiMount("devtmpfs", "/dev", "devtmpfs", sc.MS_NOSUID, "mode=0755"),
    ApiMount(
        "devpts", "/dev/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, "gid=5,mode=620,ptmxmode=000"
    ),
    ApiMount("tmpfs", "/run", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=0755"),
)


def _mounted(target: str) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == target for line in f)
    except OSError:
        return False


def mount_api(mounts: tuple[ApiMount, ...] = API_MOUNTS) -> list[str]:
    """Mount each one (already mounted is fine); return problems, never raise.

    The pre-init mounted /proc already; EBUSY means someone was first.
    """
    problems: list[str] = []
    for m in mounts:
        try:
            os.makedirs(m.target, 0o755, exist_ok=True)
            if not _mounted(m.target):
                sc.sys_mount(m.source, m.target, m.fstype, m.flags, m.data)
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                problems.append(f"mount {m.fstype} on {m.target}: {exc.strerror or exc}")
    return problems
