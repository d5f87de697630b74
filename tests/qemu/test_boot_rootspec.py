"""root=UUID=, root=PARTUUID= and PARTUUID=.../PARTNROFF= on partitioned disks under QEMU.

mosnet-init has no udev or blkid: init/rootdev.py and init/blkid.py read the
GPT/MBR tables and the ext4 superblock themselves. The disks (qemu/partdisk.py)
hold an empty 1 MiB partition 1 and the test root as partition 2, so picking
the wrong partition cannot boot.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qemu import partdisk
from qemu.vm import Vm
from tests.qemu.conftest import BOOT_TIMEOUT, boot_spec

FS_UUID = "6b3ab0d2-5a0c-4c39-9d1e-2f0e7a8b9c10"  # qemu/mkroot.sh's mkfs.ext4 -U


@pytest.fixture(scope="module")
def disks(images: dict[str, Path]) -> dict[str, Path]:
    """out/testroot-gpt.img and out/testroot-mbr.img, rebuilt when stale."""
    return partdisk.ensure(images["root"])


def _boot(images: dict[str, Path], disk: Path, append: str, log: Path, marker: str) -> str:
    spec = boot_spec({**images, "root": disk}, append, net="none")
    with Vm(spec, log) as vm:
        vm.wait_for(marker, BOOT_TIMEOUT)
        return vm.text()


@pytest.mark.parametrize(
    ("label", "root", "mode"),
    [
        ("gpt", f"UUID={FS_UUID.upper()}", "ro"),  # upper case: matched case-insensitively
        ("gpt", f"PARTUUID={partdisk.GPT_P2_UUID}", "rw"),
        ("gpt", f"PARTUUID={partdisk.GPT_P1_UUID}/PARTNROFF=1", "ro"),
        ("dos", f"PARTUUID={partdisk.MBR_P2_UUID}", "ro"),
    ],
    ids=["uuid", "gpt-partuuid", "gpt-partnroff", "mbr-partuuid"],
)
def test_root_spec_finds_partition_2(
    images: dict[str, Path], disks: dict[str, Path], tmp_path: Path, label: str, root: str,
    mode: str,
) -> None:  # fmt: skip
    console = _boot(
        images, disks[label], f"root={root} {mode}", tmp_path / "console.log", r"^ROOT: done"
    )
    # mosnet names the device it found: partition 2, not the disk or partition 1.
    assert f"mounted /dev/vda2 on /sysroot as ext4 ({mode})" in console
    assert "mounted /dev/vda " not in console and "/dev/vda1 on" not in console
    assert "ROOT: real init running as pid 1" in console
    assert "boot attempt" not in console and "FATAL" not in console
    assert "Kernel panic" not in console


def test_partuuid_of_a_partition_without_filesystem_halts(
    images: dict[str, Path], disks: dict[str, Path], tmp_path: Path
) -> None:
    """Partition 1 is found but holds no filesystem: a clear error, never the real init."""
    console = _boot(
        images,
        disks["gpt"],
        f"root=PARTUUID={partdisk.GPT_P1_UUID} mosroot_timeout=2",
        tmp_path / "console.log",
        r"reboot: System halted|starting the emergency shell",
    )
    # Blamed on the device, not on the kernel's (still module-less) filesystem list.
    assert "cannot mount /dev/vda1 on /sysroot: no filesystem recognised on it" in console
    assert "boot attempt 2/3 failed" in console
    assert "FATAL: RootMountError" in console
    assert "reboot: System halted" in console
    assert "ROOT: real init" not in console and "/dev/vda2 on" not in console
    assert "Kernel panic" not in console
