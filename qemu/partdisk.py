"""Partitioned test disks around the ext4 test root, built without loop devices.

tests/qemu/test_boot_rootspec.py boots ``root=UUID=``, ``root=PARTUUID=`` and
``root=PARTUUID=.../PARTNROFF=`` from these. Both disks have the same layout:
partition 1 is 1 MiB of zeros (no filesystem), partition 2 is out/testroot.img
(qemu/mkroot.sh) copied in place. The GPT disk has fixed partition GUIDs,
the MBR (dos) disk a fixed disk signature, so its partitions are
``6d6f736e-01`` and ``6d6f736e-02``: tests name them without reading the disk.

usage: python -m qemu.partdisk [ROOT.img [OUT_DIR]]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from qemu.vm import OUT

SECTOR = 512
P1_START, P1_SECTORS = 2048, 2048  # 1 MiB aligned, 1 MiB long
P2_START = P1_START + P1_SECTORS
LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"  # GPT "Linux filesystem" type

GPT_DISK_UUID = "5d1e7c3a-0b9f-4e21-8d47-6a2f1c9e0b00"
# First fields that are not byte-palindromes: a GUID byte-order bug shows.
GPT_P1_UUID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c01"
GPT_P2_UUID = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d02"
MBR_DISK_ID = 0x6D6F736E  # "mosn"; the kernel's PARTUUID is "6d6f736e-NN"
MBR_P1_UUID, MBR_P2_UUID = f"{MBR_DISK_ID:08x}-01", f"{MBR_DISK_ID:08x}-02"

DISKS = {"gpt": "testroot-gpt.img", "dos": "testroot-mbr.img"}


def _table(label: str, root_sectors: int) -> str:
    if label == "gpt":
        return (
            f"label: gpt\nlabel-id: {GPT_DISK_UUID}\n"
            f"start={P1_START}, size={P1_SECTORS}, type={LINUX_FS}, "
            f"uuid={GPT_P1_UUID}, name=empty\n"
            f"start={P2_START}, size={root_sectors}, type={LINUX_FS}, "
            f"uuid={GPT_P2_UUID}, name=mosroot\n"
        )
    return (
        f"label: dos\nlabel-id: 0x{MBR_DISK_ID:08x}\n"
        f"start={P1_START}, size={P1_SECTORS}, type=83\n"
        f"start={P2_START}, size={root_sectors}, type=83\n"
    )


def make(root: Path, out: Path, label: str) -> Path:
    """``root`` (an ext4 image) as partition 2 of a ``label`` ("gpt"/"dos") disk."""
    root_sectors = -(-root.stat().st_size // SECTOR)
    # 1 MiB spare at the end: room for the GPT backup header and entries.
    disk_bytes = (P2_START + root_sectors) * SECTOR + (1 << 20)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.truncate(disk_bytes)
        table = _table(label, root_sectors)
        subprocess.run(
            ["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(tmp)],
            input=table.encode(), check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            ["dd", f"if={root}", f"of={tmp}", f"bs={SECTOR}", f"seek={P2_START}",
             "conv=notrunc,sparse", "status=none"],
            check=True,
        )  # fmt: skip
        os.replace(tmp, out)  # atomic: a concurrent reader never sees half a disk
    finally:
        tmp.unlink(missing_ok=True)
    return out


def ensure(root: Path, out_dir: Path = OUT) -> dict[str, Path]:
    """Both disks in ``out_dir``, rebuilt when older than ``root`` or this module."""
    newest = max(root.stat().st_mtime, Path(__file__).stat().st_mtime)
    disks = {}
    for label, name in DISKS.items():
        path = out_dir / name
        if not path.exists() or path.stat().st_mtime < newest:
            make(root, path, label)
        disks[label] = path
    return disks


if __name__ == "__main__":
    root_arg = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT / "testroot.img"
    for disk in ensure(root_arg, Path(sys.argv[2]) if len(sys.argv) > 2 else OUT).values():
        print(disk)
