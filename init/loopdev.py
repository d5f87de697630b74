"""Attach a file to a free loop device with ioctls (no losetup needed).

LOOP_CONFIGURE (Linux >= 5.8) sets the backing file and the flags in one
call; older kernels get LOOP_SET_FD then LOOP_SET_STATUS64. The device is
read-only and autoclear: it detaches itself when its last user (the mount)
goes away, so an unmount is the whole cleanup.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

LOOP_CONTROL = "/dev/loop-control"
LOOP_SET_FD = 0x4C00
LOOP_CLR_FD = 0x4C01
LOOP_SET_STATUS64 = 0x4C04
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_GET_FREE = 0x4C82
LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4
_INFO64 = struct.Struct("=5Q4I64s64s32s2Q")  # struct loop_info64, 232 bytes
_CONFIG = struct.Struct(f"=2I{_INFO64.size}s8Q")  # struct loop_config, 304 bytes
NODE_WAIT = 2.0  # devtmpfs creates the node as the device appears

Ioctl = Callable[[int, int, bytes | int], object]


class LoopError(OSError):
    """Attaching failed; the message says which step."""


def info64(flags: int, name: str) -> bytes:
    raw = os.fsencode(name)[-63:]
    return _INFO64.pack(0, 0, 0, 0, 0, 0, 0, 0, flags, raw, b"", b"", 0, 0)


def loop_config(fd: int, flags: int, name: str) -> bytes:
    return _CONFIG.pack(fd, 0, info64(flags, name), *([0] * 8))


@dataclass
class LoopDevice:
    path: str
    fd: int  # hold it until the mount holds the device, then close()

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def _ioctl(fd: int, req: int, arg: bytes | int) -> object:
    return fcntl.ioctl(fd, req, arg)


def _wait_node(path: str, timeout: float = NODE_WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


def attach(
    backing: str, *, control: str = LOOP_CONTROL, devdir: str = "/dev", ioctl: Ioctl = _ioctl
) -> LoopDevice:
    """A read-only autoclear loop device for ``backing``; LoopError on failure."""
    flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR
    file_fd = os.open(backing, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for _ in range(5):  # another process may take the free device first
            ctl = os.open(control, os.O_RDWR | os.O_CLOEXEC)
            try:
                num = int(ioctl(ctl, LOOP_CTL_GET_FREE, 0))  # type: ignore[call-overload]
            finally:
                os.close(ctl)
            path = os.path.join(devdir, f"loop{num}")
            _wait_node(path)
            dev_fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                _configure(dev_fd, file_fd, flags, backing, ioctl)
                return LoopDevice(path, dev_fd)
            except OSError as exc:
                os.close(dev_fd)
                if exc.errno != errno.EBUSY:
                    raise LoopError(exc.errno, f"attach {backing} to {path}: {exc}") from None
        raise LoopError(errno.EBUSY, f"attach {backing}: every free loop device was taken")
    finally:
        os.close(file_fd)


def _configure(dev_fd: int, file_fd: int, flags: int, name: str, ioctl: Ioctl) -> None:
    try:
        ioctl(dev_fd, LOOP_CONFIGURE, loop_config(file_fd, flags, name))
        return
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTTY):
            raise
    ioctl(dev_fd, LOOP_SET_FD, file_fd)  # kernels before 5.8
    try:
        ioctl(dev_fd, LOOP_SET_STATUS64, info64(flags, name))
    except OSError:
        ioctl(dev_fd, LOOP_CLR_FD, 0)
        raise
