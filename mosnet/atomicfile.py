"""Replace a file so readers see the old or the new content, never half of it.

State files under /run/mosnet and resolv.conf are read by the real system
at any moment, and PID 1 may lose power mid-write.
"""

from __future__ import annotations

import json
import os
from typing import Any


def write_bytes(path: str, data: bytes, mode: int = 0o644) -> None:
    """tmp file in the same directory + fsync + rename(2) + fsync of the directory.

    rename(2) replaces a symlink at ``path`` instead of writing through it,
    and O_NOFOLLOW keeps a planted link at the tmp name from redirecting us.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp.{os.getpid()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(tmp, flags, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not narrow it
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_json(path: str, obj: Any) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
    write_bytes(path, json.dumps(obj, indent=1).encode())
