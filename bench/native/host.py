"""Native boot, host helpers: /dev/kmsg, the global sysctls PID 1 writes, processes, mounts."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.native.phases import parse_kmsg

# Global (not namespaced) settings PID 1 writes; put back after every run.
SYSCTLS = (
    "/proc/sys/kernel/ctrl-alt-del",
    "/proc/sys/kernel/printk_devkmsg",
    "/proc/sys/kernel/modprobe",
)


def run_checked(argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kw)


class Kmsg:
    """Reads /dev/kmsg records written after ``mark`` and maps their clock."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)

    def mark(self) -> int:
        """Skip to the end; write a sync line; return its CLOCK_MONOTONIC (ns)."""
        os.lseek(self.fd, 0, os.SEEK_END)
        w = os.open("/dev/kmsg", os.O_WRONLY)
        try:
            t0 = time.monotonic_ns()
            os.write(w, b"<7>bn7-bench: clock sync\n")
            t1 = time.monotonic_ns()
        finally:
            os.close(w)
        return (t0 + t1) // 2

    def read(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten meanwhile: go on
                    continue
                raise
            parsed = parse_kmsg(rec)
            if parsed is not None:
                out.append(parsed)

    def records_on_monotonic(self, sync_ns: int) -> list[tuple[int, str]]:
        """All records since ``mark``, their times moved onto CLOCK_MONOTONIC."""
        recs = self.read()
        sync = next((t for t, m in recs if m == "bn7-bench: clock sync"), None)
        offset = 0 if sync is None else sync - sync_ns
        return [(t - offset, m) for t, m in recs]

    def close(self) -> None:
        os.close(self.fd)


def save_sysctls() -> dict[str, str]:
    saved = {}
    for path in SYSCTLS:
        with contextlib.suppress(OSError), open(path) as f:
            saved[path] = f.read()
    return saved


def restore_sysctls(saved: dict[str, str]) -> list[str]:
    """Write back what changed; the names of the settings that had to be restored."""
    changed = []
    for path, value in saved.items():
        try:
            with open(path) as f:
                if f.read() == value:
                    continue
            with open(path, "w") as f:
                f.write(value)
            changed.append(os.path.basename(path))
        except OSError:
            continue
    return changed


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float) -> str:
    """``proc``'s output until ``marker`` shows, it ends, or ``timeout`` passes."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    end = time.monotonic() + timeout
    while marker.encode() not in buf:
        left = end - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode("utf-8", "replace")


def umount(path: Path) -> None:
    if os.path.ismount(path):
        r = subprocess.run(["umount", str(path)], capture_output=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
