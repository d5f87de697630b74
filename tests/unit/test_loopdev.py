"""Loop device attach: struct layout, LOOP_CONFIGURE and the pre-5.8 fallback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from init import loopdev


def test_struct_sizes_match_the_kernel_abi() -> None:
    assert len(loopdev.info64(0, "x")) == 232  # struct loop_info64
    assert len(loopdev.loop_config(3, 5, "x")) == 304  # struct loop_config
    cfg = loopdev.loop_config(7, loopdev.LO_FLAGS_READ_ONLY | loopdev.LO_FLAGS_AUTOCLEAR, "/img")
    assert int.from_bytes(cfg[:4], "little") == 7
    # lo_flags sits after 5 u64 and 3 u32 of loop_info64, which starts at offset 8
    assert int.from_bytes(cfg[8 + 40 + 12 : 8 + 40 + 16], "little") == 5
    assert cfg[8 + 56 : 8 + 60] == b"/img"


class FakeKernel:
    def __init__(self, configure_errno: int | None = None, busy: int = 0) -> None:
        self.calls: list[int] = []
        self.configure_errno = configure_errno
        self.busy = busy

    def __call__(self, fd: int, req: int, arg: bytes | int) -> object:
        self.calls.append(req)
        if req == loopdev.LOOP_CTL_GET_FREE:
            return 0
        if req == loopdev.LOOP_CONFIGURE and self.busy:
            self.busy -= 1
            raise OSError(errno.EBUSY, "busy")
        if req == loopdev.LOOP_CONFIGURE and self.configure_errno:
            raise OSError(self.configure_errno, "nope")
        return 0


@pytest.fixture
def devdir(tmp_path: Path) -> Path:
    (tmp_path / "loop-control").write_bytes(b"")
    (tmp_path / "loop0").write_bytes(b"")
    (tmp_path / "img").write_bytes(b"x")
    return tmp_path


def _attach(devdir: Path, kernel: FakeKernel) -> loopdev.LoopDevice:
    return loopdev.attach(
        str(devdir / "img"), control=str(devdir / "loop-control"), devdir=str(devdir), ioctl=kernel
    )


def test_loop_configure(devdir: Path) -> None:
    kernel = FakeKernel()
    dev = _attach(devdir, kernel)
    assert dev.path == str(devdir / "loop0")
    assert kernel.calls == [loopdev.LOOP_CTL_GET_FREE, loopdev.LOOP_CONFIGURE]
    dev.close()


def test_old_kernels_get_set_fd_and_status(devdir: Path) -> None:
    kernel = FakeKernel(configure_errno=errno.EINVAL)
    _attach(devdir, kernel).close()
    assert kernel.calls[2:] == [loopdev.LOOP_SET_FD, loopdev.LOOP_SET_STATUS64]


def test_busy_device_is_retried_then_other_errors_raise(devdir: Path) -> None:
    kernel = FakeKernel(busy=1)
    _attach(devdir, kernel).close()
    assert kernel.calls.count(loopdev.LOOP_CTL_GET_FREE) == 2
    with pytest.raises(loopdev.LoopError, match="attach"):
        _attach(devdir, FakeKernel(configure_errno=errno.EPERM))
    assert len(os.listdir("/proc/self/fd")) < 64  # no fd leaked per attempt
