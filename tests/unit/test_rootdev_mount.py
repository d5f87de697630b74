"""init.rootdev: mount options, filesystem type order and mounting the root."""

from __future__ import annotations

import errno
import os
import pathlib

import pytest

from init import rootdev, syscalls
from init.rootdev import RootMountError

# pytest fixtures, imported by name so that pytest finds them in this module
from tests.unit.helpers.rootdev_images import ext4_img as ext4_img
from tests.unit.helpers.rootdev_images import images as images


def test_split_options() -> None:
    flags, ro, data = rootdev.split_options("noatime,data=ordered,rw,nodev,defaults")
    assert flags == syscalls.MS_NOATIME | syscalls.MS_NODEV
    assert ro is False and data == "data=ordered"
    assert rootdev.split_options(None) == (0, None, None)
    assert rootdev.split_options("ro")[1] is True


def test_fstype_order(tmp_path: pathlib.Path) -> None:
    pf = tmp_path / "filesystems"
    pf.write_text("nodev\tsysfs\nnodev\tproc\n\tvfat\n\text3\n\text2\n\text4\n\tsquashfs\n")
    avail = rootdev.block_fstypes(str(pf))
    assert avail == ["vfat", "ext3", "ext2", "ext4", "squashfs"]
    assert rootdev.fstype_order(None, avail) == ["ext4", "vfat", "squashfs", "ext3", "ext2"]
    assert rootdev.fstype_order("xfs", avail)[:2] == ["xfs", "ext4"]


class Recorder:
    def __init__(self, fail: dict[str, int]) -> None:
        self.calls: list[tuple[str, str, str, int, str | None]] = []
        self.fail = fail

    def __call__(self, src: str, tgt: str, fstype: str, flags: int, data: str | None) -> None:
        self.calls.append((src, tgt, fstype, flags, data))
        err = self.fail.get(fstype if not flags & syscalls.MS_RDONLY else fstype + ":ro")
        if err:
            raise OSError(err, os.strerror(err), tgt)


def test_mount_root_probes_and_falls_through(
    tmp_path: pathlib.Path, ext4_img: pathlib.Path
) -> None:
    pf = tmp_path / "filesystems"
    pf.write_text("nodev\tproc\n\tvfat\n\text4\n")
    rec = Recorder({"ext4:ro": errno.EINVAL})
    got = rootdev.mount_root(
        str(ext4_img), "/new", None, "noatime", True, proc_filesystems=str(pf), mount=rec
    )
    assert got == "vfat"
    assert [c[2] for c in rec.calls] == ["ext4", "vfat"]
    assert rec.calls[0][3] == syscalls.MS_RDONLY | syscalls.MS_NOATIME and rec.calls[0][4] is None


def test_mount_root_rw_falls_back_to_ro() -> None:
    rec = Recorder({"ext4": errno.EROFS})
    assert rootdev.mount_root("/dev/x", "/new", "ext4", None, False, mount=rec) == "ext4"
    assert [c[3] for c in rec.calls] == [0, syscalls.MS_RDONLY]


def test_mount_root_all_fail() -> None:
    rec = Recorder({"ext4:ro": errno.EINVAL, "xfs:ro": errno.ENODEV})
    with pytest.raises(RootMountError) as info:
        rootdev.mount_root("/dev/x", "/new", "ext4,xfs", "rw,ro", False, mount=rec)
    assert "ext4: Invalid argument" in str(info.value)
    assert "xfs: No such device" in str(info.value)


def test_mount_root_nothing_to_try(tmp_path: pathlib.Path) -> None:
    with pytest.raises(RootMountError) as info:
        rootdev.mount_root(
            str(tmp_path / "absent"), "/new", proc_filesystems="/nonexistent", mount=Recorder({})
        )
    # The unrecognised device comes first: the kernel's list is empty only
    # because ext4 and friends are modules not loaded yet (the QEMU boot).
    assert str(info.value) == (
        f"cannot mount {tmp_path / 'absent'} on /new: no filesystem recognised on it "
        "(rootfstype= names its type); no block filesystem types known to the kernel"
    )


def test_mount_root_unrecognised_device_says_so(tmp_path: pathlib.Path) -> None:
    """root= naming a partition without a filesystem (tests/qemu/test_boot_rootspec.py)."""
    blank = tmp_path / "blank"
    blank.write_bytes(bytes(1 << 17))
    pf = tmp_path / "filesystems"
    pf.write_text("nodev\tproc\n\tvfat\n")
    rec = Recorder({"vfat:ro": errno.EINVAL})
    with pytest.raises(RootMountError) as info:
        rootdev.mount_root(str(blank), "/new", proc_filesystems=str(pf), mount=rec)
    assert str(info.value).endswith(
        ": no filesystem recognised on it (rootfstype= names its type); vfat: Invalid argument"
    )


def test_mount_root_recognised_device_does_not_blame_it(
    tmp_path: pathlib.Path, ext4_img: pathlib.Path
) -> None:
    pf = tmp_path / "filesystems"
    pf.write_text("nodev\tproc\n")
    rec = Recorder({"ext4:ro": errno.EINVAL})
    with pytest.raises(RootMountError) as info:
        rootdev.mount_root(str(ext4_img), "/new", proc_filesystems=str(pf), mount=rec)
    assert "recognised" not in str(info.value) and "ext4: Invalid argument" in str(info.value)


def test_sys_mount_reports_errno(tmp_path: pathlib.Path) -> None:
    # A nonexistent target gives ENOENT (or EPERM without CAP_SYS_ADMIN): either way an OSError.
    with pytest.raises(OSError) as info:
        syscalls.sys_mount("none", str(tmp_path / "absent"), "tmpfs", 0, None)
    assert info.value.errno in (errno.ENOENT, errno.EPERM)
    assert info.value.strerror == os.strerror(info.value.errno)
    assert info.value.filename == str(tmp_path / "absent")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_sys_mount_and_umount_tmpfs(tmp_path: pathlib.Path) -> None:
    try:
        syscalls.sys_mount("none", str(tmp_path), "tmpfs", syscalls.MS_NOSUID, "size=1m")
    except PermissionError:
        pytest.skip("no CAP_SYS_ADMIN here")
    try:
        (tmp_path / "f").write_text("x")
    finally:
        syscalls.sys_umount2(str(tmp_path), syscalls.MNT_DETACH)
    assert not (tmp_path / "f").exists()
